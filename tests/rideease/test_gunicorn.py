"""The production gunicorn config, served: connections a client opens and leaves idle hold up no one."""

import socket
import time
from pathlib import Path

from rideease.embedded_db import embedded_db_start, embedded_db_stop, free_port
from tests.servers import gunicorn_app, http_get


def test_connections_that_send_nothing_do_not_hold_up_other_requests(tmp_path: Path) -> None:
    server = embedded_db_start(port=free_port(), storage=":memory:")
    try:
        env = {"GUNICORN_WORKERS": "1", "GUNICORN_THREADS": "4"}
        with gunicorn_app(mongodb_uri=server.uri, mongodb_db="idle", var_dir=tmp_path, extra_env=env) as base:
            host, port = base.removeprefix("http://").split(":")
            # Twice as many as the worker has threads, like a client's spare or speculative connections.
            idle = [socket.create_connection((host, int(port))) for _ in range(8)]
            try:
                time.sleep(0.3)  # accepted and handed to the worker's threads
                started = time.monotonic()
                status, _ = http_get(f"{base}/healthz")
                waited = time.monotonic() - started
            finally:
                for connection in idle:
                    connection.close()
    finally:
        embedded_db_stop(server)
    assert status == 200
    # gunicorn's own wait for a new connection's first bytes is 5 s a thread: the request would wait that long.
    assert waited < 2.0, f"a request waited {waited:.1f} s behind idle connections"

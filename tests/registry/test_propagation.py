"""A switch reaches every gunicorn worker within a second, under continuous traffic, with no failed request."""

import json
import threading
import time
import urllib.request
from pathlib import Path

import pytest

from core.assignment import variant_assign
from rideease.embedded_db import embedded_db_start, embedded_db_stop, free_port
from tests.conftest import ADMIN_KEY
from tests.servers import gunicorn_app, http_get, prepare_served_database

pytestmark = pytest.mark.slow
TREATED = [f"rider-{n:06d}" for n in range(400) if variant_assign(f"rider-{n:06d}", treatment_share=0.5) == "treatment"]


def switch(base: str, version: str) -> float:
    request = urllib.request.Request(
        f"{base}/admin/switch-model",
        data=json.dumps({"version": version, "target": "treatment", "reason": "propagation test"}).encode(),
        headers={"Content-Type": "application/json", "X-API-Key": ADMIN_KEY},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status == 200
    return time.monotonic()


def test_every_worker_serves_the_new_treatment_within_a_second(tmp_path: Path) -> None:
    server = embedded_db_start(port=free_port(), storage=":memory:")
    try:
        prepare_served_database(mongodb_uri=server.uri, mongodb_db="propagation", var_dir=tmp_path, spare_versions=1)
        env = {"MODEL_ADMIN_API_KEY": ADMIN_KEY, "GUNICORN_WORKERS": "2"}
        with gunicorn_app(mongodb_uri=server.uri, mongodb_db="propagation", var_dir=tmp_path, extra_env=env) as base:
            seen: list[tuple[float, int, str]] = []
            stop = threading.Event()

            def traffic(offset: int) -> None:
                n = offset
                while not stop.is_set():
                    user = TREATED[n % len(TREATED)]
                    status, body = http_get(f"{base}/recommendations?userId={user}&limit=3")
                    version = json.loads(body).get("modelVersion", "") if status == 200 else ""
                    seen.append((time.monotonic(), status, version))
                    n += 4

            clients = [threading.Thread(target=traffic, args=(offset,)) for offset in range(4)]
            for client in clients:
                client.start()
            time.sleep(1.5)
            switched_at = switch(base, "v1.2.0")
            time.sleep(2.0)
            stop.set()
            for client in clients:
                client.join()
    finally:
        embedded_db_stop(server)
    assert all(status == 200 for _, status, _ in seen), "no request may fail during the switch"
    before = [version for at, _, version in seen if at < switched_at - 0.2]
    after = [version for at, _, version in seen if at > switched_at + 1.0]
    assert set(before) == {"v1.1.0"}
    assert len(after) > 50 and set(after) == {"v1.2.0"}

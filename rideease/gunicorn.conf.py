"""Gunicorn settings for RideEase Reco, read from the environment (see .env.example)."""

import gc
import os
import shutil
from pathlib import Path
from typing import Any

from rideease.cpus import usable_cpus
from rideease.env import env_int, listen_address, var_dir

_VAR_DIR = var_dir()

_HOST, _PORT = listen_address()
bind = f"{_HOST}:{_PORT}"
# One worker per usable core by default (see rideease/cpus.py for why not more), and never fewer than two, so a worker
# being restarted, or stuck until gunicorn's timeout ends it, leaves another one answering. (A lone worker also
# showed 5 to 10 s stalls behind idle connections: FIRST_BYTES_WAIT_SECONDS below is the cure for that.)
workers = env_int("GUNICORN_WORKERS", max(2, usable_cpus()), minimum=1)
threads = env_int("GUNICORN_THREADS", 4, minimum=1)
timeout = env_int("GUNICORN_TIMEOUT", 30, minimum=1)
graceful_timeout = env_int("GUNICORN_GRACEFUL_TIMEOUT", 20, minimum=1)
keepalive = 5
accesslog = "-"
errorlog = "-"
wsgi_app = "rideease.wsgi:application"
# Unused, and its default path in $HOME would collide between several servers on one machine.
control_socket_disable = True
if Path("/dev/shm").is_dir():
    # Heartbeat files on tmpfs: a slow disk must not make the arbiter think workers hang.
    worker_tmp_dir = "/dev/shm"

# Metrics from every worker are merged through files here (prometheus_client multiprocess mode). Set before any worker
# imports prometheus_client, which reads it at import time.
os.environ.setdefault("PROMETHEUS_MULTIPROC_DIR", str(_VAR_DIR / "prometheus"))


def on_starting(server: Any) -> None:
    """Start every run with an empty metrics directory, so stale workers' files never add up."""
    import time

    # Uptime counts from here; the workers inherit it.
    os.environ["RIDEEASE_STARTED_AT"] = str(time.time())
    directory = Path(os.environ["PROMETHEUS_MULTIPROC_DIR"])
    shutil.rmtree(directory, ignore_errors=True)
    directory.mkdir(parents=True, exist_ok=True)


def child_exit(server: Any, worker: Any) -> None:
    """Merge a dead worker's live gauges out of the totals."""
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)  # type: ignore[no-untyped-call]


# gunicorn (24 and later) hands each new connection to a pool thread, which waits up to 5 s for the request's first
# bytes. A connection a client opens and leaves idle (a spare, a speculative one) holds a thread that long, and with
# every thread held, requests on other connections wait behind them: 5 to 10 s stalls under a burst of new
# connections. A short wait hands such a connection back to the poller, as gunicorn did before 24 (see
# benoitc/gunicorn#2917 and #3635); a request already on its way arrives well within it.
FIRST_BYTES_WAIT_SECONDS = 0.1


def post_worker_init(worker: Any) -> None:
    """Load the serving state and models before the worker takes requests, and start the trace writer (which
    replays any spool in its own thread, not holding up the start)."""
    from gunicorn.workers import gthread

    from monitoring.metrics import metrics_initialise
    from recommendations.runtime import serving_runtime, trace_writer

    gthread.DEFAULT_WORKER_DATA_TIMEOUT = FIRST_BYTES_WAIT_SECONDS
    metrics_initialise()
    trace_writer()
    serving_runtime()
    # What is loaded by now (Django, the app, the models) lives as long as the worker: freezing it keeps the
    # garbage collector's full passes from walking those few hundred thousand objects again and again, pauses
    # that would land on whichever request is running.
    gc.freeze()


def worker_exit(server: Any, worker: Any) -> None:
    """Flush queued traces (to the database, or to the spool when it is down) before the worker goes."""
    from recommendations.runtime import runtime_shutdown

    runtime_shutdown()

"""Real processes for end-to-end tests: the app under gunicorn, on loopback ports."""

import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from rideease.embedded_db import free_port

BASE_DIR = Path(__file__).resolve().parent.parent


def http_get(url: str, timeout: float = 10.0) -> tuple[int, bytes]:
    """GET a URL; return (status, body) for any HTTP status."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def wait_for(url: str, *, status: int = 200, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    last: object = None
    while time.monotonic() < deadline:
        try:
            code, _ = http_get(url, timeout=2)
            if code == status:
                return
            last = code
        except OSError as exc:
            last = exc
        time.sleep(0.2)
    raise AssertionError(f"{url} did not answer {status} within {timeout}s (last: {last})")


@contextmanager
def gunicorn_app(
    *, mongodb_uri: str, mongodb_db: str, var_dir: Path, extra_env: dict[str, str] | None = None
) -> Iterator[str]:
    """Serve the project with its gunicorn config on a free port; yield the base URL."""
    port = free_port()
    env = {
        **os.environ,
        "MONGODB_URI": mongodb_uri,
        "MONGODB_DB": mongodb_db,
        "HOST": "127.0.0.1",
        "PORT": str(port),
        "RIDEEASE_VAR_DIR": str(var_dir),
        "PROMETHEUS_MULTIPROC_DIR": str(var_dir / "prometheus"),
        "GUNICORN_WORKERS": "2",
        **(extra_env or {}),
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "-c", str(BASE_DIR / "rideease" / "gunicorn.conf.py")],
        cwd=BASE_DIR,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for(f"{base}/healthz")
        yield base
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

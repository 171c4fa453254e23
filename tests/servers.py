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


# The browser tests' Chromium: Debian's build, headless, with nothing reaching the network.
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]


def http_get(url: str, timeout: float = 10.0, headers: dict[str, str] | None = None) -> tuple[int, bytes]:
    """GET a URL; return (status, body) for any HTTP status."""
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers or {}), timeout=timeout) as response:
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


def app_env(*, mongodb_uri: str, mongodb_db: str, var_dir: Path) -> dict[str, str]:
    """The environment of a served app whose database, registry and local state are all the test's own."""
    return {
        **os.environ,
        "MONGODB_URI": mongodb_uri,
        "MONGODB_DB": mongodb_db,
        "RIDEEASE_VAR_DIR": str(var_dir),
        "MODEL_REGISTRY_URI": str(var_dir / "registry"),
        "PROMETHEUS_MULTIPROC_DIR": str(var_dir / "prometheus"),
    }


def prepare_served_database(
    *, mongodb_uri: str, mongodb_db: str, var_dir: Path, events: int = 3000, spare_versions: int = 0
) -> None:
    """Migrate, seed a small demo world and train two versions (control and treatment), as `make run` would.

    `spare_versions` more are trained and registered without serving anything (v1.2.0, v1.3.0, ...).
    """
    env = app_env(mongodb_uri=mongodb_uri, mongodb_db=mongodb_db, var_dir=var_dir)
    seed = ["seed_demo", "--users", "200", "--items", "50", "--days", "20", "--events", str(events)]
    for command in (
        ["migrate", "-v", "0"],
        seed,
        ["train", "--lookback-days", "20", "--promote", "control"],
        ["train", "--lookback-days", "20", "--algorithm", "svd", "--promote", "treatment"],
        *[["train", "--lookback-days", "20", "--algorithm", "svd"]] * spare_versions,
    ):
        subprocess.run([sys.executable, "manage.py", *command], cwd=BASE_DIR, env=env, check=True, capture_output=True)


@contextmanager
def gunicorn_app(
    *,
    mongodb_uri: str,
    mongodb_db: str,
    var_dir: Path,
    extra_env: dict[str, str] | None = None,
    cpus: str | None = None,
) -> Iterator[str]:
    """Serve the project with its gunicorn config on a free port; yield the base URL.

    `cpus` (a taskset list such as "0") confines gunicorn and its workers to those cores.
    """
    port = free_port()
    env = {
        **app_env(mongodb_uri=mongodb_uri, mongodb_db=mongodb_db, var_dir=var_dir),
        "HOST": "127.0.0.1",
        "PORT": str(port),
        "GUNICORN_WORKERS": "2",
        **(extra_env or {}),
    }
    var_dir.mkdir(parents=True, exist_ok=True)
    log = (var_dir / "gunicorn.log").open("ab")  # kept for reading when a test fails
    process = subprocess.Popen(
        [
            *(["taskset", "-c", cpus] if cpus else []),
            sys.executable,
            "-m",
            "gunicorn",
            "-c",
            str(BASE_DIR / "rideease" / "gunicorn.conf.py"),
        ],
        cwd=BASE_DIR,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    log.close()
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for(f"{base}/healthz")
        yield base
    finally:
        stop_process(process, timeout=30)


def stop_process(process: subprocess.Popen[bytes], *, timeout: float) -> None:
    """SIGTERM, then SIGKILL if it has not exited within `timeout` seconds."""
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()

"""`make run`: start the embedded database when MONGODB_URI is unset, prepare the project, serve with gunicorn.

Ctrl-C or SIGTERM stops gunicorn gracefully, then the database, and leaves no process behind.
"""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import FrameType

from rideease.embedded_db import EmbeddedDb, EmbeddedDbError, die_with_parent, embedded_db_start, embedded_db_stop
from rideease.env import (
    BASE_DIR,
    EMBEDDED_URI_FILE,
    embedded_mongodb_port,
    env_str,
    listen_address,
    local_secret_key,
)
from rideease.env import var_dir as var_dir_setting

GUNICORN_STOP_SECONDS = 30


def _say(message: str) -> None:
    print(f"[rideease] {message}", flush=True)  # noqa: T201 - this is the launcher's console output


def _child_env(var_dir: Path, mongodb_uri: str, host: str) -> dict[str, str]:
    env = dict(os.environ)
    env["MONGODB_URI"] = mongodb_uri
    env["DJANGO_SECRET_KEY"] = str(local_secret_key(create=True))
    env.setdefault("DJANGO_SETTINGS_MODULE", "rideease.settings")
    # Served over plain HTTP on this machine: secure-only cookies would make the admin login impossible.
    env.setdefault("DJANGO_HTTPS", "false")
    env.setdefault("DJANGO_ALLOWED_HOSTS", ",".join(sorted({"127.0.0.1", "localhost", "[::1]", host})))
    env.setdefault("PROMETHEUS_MULTIPROC_DIR", str(var_dir / "prometheus"))
    return env


def _manage(env: dict[str, str], *args: str) -> None:
    subprocess.run([sys.executable, str(BASE_DIR / "manage.py"), *args], env=env, check=True, cwd=BASE_DIR)


def _start_database(var_dir: Path) -> tuple[str, EmbeddedDb | None]:
    uri = env_str("MONGODB_URI")
    if uri:
        _say("database: MONGODB_URI is set; using that server")
        return uri, None
    port = embedded_mongodb_port()
    storage = var_dir / "mongodb"
    started = time.monotonic()
    server = embedded_db_start(port=port, storage=storage, log_path=var_dir / "mongodb.log")
    _say(
        f"database: embedded SecantusDB on {server.uri} (data in {storage}), ready in {time.monotonic() - started:.1f}s"
    )
    # manage.py in another terminal reads it while this runs (rideease.env.local_mongodb_uri).
    (var_dir / EMBEDDED_URI_FILE).write_text(server.uri)
    return server.uri, server


def _serve(env: dict[str, str], host: str, port: int) -> int:
    gunicorn = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "-c", str(BASE_DIR / "rideease" / "gunicorn.conf.py")],
        env=env,
        cwd=BASE_DIR,
        start_new_session=True,
        preexec_fn=die_with_parent,  # noqa: PLW1509 - only calls prctl, safe before exec
    )
    stopping = False

    def stop(signum: int, frame: FrameType | None) -> None:
        nonlocal stopping
        if not stopping:
            stopping = True
            _say(f"received {signal.Signals(signum).name}; stopping gunicorn")
            gunicorn.send_signal(signal.SIGTERM)

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    base = f"http://{host}:{port}"
    _say(f"serving on {base} (pid {os.getpid()}; Ctrl-C or SIGTERM stops everything)")
    _say(f"  API:      {base}/events  {base}/healthz  {base}/readyz")
    _say(f"  Admin:    {base}/admin/ui/")
    _say(f"  Metrics:  {base}/metrics")
    try:
        code = gunicorn.wait()
    finally:
        if gunicorn.poll() is None:
            gunicorn.kill()
    return 0 if stopping else code


def main() -> int:
    var_dir = var_dir_setting()
    var_dir.mkdir(parents=True, exist_ok=True)
    # If `make` (our parent) is killed, we still shut down in order.
    die_with_parent()
    host, port = listen_address()
    try:
        uri, server = _start_database(var_dir)
    except EmbeddedDbError as exc:
        _say(f"error: {exc}")
        return 1
    try:
        env = _child_env(var_dir, uri, host)
        _say("migrate: applying migrations")
        _manage(env, "migrate", "--noinput", "-v", "0")
        _manage(env, "collectstatic", "--noinput", "-v", "0")
        _say("bootstrap: demo data and admin user")
        # A local run without a configured key gets one, so the admin API answers from the first minute.
        _manage(env, "bootstrap", *([] if env_str("MODEL_ADMIN_API_KEY") else ["--local-admin-key"]))
        return _serve(env, host, port)
    except subprocess.CalledProcessError as exc:
        _say(f"error: {' '.join(map(str, exc.cmd[1:]))} failed with exit code {exc.returncode}")
        return 1
    except KeyboardInterrupt:
        _say("interrupted")
        return 130
    finally:
        if server is not None:
            _say("database: stopping")
            (var_dir / EMBEDDED_URI_FILE).unlink(missing_ok=True)
            embedded_db_stop(server)
            _say("database: stopped")


if __name__ == "__main__":
    sys.exit(main())

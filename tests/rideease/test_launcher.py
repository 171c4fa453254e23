"""The `make run` launcher: embedded database, demo data, gunicorn, clean stop, data kept across restarts."""

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pymongo
import pytest

from rideease.embedded_db import free_port, port_in_use
from tests.servers import BASE_DIR, http_get, wait_for

pytestmark = pytest.mark.slow


def processes_mentioning(marker: str) -> list[int]:
    """Pids of live processes whose command line contains `marker`."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            status = (entry / "status").read_text()
        except OSError:
            continue
        if marker in cmdline and "State:\tZ" not in status:
            found.append(int(entry.name))
    return found


@contextmanager
def launcher(var_dir: Path, db_port: int, http_port: int) -> Iterator[tuple[subprocess.Popen[str], list[str]]]:
    env = {key: value for key, value in os.environ.items() if not key.startswith(("DJANGO_", "MONGODB_"))}
    env.update(
        {
            "RIDEEASE_VAR_DIR": str(var_dir),
            "EMBEDDED_MONGODB_PORT": str(db_port),
            "PORT": str(http_port),
            "DEMO_USERS": "100",
            "DEMO_EVENTS": "1500",
            "ADMIN_USERNAME": "admin",
            "PROMETHEUS_MULTIPROC_DIR": str(var_dir / "prometheus"),
            "MODEL_REGISTRY_URI": str(var_dir / "registry"),
        }
    )
    process = subprocess.Popen(
        [sys.executable, "-m", "rideease.launcher"],
        cwd=BASE_DIR,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines: list[str] = []
    try:
        yield process, lines
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
        out, _ = process.communicate(timeout=60)
        lines.extend(out.splitlines())


def stored_events(db_port: int) -> int:
    with pymongo.MongoClient(f"mongodb://127.0.0.1:{db_port}/", serverSelectionTimeoutMS=3000) as client:
        return client["rideease"]["raw_events"].count_documents({})


def fresh_terminal(var_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """manage.py with none of the launcher's variables: only where var/ and the registry are (the test's own)."""
    env = {key: value for key, value in os.environ.items() if key in ("PATH", "HOME", "LANG")}
    env.update({"RIDEEASE_VAR_DIR": str(var_dir), "MODEL_REGISTRY_URI": str(var_dir / "registry")})
    return subprocess.run(
        [sys.executable, "manage.py", *args], cwd=BASE_DIR, env=env, capture_output=True, text=True, timeout=300
    )


def commands_work_in_a_fresh_terminal(var_dir: Path) -> None:
    summary = fresh_terminal(var_dir, "experiment_summary", "24", "--json")
    assert summary.returncode == 0, summary.stderr
    assert json.loads(summary.stdout)["window"]
    trained = fresh_terminal(var_dir, "train", "--algorithm", "popularity", "--lookback-days", "60")
    assert trained.returncode == 0, trained.stderr
    assert "v1.2.0" in trained.stdout
    switched = fresh_terminal(var_dir, "switch_model", "v1.2.0", "--target", "treatment", "--actor", "ops")
    assert switched.returncode == 0, switched.stderr
    assert "v1.2.0" in switched.stdout


def test_run_serves_demo_data_stops_cleanly_and_keeps_the_data(tmp_path: Path) -> None:
    db_port, http_port = free_port(), free_port()
    base = f"http://127.0.0.1:{http_port}"
    with launcher(tmp_path, db_port, http_port) as (process, lines):
        wait_for(f"{base}/healthz", timeout=120)
        assert http_get(f"{base}/readyz")[0] == 200
        stored = stored_events(db_port)
        assert stored > 1500  # the demo world and the demo experiments' traffic
        commands_work_in_a_fresh_terminal(tmp_path)
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=60) == 0
    output = "\n".join(lines)
    assert "raw_events is empty; seeding" in output
    assert "created 'admin' with the generated password" in output
    assert output.count("API key: created admin key 'local'") == 1
    local_key = output.split("export RIDEEASE_ADMIN_KEY=")[1].split()[0]
    assert "Models: training itemknn to serve as control." in output
    assert "Models: training svd to serve as treatment." in output
    assert "Experiments: ranker-svd-november stopped, rolled_back" in output
    assert "Experiments: ranker-svd-december running" in output
    assert sorted(path.name for path in (tmp_path / "registry").iterdir()) == ["v1.0.0", "v1.1.0", "v1.2.0"]
    assert not (tmp_path / "embedded_mongodb_uri").exists()  # a later command is told to start the service
    assert f"{base}/admin/ui/" in output and f"{base}/metrics" in output
    assert not port_in_use("127.0.0.1", db_port)
    assert not port_in_use("127.0.0.1", http_port)
    assert processes_mentioning(str(db_port)) == []
    assert processes_mentioning(str(tmp_path)) == []

    with launcher(tmp_path, db_port, http_port) as (process, lines):
        wait_for(f"{base}/healthz", timeout=120)
        assert stored_events(db_port) == stored  # nothing seeded twice
        assert http_get(f"{base}/admin/models", headers={"X-API-Key": local_key})[0] == 200
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=60) == 0
    output = "\n".join(lines)
    assert "already has events; leaving them as they are" in output
    assert "Admin user: 'admin' exists." in output
    assert "API key: an admin key exists" in output and "API key: created" not in output
    assert "Models: versions are registered; not training." in output
    assert not port_in_use("127.0.0.1", db_port)

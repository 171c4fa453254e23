"""Gunicorn runs one worker per usable core (at least two): the CPU affinity, capped by a container's CPU quota."""

import os
import re
import time
from pathlib import Path

import pytest

from rideease.cpus import usable_cpus
from rideease.embedded_db import embedded_db_start, embedded_db_stop, free_port
from tests.servers import gunicorn_app

CORES = len(os.sched_getaffinity(0))


def cgroup_v2(root: Path, cpu_max: str) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "cpu.max").write_text(cpu_max + "\n")
    return root


def cgroup_v1(root: Path, quota_us: int, period_us: int) -> Path:
    (root / "cpu").mkdir(parents=True, exist_ok=True)
    (root / "cpu" / "cpu.cfs_quota_us").write_text(f"{quota_us}\n")
    (root / "cpu" / "cpu.cfs_period_us").write_text(f"{period_us}\n")
    return root


def test_without_a_quota_every_core_of_the_affinity_counts(tmp_path: Path) -> None:
    assert usable_cpus(tmp_path / "no-cgroup") == CORES
    assert usable_cpus(cgroup_v2(tmp_path / "v2", "max 100000")) == CORES
    assert usable_cpus(cgroup_v1(tmp_path / "v1", -1, 100000)) == CORES


@pytest.mark.parametrize("version", ["v1", "v2"])
def test_a_container_quota_of_one_cpu_or_less_means_one_worker(tmp_path: Path, version: str) -> None:
    for quota_us in (100_000, 50_000):
        root = tmp_path / f"{version}-{quota_us}"
        cgroup = cgroup_v2(root, f"{quota_us} 100000") if version == "v2" else cgroup_v1(root, quota_us, 100_000)
        assert usable_cpus(cgroup) == 1


def test_a_fractional_quota_rounds_up_but_never_beyond_the_affinity(tmp_path: Path) -> None:
    assert usable_cpus(cgroup_v2(tmp_path / "a", "150000 100000")) == min(CORES, 2)
    assert usable_cpus(cgroup_v2(tmp_path / "b", "6400000 100000")) == CORES


def test_an_unreadable_quota_leaves_the_affinity_to_decide(tmp_path: Path) -> None:
    assert usable_cpus(cgroup_v2(tmp_path / "v2", "garbage")) == CORES
    assert usable_cpus(cgroup_v2(tmp_path / "zero", "100000 0")) == CORES


def test_gunicorn_confined_to_one_core_still_starts_two_workers(tmp_path: Path) -> None:
    server = embedded_db_start(port=free_port(), storage=":memory:")
    try:
        # An empty GUNICORN_WORKERS leaves the count to the config, as in .env.example.
        env = {"GUNICORN_WORKERS": ""}
        with gunicorn_app(mongodb_uri=server.uri, mongodb_db="cpus", var_dir=tmp_path, extra_env=env, cpus="0"):
            time.sleep(1.0)  # a third worker would have booted by now: workers are forked together
            log = (tmp_path / "gunicorn.log").read_text()
    finally:
        embedded_db_stop(server)
    # One per usable core would be one; a second one answers while the other restarts.
    assert len(re.findall(r"Booting worker with pid", log)) == 2, log

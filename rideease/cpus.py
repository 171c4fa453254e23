"""How many CPU cores this process may use: gunicorn runs one worker per usable core by default (at least two).

Serving is CPU-bound (the request path makes no database read), so a worker per core keeps every core busy, and each
worker's threads cover the requests that wait on the database. More workers than cores only take turns on the same
core, and each switch from one process to another evicts the caches the other had warmed.
"""

import math
import os
from pathlib import Path

CGROUP_ROOT = Path("/sys/fs/cgroup")


def usable_cpus(cgroup_root: Path = CGROUP_ROOT) -> int:
    """The cores this process may run on (its CPU affinity), capped by its container's CPU quota when one is set.

    A container limited to one CPU (`docker run --cpus=1`, a Kubernetes CPU limit of 1) still sees every core of its
    host; only the cgroup quota says how much of them it may use.
    """
    cores = len(os.sched_getaffinity(0))
    quota = cgroup_cpu_quota(cgroup_root)
    return max(1, min(cores, math.ceil(quota))) if quota is not None else cores


def cgroup_cpu_quota(cgroup_root: Path) -> float | None:
    """CPUs the cgroup allows (v2 `cpu.max`, or v1 `cpu.cfs_quota_us` over `cpu.cfs_period_us`); None if unlimited."""
    try:
        if (cgroup_root / "cpu.max").is_file():
            quota, period = (cgroup_root / "cpu.max").read_text().split()[:2]
            quota_us, period_us = (-1 if quota == "max" else int(quota)), int(period)
        else:
            quota_us = int((cgroup_root / "cpu" / "cpu.cfs_quota_us").read_text())
            period_us = int((cgroup_root / "cpu" / "cpu.cfs_period_us").read_text())
    except (OSError, ValueError):
        return None  # no readable quota: the affinity alone decides
    return quota_us / period_us if quota_us > 0 and period_us > 0 else None  # v1 writes -1 for "no limit"

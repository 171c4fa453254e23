"""`make bench`: training cost against a bare cursor scan of the same events, peak memory, and scoring latency.

Starts its own throwaway database, seeds the demo world at each size, then runs every measurement in a fresh process
(so peak RSS is that measurement's own) three times and reports medians. Results go to docs/BENCHMARKS.md.
"""

import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

BASE_DIR = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(BASE_DIR))
SIZES = [int(size) for size in os.environ.get("BENCH_SIZES", "100000,1000000").split(",")]
REPEATS = int(os.environ.get("BENCH_REPEATS", "3"))
END = datetime(2026, 11, 1, tzinfo=UTC)


def _django() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "rideease.settings")
    import django

    django.setup()


def child(mode: str) -> None:
    """One measurement in this fresh process; prints {"seconds", "maxRssMb", ...} as JSON."""
    _django()
    from datetime import timedelta

    from recommendations.selectors import training_events_scan
    from recommendations.training import TrainingRequest, training_run

    start = END - timedelta(days=30)
    clock = time.perf_counter()
    result: dict[str, Any] = {}
    if mode == "scan":
        result["events"] = training_events_scan(start=start, end=END)
    elif mode == "train":
        report = training_run(
            TrainingRequest(lookback_days=30, test_days=3, algorithm="itemknn", now=END), stage=lambda n, m: None
        )
        result["events"] = report.counts["events"]
        result["version"] = report.published.version if report.published else None
    elif mode == "score":
        result.update(_score())
    result["seconds"] = round(time.perf_counter() - clock, 3)
    result["maxRssMb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    print(json.dumps(result))  # noqa: T201 - the parent reads this line


def _score() -> dict[str, Any]:
    from datetime import timedelta

    from core.recommender.algorithms import recommender_fit
    from core.recommender.training_data import InteractionsBuilder
    from recommendations.selectors import training_events_iter

    builder = InteractionsBuilder()
    builder.add_all(training_events_iter(start=END - timedelta(days=30), end=END))
    data = builder.build().interactions
    latencies: dict[str, Any] = {"items": len(data.item_ids)}
    users = data.user_ids[:2000]
    for algorithm in ("popularity", "itemknn", "svd"):
        model = recommender_fit(algorithm, data)
        samples = []
        for user in users:
            clock = time.perf_counter_ns()
            model.recommend(user, 10)
            samples.append((time.perf_counter_ns() - clock) / 1000)
        samples.sort()
        latencies[algorithm] = {
            "medianUs": round(statistics.median(samples), 1),
            "p99Us": round(samples[int(len(samples) * 0.99) - 1], 1),
        }
    return latencies


def _seed(uri: str, events: int) -> float:
    env = {**os.environ, "MONGODB_URI": uri, "MONGODB_DB": f"bench_{events}"}
    users = max(3000, events // 35)
    args = ["--users", str(users), "--events", str(events), "--end", END.isoformat(), "--replace"]
    clock = time.perf_counter()
    subprocess.run([sys.executable, "manage.py", "migrate", "-v", "0"], cwd=BASE_DIR, env=env, check=True)
    subprocess.run(
        [sys.executable, "manage.py", "seed_demo", *args],
        cwd=BASE_DIR,
        env=env,
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    return time.perf_counter() - clock


def _measure(uri: str, events: int, mode: str, registry: Path) -> dict[str, Any]:
    env = {
        **os.environ,
        "MONGODB_URI": uri,
        "MONGODB_DB": f"bench_{events}",
        "MODEL_REGISTRY_URI": str(registry),
        "PIPELINE_GIT_SHA": "benchmark",
    }
    output = subprocess.run(
        [sys.executable, __file__, "child", mode], cwd=BASE_DIR, env=env, check=True, capture_output=True, text=True
    ).stdout
    return dict(json.loads(output.strip().splitlines()[-1]))


def _median(runs: list[dict[str, Any]], key: str) -> float:
    return float(statistics.median(run[key] for run in runs))


def main() -> None:
    from rideease.embedded_db import embedded_db_start, embedded_db_stop, free_port

    os.environ.setdefault("DJANGO_SECRET_KEY", "benchmark-only-secret-key-0123456789-abcdefghijklmnopqrstuvwxyz")
    rows: list[dict[str, Any]] = []
    scoring: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="rideease-bench-") as scratch:
        server = embedded_db_start(port=free_port(), storage=Path(scratch) / "db")
        try:
            for events in SIZES:
                print(f"seeding {events} events ...", file=sys.stderr, flush=True)  # noqa: T201
                seed_seconds = _seed(server.uri, events)
                scans, trains = [], []
                for repeat in range(REPEATS):
                    # Alternate so both see the same machine conditions.
                    scans.append(_measure(server.uri, events, "scan", Path(scratch) / "registry"))
                    trains.append(_measure(server.uri, events, "train", Path(scratch) / f"registry-{events}-{repeat}"))
                if events == SIZES[0]:
                    scoring = _measure(server.uri, events, "score", Path(scratch) / "unused")
                scan_s, train_s = _median(scans, "seconds"), _median(trains, "seconds")
                rows.append(
                    {
                        "events": events,
                        "seedSeconds": round(seed_seconds, 1),
                        "scanSeconds": scan_s,
                        "trainSeconds": train_s,
                        "ratio": round(train_s / scan_s, 2),
                        "scanRssMb": _median(scans, "maxRssMb"),
                        "trainRssMb": _median(trains, "maxRssMb"),
                    }
                )
                print(json.dumps(rows[-1]), file=sys.stderr, flush=True)  # noqa: T201
        finally:
            embedded_db_stop(server)
    _write(rows, scoring)


def _write(rows: list[dict[str, Any]], scoring: dict[str, Any]) -> None:
    lines = [
        "## Training vs a bare scan (`tests/benchmarks/bench_training.py`)",
        "",
        f"Measured {datetime.now(UTC):%Y-%m-%d} on this project's machine kind (2 cores, shared), against the embedded "
        "SecantusDB server (a real MongoDB reads much faster, which makes the ratio larger, not smaller). Each figure "
        f"is the median of {REPEATS} runs, each in a fresh process; training and scan runs alternate.",
        "",
        "- **scan**: `training_events_scan`, a pymongo cursor over the same window and projection that training reads, "
        "doing nothing with the documents;",
        "- **train**: the whole `manage.py train` pipeline (read, fit and evaluate itemknn and popularity, refit, "
        "publish to a local registry, register);",
        "- peak RSS is the measuring process's own maximum resident set size.",
        "",
        "| events | scan s | train s | train / scan | scan peak RSS MB | train peak RSS MB |",
        "|---:|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        lines.append(
            f"| {row['events']:,} | {row['scanSeconds']} | {row['trainSeconds']} | {row['ratio']}x "
            f"| {row['scanRssMb']} | {row['trainRssMb']} |"
        )
    lines += [
        "",
        "Targets: training at most 3x the bare scan; peak memory at 1M events under 1,500 MB.",
        "",
        f"### Scoring one rider (top 10 of {scoring.get('items')} items, {SIZES[0]:,} events, 2,000 riders)",
        "",
        "| algorithm | median us | p99 us |",
        "|---|---:|---:|",
    ]
    for algorithm in ("popularity", "itemknn", "svd"):
        if algorithm in scoring:
            lines.append(f"| {algorithm} | {scoring[algorithm]['medianUs']} | {scoring[algorithm]['p99Us']} |")
    from tests.benchmarks.report import write_section

    print(f"wrote {write_section('training', chr(10).join(lines))}", file=sys.stderr)  # noqa: T201


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "child":
        child(sys.argv[2])
    else:
        main()

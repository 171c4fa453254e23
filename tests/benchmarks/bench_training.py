"""`make bench`: training cost against a bare cursor scan of the same events, peak memory, and scoring latency.

Starts its own throwaway database, seeds the demo world at each size, then runs every measurement in a fresh process
(so peak RSS is that measurement's own) three times and reports medians. Results go to docs/BENCHMARKS.md.
"""

import json
import os
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
# What is timed against the scan: `manage.py train` with its defaults, and with every algorithm searched.
TRAIN_MODES = {"train": "itemknn", "auto": "auto"}


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
    elif mode in TRAIN_MODES:
        request = TrainingRequest(lookback_days=30, test_days=3, algorithm=TRAIN_MODES[mode], now=END)
        report = training_run(request, stage=lambda n, m: None)
        result["events"] = report.counts["events"]
        result["version"] = report.published.version if report.published else None
        result["chosen"] = report.algorithm
        result["trials"] = len(report.metrics["search"]["trials"])
    elif mode == "score":
        result.update(_score())
    result["seconds"] = round(time.perf_counter() - clock, 3)
    from tests.benchmarks.report import peak_rss_mb

    result["maxRssMb"] = peak_rss_mb()
    print(json.dumps(result))  # noqa: T201 - the parent reads this line


def _score() -> dict[str, Any]:
    from datetime import timedelta

    from core.recommender.algorithms import ALGORITHMS, recommender_fit
    from core.recommender.training_data import InteractionsBuilder
    from recommendations.selectors import training_events_iter

    builder = InteractionsBuilder()
    builder.add_all(training_events_iter(start=END - timedelta(days=30), end=END))
    data = builder.build().interactions
    latencies: dict[str, Any] = {"items": len(data.item_ids)}
    users = data.user_ids[:2000]
    for algorithm in ALGORITHMS:
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
                runs: dict[str, list[dict[str, Any]]] = {mode: [] for mode in ("scan", *TRAIN_MODES)}
                for repeat in range(REPEATS):
                    # Alternate so every mode sees the same machine conditions.
                    for mode, measured in runs.items():
                        registry = Path(scratch) / f"registry-{events}-{mode}-{repeat}"
                        measured.append(_measure(server.uri, events, mode, registry))
                if events == SIZES[0]:
                    scoring = _measure(server.uri, events, "score", Path(scratch) / "unused")
                scan_s = _median(runs["scan"], "seconds")
                row: dict[str, Any] = {
                    "events": events,
                    "seedSeconds": round(seed_seconds, 1),
                    "scanSeconds": scan_s,
                    "scanRssMb": _median(runs["scan"], "maxRssMb"),
                }
                for mode in TRAIN_MODES:
                    seconds = _median(runs[mode], "seconds")
                    row[mode] = {
                        "seconds": seconds,
                        "ratio": round(seconds / scan_s, 2),
                        "rssMb": _median(runs[mode], "maxRssMb"),
                        "chosen": runs[mode][0]["chosen"],
                        "trials": runs[mode][0]["trials"],
                    }
                rows.append(row)
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
        "- **train**: the whole `manage.py train` pipeline with its defaults: read, search itemknn's parameters and "
        "exclusion rule on validation (60 s or 20 trials at most), score the choice and the popularity baselines on "
        "the held-out events and the chronological split, refit, publish to a local registry, register;",
        "- **auto**: the same with `--algorithm auto` (EASE, ALS, itemknn and SVD searched in turn);",
        "- peak RSS is the measuring process's own peak resident set (VmHWM: getrusage's ru_maxrss survives exec and "
        "would report at least the parent's peak).",
        "",
        "| events | scan s | train s | train / scan | auto s | auto / scan | auto chose | scan peak RSS MB "
        "| train peak RSS MB | auto peak RSS MB |",
        "|---:|---:|---:|---:|---:|---:|---|---:|---:|---:|",
    ]
    for row in rows:
        train, auto = row["train"], row["auto"]
        lines.append(
            f"| {row['events']:,} | {row['scanSeconds']} | {train['seconds']} | {train['ratio']}x "
            f"| {auto['seconds']} | {auto['ratio']}x | {auto['chosen']} ({auto['trials']} trials) "
            f"| {row['scanRssMb']} | {train['rssMb']} | {auto['rssMb']} |"
        )
    largest = rows[-1]
    worst = max(largest["train"]["ratio"], largest["auto"]["ratio"])
    memory = max(largest["train"]["rssMb"], largest["auto"]["rssMb"])
    lines += [
        "",
        f"Targets at {largest['events']:,} events: training within 3x the bare scan: {worst}x at most, "
        f"**{'pass' if worst <= 3 else 'fail'}**; peak memory under 1 GB: {memory} MB at most, "
        f"**{'pass' if memory < 1024 else 'fail'}**.",
        "",
        f"### Scoring one rider (top 10 of {scoring.get('items')} items, {SIZES[0]:,} events, 2,000 riders)",
        "",
        "| algorithm | median us | p99 us |",
        "|---|---:|---:|",
    ]
    for algorithm, figures in scoring.items():
        if isinstance(figures, dict):
            lines.append(f"| {algorithm} | {figures['medianUs']} | {figures['p99Us']} |")
    from tests.benchmarks.report import write_section

    print(f"wrote {write_section('training', chr(10).join(lines))}", file=sys.stderr)  # noqa: T201


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "child":
        child(sys.argv[2])
    else:
        main()

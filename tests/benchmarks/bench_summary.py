"""`make bench`: the experiment summary against a bare scan of the same window, at 100k and 1M events.

Events are synthetic exposures and bookings in the last 24 hours (70% `recommend`, 30% `book`), written straight
with pymongo. Each measurement runs in a fresh process (peak RSS is its own), three times, alternating; medians.
"""

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np

BASE_DIR = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(BASE_DIR))
SIZES = [int(size) for size in os.environ.get("BENCH_SIZES", "100000,1000000").split(",")]
REPEATS = int(os.environ.get("BENCH_REPEATS", "3"))


def child(mode: str) -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "rideease.settings")
    import django

    django.setup()
    from django.conf import settings
    from django.utils import timezone

    from experiments.selectors import conversion_stream, experiment_summary, exposure_stream
    from experiments.serializers import experiment_summary_data

    now = timezone.now()
    clock = time.perf_counter()
    result: dict[str, Any] = {}
    if mode == "scan":
        start, window = now - timedelta(hours=24), timedelta(minutes=settings.CONVERSION_WINDOW_MINUTES)
        result["events"] = sum(1 for _ in exposure_stream(start=start, end=now)) + sum(
            1 for _ in conversion_stream(start=start, end=now + window, types=["book"])
        )
    else:
        # The summary as the API answers it: read, counted, tested and shaped.
        summary = experiment_summary_data(experiment_summary(experiment="rec-engine", hours=24, now=now))
        result["exposed"] = (
            summary["variants"]["control"]["exposedUsers"] + summary["variants"]["treatment"]["exposedUsers"]
        )
    result["seconds"] = round(time.perf_counter() - clock, 3)
    from tests.benchmarks.report import peak_rss_mb

    result["maxRssMb"] = peak_rss_mb()
    print(json.dumps(result))  # noqa: T201 - read by the parent


def _seed(uri: str, db: str, events: int) -> None:
    import pymongo

    env = {**os.environ, "MONGODB_URI": uri, "MONGODB_DB": db}
    subprocess.run([sys.executable, "manage.py", "migrate", "-v", "0"], cwd=BASE_DIR, env=env, check=True)
    rng = np.random.default_rng(3)
    now = datetime.now(UTC)
    users = max(1000, events // 20)
    collection = pymongo.MongoClient(uri)[db]["raw_events"]
    exposures = int(events * 0.7)
    batch: list[dict[str, Any]] = []
    for n in range(events):
        user = f"u{int(rng.integers(users)):07d}"
        ts = now - timedelta(seconds=float(rng.uniform(60, 86_000)))
        if n < exposures:
            variant = "treatment" if hash(user) % 2 else "control"
            items = [f"item-{int(i)}" for i in rng.integers(0, 300, size=10)]
            payload = {"requestId": f"r{n}", "variant": variant, "modelVersion": "v1.0.0", "items": items}
            batch.append(
                {"type": "recommend", "userId": user, "itemId": None, "ts": ts, "payload": payload, "receivedAt": ts}
            )
        else:
            item = f"item-{int(rng.integers(0, 300))}"
            batch.append({"type": "book", "userId": user, "itemId": item, "ts": ts, "payload": {}, "receivedAt": ts})
        if len(batch) == 10_000:
            collection.insert_many(batch, ordered=False)
            batch = []
    if batch:
        collection.insert_many(batch, ordered=False)


def _measure(uri: str, db: str, mode: str) -> dict[str, Any]:
    env = {**os.environ, "MONGODB_URI": uri, "MONGODB_DB": db}
    done = subprocess.run(
        [sys.executable, __file__, "child", mode], cwd=BASE_DIR, env=env, capture_output=True, text=True
    )
    if done.returncode != 0:
        raise RuntimeError(f"{mode} failed:\n{done.stderr[-3000:]}")
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def main() -> None:
    from rideease.embedded_db import embedded_db_start, embedded_db_stop, free_port
    from tests.benchmarks.report import write_section

    os.environ.setdefault("DJANGO_SECRET_KEY", "benchmark-only-secret-key-0123456789-abcdefghijklmnopqrstuvwxyz")
    rows = []
    with tempfile.TemporaryDirectory(prefix="rideease-summary-bench-") as scratch:
        server = embedded_db_start(port=free_port(), storage=Path(scratch) / "db")
        try:
            for events in SIZES:
                db = f"summary_{events}"
                print(f"seeding {events} events ...", file=sys.stderr, flush=True)  # noqa: T201
                _seed(server.uri, db, events)
                scans, summaries = [], []
                for _ in range(REPEATS):
                    scans.append(_measure(server.uri, db, "scan"))
                    summaries.append(_measure(server.uri, db, "summary"))
                row = {
                    "events": events,
                    "scan": statistics.median(r["seconds"] for r in scans),
                    "summary": statistics.median(r["seconds"] for r in summaries),
                    "scanRss": statistics.median(r["maxRssMb"] for r in scans),
                    "summaryRss": statistics.median(r["maxRssMb"] for r in summaries),
                }
                rows.append(row)
                print(json.dumps(row), file=sys.stderr, flush=True)  # noqa: T201
        finally:
            embedded_db_stop(server)
    lines = [
        "## Experiment summary vs a bare scan (`tests/benchmarks/bench_summary.py`)",
        "",
        f"Measured {datetime.now(UTC):%Y-%m-%d} against the embedded SecantusDB: synthetic events in the last 24 h "
        "(70% exposures with 10 items, 30% bookings; one user per 20 events). **scan** reads the same two cursors "
        "(exposures; bookings up to one conversion window later) with the same projections and does nothing; "
        "**summary** is the summary as the API answers it, "
        f"`experiment_summary_data(experiment_summary(hours=24))`. Medians of {REPEATS} fresh processes each.",
        "",
        "| events | scan s | summary s | summary / scan | scan peak RSS MB | summary peak RSS MB |",
        "|---:|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        lines.append(
            f"| {row['events']:,} | {row['scan']} | {row['summary']} | {row['summary'] / row['scan']:.2f}x "
            f"| {row['scanRss']} | {row['summaryRss']} |"
        )
    if len(rows) >= 2:
        growth = rows[-1]["summaryRss"] / rows[0]["summaryRss"]
        lines += [
            "",
            f"Peak memory at {rows[-1]['events']:,} events is {growth:.2f}x that at {rows[0]['events']:,} "
            "(target: at most 1.2x); time target: at most 3x the bare scan.",
        ]
    print(write_section("summary", "\n".join(lines)), file=sys.stderr)  # noqa: T201


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "child":
        child(sys.argv[2])
    else:
        main()

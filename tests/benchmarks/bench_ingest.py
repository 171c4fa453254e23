"""`make bench`: `manage.py import_events` against the database's own bare `insert_many` of the same documents.

A seeded JSON Lines file of synthetic events (exposures listing 10 items, views, plays, bookings, skips over 30 days,
no client ids, so the import derives them) is imported into a freshly migrated database, then imported again (every
event already stored). The bare run inserts the very documents the import stores (derived ids included), prepared
in memory beforehand, with unordered `insert_many` in batches of the same size, into a freshly migrated `raw_events`
with the same indexes. Runs alternate; medians.
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
EVENTS = int(os.environ.get("BENCH_INGEST_EVENTS", "200000"))
# A MongoDB to measure instead of the embedded server (databases ingest_* are created on it and dropped).
SERVER_URI = os.environ.get("BENCH_MONGODB_URI", "")
REPEATS = int(os.environ.get("BENCH_REPEATS", "3"))
TYPES = ("recommend", "view", "play", "book", "skip")
TYPE_SHARES = (0.4, 0.4, 0.1, 0.08, 0.02)


def _progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)  # noqa: T201 - benchmark console output


def _events(count: int) -> list[dict[str, Any]]:
    rng = np.random.default_rng(11)
    start = datetime.now(UTC) - timedelta(days=30)
    kinds = rng.choice(len(TYPES), size=count, p=TYPE_SHARES)
    seconds = np.sort(rng.uniform(0, 30 * 86400, size=count))
    users = rng.integers(0, max(1000, count // 30), size=count)
    items = rng.integers(0, 2000, size=(count, 10))
    events = []
    for n in range(count):
        kind = TYPES[int(kinds[n])]
        ts = (start + timedelta(seconds=float(seconds[n]))).isoformat(timespec="milliseconds")
        event: dict[str, Any] = {"type": kind, "userId": f"rider-{int(users[n]):06d}", "ts": ts}
        if kind == "recommend":
            shown = [f"place-{int(item):05d}" for item in items[n]]
            variant = "treatment" if users[n] % 2 else "control"
            event["payload"] = {"requestId": f"req-{n}", "variant": variant, "modelVersion": "v1.0.0", "items": shown}
        else:
            event["itemId"] = f"place-{int(items[n, 0]):05d}"
        events.append(event)
    return events


def _documents(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """What the import stores for each line: the same fields, the same derived ids."""
    from recommendations.events import event_id_derive

    received = datetime.now(UTC)
    return [
        {
            "type": event["type"],
            "userId": event["userId"],
            "itemId": event.get("itemId"),
            "ts": datetime.fromisoformat(event["ts"]),
            "payload": event.get("payload", {}),
            "receivedAt": received,
            "eventId": event_id_derive(event, line),
        }
        for line, event in enumerate(events, start=1)
    ]


def _migrated(env: dict[str, str], db: str) -> dict[str, str]:
    env = {**env, "MONGODB_DB": db}
    subprocess.run([sys.executable, "manage.py", "migrate", "-v", "0"], cwd=BASE_DIR, env=env, check=True)
    return env


def _bare(uri: str, db: str, documents: list[dict[str, Any]], batch: int) -> float:
    import pymongo

    copies = [dict(document) for document in documents]
    collection = pymongo.MongoClient(uri)[db]["raw_events"]
    clock = time.perf_counter()
    for start in range(0, len(copies), batch):
        collection.insert_many(copies[start : start + batch], ordered=False)
    seconds = time.perf_counter() - clock
    assert collection.estimated_document_count() == len(documents)
    return seconds


def _drop(uri: str, *databases: str) -> None:
    import pymongo

    with pymongo.MongoClient(uri) as client:
        for database in databases:
            client.drop_database(database)


def _import(env: dict[str, str], path: Path) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, "manage.py", "import_events", str(path), "--json"],
        cwd=BASE_DIR,
        env=env,
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        raise RuntimeError(f"import failed:\n{done.stderr[-3000:]}")
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def _server_name(uri: str) -> str:
    import pymongo

    with pymongo.MongoClient(uri) as client:
        version = client.server_info().get("version", "?")
    return f"a MongoDB {version} server at BENCH_MONGODB_URI" if SERVER_URI else "the embedded SecantusDB"


def main() -> None:
    os.environ.setdefault("DJANGO_SECRET_KEY", "benchmark-only-secret-key-0123456789-abcdefghijklmnopqrstuvwxyz")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "rideease.settings")
    import django

    django.setup()
    from recommendations.services import INSERT_BATCH_SIZE
    from rideease.embedded_db import embedded_db_start, embedded_db_stop, free_port
    from tests.benchmarks.report import write_section

    events = _events(EVENTS)
    documents = _documents(events)
    bare, first, again = [], [], []
    with tempfile.TemporaryDirectory(prefix="rideease-ingest-bench-") as scratch:
        path = Path(scratch) / "events.jsonl"
        path.write_text("".join(json.dumps(event) + "\n" for event in events))
        server = None if SERVER_URI else embedded_db_start(port=free_port(), storage=Path(scratch) / "db")
        uri = server.uri if server is not None else SERVER_URI
        env = {**os.environ, "MONGODB_URI": uri}
        try:
            for repeat in range(REPEATS):
                bare_env = _migrated(env, f"ingest_bare_{repeat}")
                bare.append(_bare(uri, bare_env["MONGODB_DB"], documents, INSERT_BATCH_SIZE))
                _progress(f"bare insert_many: {EVENTS / bare[-1]:,.0f} documents/s")
                import_env = _migrated(env, f"ingest_import_{repeat}")
                summary = _import(import_env, path)
                assert (summary["inserted"], summary["rejected"]) == (EVENTS, 0), summary
                first.append(summary["seconds"])
                _progress(f"import_events: {EVENTS / first[-1]:,.0f} events/s")
                summary = _import(import_env, path)
                assert (summary["inserted"], summary["duplicates"]) == (0, EVENTS), summary
                again.append(summary["seconds"])
                _progress(f"import_events again: {EVENTS / again[-1]:,.0f} events/s, nothing written")
                _drop(uri, bare_env["MONGODB_DB"], import_env["MONGODB_DB"])
            where = _server_name(uri)
        finally:
            if server is not None:
                embedded_db_stop(server)
    rate = {name: EVENTS / statistics.median(values) for name, values in (("bare", bare), ("first", first))}
    rate["again"] = EVENTS / statistics.median(again)
    lines = [
        "## Bulk ingest vs the database's own insert_many (`tests/benchmarks/bench_ingest.py`)",
        "",
        f"Measured {datetime.now(UTC):%Y-%m-%d} against {where}, {EVENTS:,} events in one JSON Lines "
        "file (40% exposures listing 10 items, the rest views, plays, bookings and skips; no client ids, so the import "
        "derives each one). **bare**: the same documents the import stores (derived ids included), built in memory "
        f"beforehand, written with unordered `insert_many` in batches of {INSERT_BATCH_SIZE:,} into a freshly "
        "migrated `raw_events` (same indexes, the unique id index among them). **import**: "
        "`manage.py import_events FILE --json` into another freshly migrated database, the command's own time (read, "
        "validate, derive ids, write), without Python's start-up. **again**: the same file imported a second time, "
        f"every event already stored. Medians of {REPEATS} alternating runs.",
        "",
        "| run | seconds | events/s | / bare |",
        "|---|---:|---:|---:|",
        f"| bare insert_many | {statistics.median(bare):.2f} | {rate['bare']:,.0f} | 1.00x |",
        f"| import_events | {statistics.median(first):.2f} | {rate['first']:,.0f} "
        f"| {rate['first'] / rate['bare']:.2f}x |",
        f"| import_events again (all duplicates) | {statistics.median(again):.2f} | {rate['again']:,.0f} "
        f"| {rate['again'] / rate['bare']:.2f}x |",
        "",
        "Target: the import rate at least 0.5x the bare rate. Both rates include maintaining `raw_events`' five "
        "indexes (type and time, user and time, time, the unique id, the primary key), which set the database's own "
        "pace. Against a real MongoDB, the way to scale: `BENCH_MONGODB_URI=mongodb://... .venv/bin/python "
        "tests/benchmarks/bench_ingest.py` (it writes its own section).",
    ]
    print(write_section("ingest-mongodb" if SERVER_URI else "ingest", "\n".join(lines)), file=sys.stderr)  # noqa: T201


if __name__ == "__main__":
    main()

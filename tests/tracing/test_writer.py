"""The trace writer against a real server that goes down and comes back: nothing lost, nothing written twice."""

import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pymongo
import pytest
from bson import ObjectId
from pymongo import monitoring

from rideease.embedded_db import EmbeddedDb, embedded_db_start, embedded_db_stop, free_port
from tracing.records import TRACES, exposure_id
from tracing.writer import TraceWriter, WriterConfig

pytestmark = pytest.mark.slow
EVENTS = "raw_events"


@pytest.fixture
def server(tmp_path: Path) -> Iterator[EmbeddedDb]:
    db = embedded_db_start(port=free_port(), storage=tmp_path / "db")
    yield db
    embedded_db_stop(db)


def client_for(
    db: EmbeddedDb, listeners: list[monitoring.CommandListener] | None = None
) -> pymongo.MongoClient[dict[str, Any]]:
    return pymongo.MongoClient(
        db.uri, serverSelectionTimeoutMS=500, connectTimeoutMS=500, event_listeners=listeners or []
    )


def writer_for(
    db: EmbeddedDb,
    spool: Path,
    *,
    flush_seconds: float = 0.05,
    listeners: list[monitoring.CommandListener] | None = None,
) -> TraceWriter:
    client = client_for(db, listeners)
    database = client["writer_test"]
    database[TRACES].create_index("requestId", unique=True)
    return TraceWriter(
        lambda name: database[name],
        WriterConfig(spool_dir=spool, exposures_collection=EVENTS, flush_seconds=flush_seconds),
    )


def records(n: int, request_id: str | None = None) -> tuple[dict[str, Any], dict[str, Any]]:
    """Request n's trace and exposure, as the service builds them; `request_id` is the id its client sent, if any."""
    request_id = request_id or f"req-{n}"
    now = datetime(2026, 11, 26, tzinfo=UTC)
    trace = {"_id": ObjectId(f"{n:024x}"), "requestId": request_id, "userId": f"u{n}", "createdAt": now}
    exposure = {
        "_id": exposure_id(request_id),
        "type": "recommend",
        "userId": f"u{n}",
        "ts": now,
        "payload": {"requestId": request_id},
    }
    return trace, exposure


def counts(db: EmbeddedDb) -> tuple[int, int, int]:
    with client_for(db) as client:
        database = client["writer_test"]
        traces = database[TRACES].count_documents({})
        distinct = len(database[TRACES].distinct("requestId"))
        return traces, distinct, database[EVENTS].count_documents({})


def test_records_reach_the_database_in_the_background(server: EmbeddedDb, tmp_path: Path) -> None:
    writer = writer_for(server, tmp_path / "spool")
    writer.start()
    for n in range(50):
        writer.submit(*records(n))
    assert writer.is_pending("req-0") or counts(server)[0] > 0
    writer.close()
    assert counts(server) == (50, 50, 50)
    assert not writer.is_pending("req-0")


class InsertCounter(monitoring.CommandListener):
    """Counts the insert commands a client sends."""

    def __init__(self) -> None:
        self.inserts = 0

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        self.inserts += event.command_name == "insert"

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        pass

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        pass


def test_steady_traffic_is_written_a_batch_a_round_not_a_few_records_at_a_time(
    server: EmbeddedDb, tmp_path: Path
) -> None:
    counter, flush_seconds = InsertCounter(), 0.2
    writer = writer_for(server, tmp_path / "spool", flush_seconds=flush_seconds, listeners=[counter])
    writer.start()
    started, submitted = time.monotonic(), 0
    while time.monotonic() - started < 2.0:  # up to 1,000 requests a second, a few at a time
        for _ in range(5):
            writer.submit(*records(submitted))
            submitted += 1
        time.sleep(0.005)
    rounds = (time.monotonic() - started) / flush_seconds
    inserts = counter.inserts
    writer.close()
    assert counts(server) == (submitted, submitted, submitted)
    # One insert per collection a round, and a round more at either end.
    assert inserts <= 2 * (rounds + 2), f"{inserts} inserts in {rounds:.0f} rounds of {submitted} requests"


def test_an_outage_spools_records_and_the_replay_writes_each_exactly_once(server: EmbeddedDb, tmp_path: Path) -> None:
    writer = writer_for(server, tmp_path / "spool")
    for n in range(20):
        writer.submit(*records(n))
    writer.close()  # written
    storage = server.storage
    embedded_db_stop(server)
    for n in range(20, 60):
        writer.submit(*records(n))
    writer.close()  # the database is down: everything goes to the spool
    assert writer.stats.spooled == 80
    assert writer.backlog() == 80
    # Also spool a batch that was in fact written already, as after a timeout on a write that succeeded.
    writer._spool([(TRACES, records(3)[0]), (EVENTS, records(3)[1])])
    restarted = embedded_db_start(port=server.port, storage=storage)
    try:
        assert writer.replay_spool() == 82
        assert writer.backlog() == 0
        assert counts(restarted) == (60, 60, 60)
        assert writer.replay_spool() == 0
        assert counts(restarted) == (60, 60, 60)
    finally:
        embedded_db_stop(restarted)


def test_a_full_spool_drops_and_counts_instead_of_filling_the_disk(server: EmbeddedDb, tmp_path: Path) -> None:
    client = client_for(server)
    database = client["writer_test"]
    config = WriterConfig(spool_dir=tmp_path / "spool", exposures_collection=EVENTS, spool_max_bytes=1024, batch_size=5)
    writer = TraceWriter(lambda name: database[name], config)
    embedded_db_stop(server)
    for n in range(40):
        writer.submit(*records(n))
    writer.close()
    assert writer.stats.spooled > 0
    assert writer.stats.dropped > 0
    assert writer.stats.spooled + writer.stats.dropped == 80


def spooled_traces(spool: Path) -> int:
    return sum(line.count('"prediction_traces"') for path in spool.glob("*.jsonl") for line in path.open())


def test_a_backlog_the_database_cannot_take_before_shutdown_is_spooled_not_lost(
    server: EmbeddedDb, tmp_path: Path
) -> None:
    spool = tmp_path / "spool"
    writer = writer_for(server, spool)  # never started: the whole backlog is still queued at close()
    for n in range(3000):
        writer.submit(*records(n))
    writer.close(timeout=0.2)
    written = counts(server)[0]
    assert written < 3000, "the database took everything in 0.2 s: nothing was left to spool"
    assert written + spooled_traces(spool) == 3000
    assert not writer.is_pending("req-2999")

    replayer = writer_for(server, spool)
    replayer.replay_spool()
    assert counts(server) == (3000, 3000, 3000)
    assert spooled_traces(spool) == 0


def test_spooled_dates_replay_intact_and_spool_lines_with_iso_dates_still_replay(
    server: EmbeddedDb, tmp_path: Path
) -> None:
    spool = tmp_path / "spool"
    writer = writer_for(server, spool)
    writer._spool(list(zip((TRACES, EVENTS), records(1), strict=True)))
    assert '"$numberLong"' in next(spool.glob("*.jsonl")).read_text()  # epoch milliseconds, no date string to parse
    earlier_format = {"requestId": "req-iso", "userId": "u9", "createdAt": {"$date": "2026-11-26T00:00:00Z"}}
    (spool / "spool-1-1.jsonl").write_text(json.dumps({"c": TRACES, "d": earlier_format}) + "\n")
    assert writer.replay_spool() == 3
    with client_for(server) as client:
        stored = {trace["requestId"]: trace["createdAt"] for trace in client["writer_test"][TRACES].find()}
        exposure = client["writer_test"][EVENTS].find_one({"_id": exposure_id("req-1")})
    assert stored == {"req-1": datetime(2026, 11, 26), "req-iso": datetime(2026, 11, 26)}
    assert exposure is not None and exposure["ts"] == datetime(2026, 11, 26)


def test_a_request_id_reused_while_the_first_trace_is_on_its_way_keeps_both_traces(
    server: EmbeddedDb, tmp_path: Path
) -> None:
    # Two workers: the second request's id check cannot see the first's trace, still queued in the other worker.
    first, second = writer_for(server, tmp_path / "spool"), writer_for(server, tmp_path / "spool")
    first.submit(*records(1, request_id="client-id"))
    first.close()
    second.submit(*records(2, request_id="client-id"))
    second.close()

    with client_for(server) as client:
        traces = {trace["userId"]: trace for trace in client["writer_test"][TRACES].find()}
        exposures = {event["userId"]: event for event in client["writer_test"][EVENTS].find()}
    assert set(traces) == {"u1", "u2"}, "the later request's trace was dropped as a duplicate"
    assert traces["u1"]["requestId"] == "client-id"
    moved = traces["u2"]
    assert moved["requestId"] != "client-id"
    assert moved["metadata"]["clientRequestId"] == "client-id"
    assert "already used by another request" in moved["metadata"]["requestIdReplaced"]
    # Each exposure follows its own trace, so the experiment counts both requests.
    assert exposures["u1"]["payload"]["requestId"] == "client-id"
    assert exposures["u2"]["payload"]["requestId"] == moved["requestId"]
    assert exposures["u2"]["_id"] == exposure_id(moved["requestId"])

    # Replaying the later request's records (a write that succeeded but looked failed) adds nothing.
    second._spool(list(zip((TRACES, EVENTS), records(2, request_id="client-id"), strict=True)))
    assert second.replay_spool() == 2
    assert counts(server) == (2, 2, 2)


def test_a_fresh_trace_is_written_while_a_long_spool_replays_not_after_it(server: EmbeddedDb, tmp_path: Path) -> None:
    spool = tmp_path / "spool"
    writer = writer_for(server, spool)
    backlog = [record for n in range(2000) for record in zip((TRACES, EVENTS), records(n), strict=True)]
    writer._spool(backlog)  # what an outage left: 2,000 requests, replayed 500 at a time
    writer.start()
    deadline = time.monotonic() + 30
    while not list(spool.glob("replaying-*")) and time.monotonic() < deadline:
        time.sleep(0.01)
    writer.submit(*records(9999, request_id="fresh"))

    with client_for(server) as client:
        traces = client["writer_test"][TRACES]
        while traces.find_one({"requestId": "fresh"}) is None and time.monotonic() < deadline:
            time.sleep(0.02)
        replayed_before_it = traces.count_documents({"requestId": {"$ne": "fresh"}})
    writer.close()
    assert replayed_before_it < 2000, "the fresh trace waited until the whole spool was replayed"
    assert counts(server) == (2001, 2001, 2001)

"""Writes prediction traces and exposure events off the request path, without losing or duplicating any.

Each worker process has one `TraceWriter`: requests hand it records through a bounded queue; a background thread
inserts them in batches, traces into `prediction_traces` and exposures into the collection its config names. A request
encodes its records to BSON itself, so what waits in the queue is bytes: the garbage collector never walks a backlog of
dicts, and the writer thread encodes nothing. When the database cannot take a batch, the batch is appended to the
local spool (`tracing.spool`: JSON Lines, fsynced) and replayed once the database answers again. Every record carries
a key the database enforces as unique (a trace's requestId; an exposure's _id derived from its requestId), so a replay
of a batch that was in fact written only meets duplicate-key errors, which are skipped: none is lost, none is written
twice. A trace refused because a different request holds its request id (a client reused the id before the first
trace reached the database) is kept under an id derived from its own _id, its exposure with it (`tracing.records`).
"""

import logging
import math
import queue
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import bson
from pymongo.collection import Collection
from pymongo.errors import BulkWriteError, PyMongoError

from monitoring.metrics import PREDICTION_ERRORS, TRACE_BACKLOG
from tracing.records import (
    TRACES,
    Document,
    Encoded,
    Record,
    records_from_encoded,
    renamed_exposure,
    renamed_id,
    renamed_trace,
    trace_key,
)
from tracing.spool import Spool

logger = logging.getLogger(__name__)
DUPLICATE_KEY = 11000


@dataclass(frozen=True)
class WriterConfig:
    spool_dir: Path
    exposures_collection: str  # where exposure events go (the events' own collection)
    flush_seconds: float = 0.2
    batch_size: int = 500  # requests per insert round (a trace and an exposure each)
    queue_max_requests: int = 50_000
    spool_max_bytes: int = 256 * 1024 * 1024
    replay_seconds: float = 2.0


@dataclass
class WriterStats:
    written: int = 0
    spooled: int = 0
    replayed: int = 0
    dropped: int = 0
    duplicates: int = 0
    extra: dict[str, int] = field(default_factory=dict)


Collections = Callable[[str], Collection[dict[str, Any]]]


class TraceWriter:
    """A background batch writer with a durable local spool."""

    def __init__(self, collections: Collections, config: WriterConfig) -> None:
        self._collections = collections
        self._config = config
        # One entry per request (its trace and exposure). SimpleQueue's put is a C call without Queue's Python-level
        # locking; the bound is checked before each put, so it may overshoot by the threads racing at that moment.
        self._queue: queue.SimpleQueue[Encoded] = queue.SimpleQueue()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._pending_ids: set[str] = set()
        self._last_replay = 0.0
        self.stats = WriterStats()
        self._disk = Spool(config.spool_dir, config.spool_max_bytes)

    # --- the request side ---------------------------------------------------------------------------------------
    def submit(self, trace: dict[str, Any], exposure: dict[str, Any]) -> None:
        """Queue one request's trace and exposure; never blocks the request (a full queue spools directly)."""
        request_id = trace["requestId"]
        encoded = (request_id, bson.encode(trace), bson.encode(exposure))
        if self._queue.qsize() >= self._config.queue_max_requests:
            self._spool(self._records([encoded]))
            return
        with self._lock:
            self._pending_ids.add(request_id)
        self._queue.put(encoded)

    def is_pending(self, request_id: str) -> bool:
        """Whether this process accepted the request id but has not written its trace yet."""
        with self._lock:
            return request_id in self._pending_ids

    def backlog(self) -> int:
        """Records waiting: queued in memory plus spooled on disk."""
        return 2 * self._queue.qsize() + self._disk.record_count()

    # --- lifecycle ------------------------------------------------------------------------------------------------
    def start(self) -> None:
        if self._thread is None or not self._thread.is_alive():
            self._stop.clear()
            self._thread = threading.Thread(target=self._run, name="trace-writer", daemon=True)
            self._thread.start()

    def close(self, timeout: float = 5.0) -> None:
        """Stop: write what is queued to the database for up to `timeout` seconds, then spool whatever is left.

        A stopping worker has a bounded time to exit (gunicorn's graceful timeout). What the database cannot take in
        that time, e.g. a backlog built up under more load than it keeps up with, goes to the durable spool for the
        next worker to replay instead of dying with the process.
        """
        deadline = time.monotonic() + timeout
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
        self._flush_queue(deadline=deadline)
        left: list[Encoded] = []
        while drained := self._drain():
            left += drained
        if left:
            self._spool(self._records(left))
            self._forget(left)

    # --- the background side --------------------------------------------------------------------------------------
    def _run(self) -> None:
        while not self._stop.is_set():
            self._stop.wait(self._config.flush_seconds)
            self._flush_queue(background=True)
            if time.monotonic() - self._last_replay >= self._config.replay_seconds:
                self._last_replay = time.monotonic()
                self.replay_spool()
                TRACE_BACKLOG.set(self.backlog())

    def _drain(self) -> list[Encoded]:
        drained: list[Encoded] = []
        while len(drained) < self._config.batch_size:
            try:
                drained.append(self._queue.get_nowait())
            except queue.Empty:
                break
        return drained

    def _flush_queue(self, *, deadline: float = math.inf, background: bool = False) -> None:
        """Write queued batches until the queue is empty or `deadline`.

        In the background (the writer's own rounds) it yields to close() between batches, and it ends the round after
        a batch that was not full: what requests queued while that batch was written waits for the next round. Going
        straight on would write a few records per insert, and each insert has a fixed cost in the driver (server
        selection, session and retry handling) worth many documents' own, as a profile under load showed.
        """
        while time.monotonic() < deadline and not (background and self._stop.is_set()):
            if not (drained := self._drain()):
                break
            items = self._records(drained)
            if not self._write(items):
                self._spool(items)
            self._forget(drained)
            if background and len(drained) < self._config.batch_size:
                break

    def _forget(self, drained: Iterable[Encoded]) -> None:
        written = [request_id for request_id, _, _ in drained]
        with self._lock:  # one C call: requests wait on this lock in submit()
            self._pending_ids.difference_update(written)

    def _write(self, items: list[Record]) -> bool:
        """Insert a batch; True when every record is now in the database (written now or before)."""
        exposures = self._config.exposures_collection
        by_collection: dict[str, list[Document]] = {TRACES: [], exposures: []}
        for collection, document in items:
            by_collection[collection].append(document)
        try:
            traces = by_collection[TRACES]
            refused = [traces[index] for index in self._insert(TRACES, traces)]
            renamed = self._taken_by_others(refused)
            moved = [renamed_trace(trace, renamed) for trace in refused if trace_key(trace) in renamed]
            refused_moved = self._insert(TRACES, moved)  # refused only when this very trace was moved before
            events = (
                [renamed_exposure(event, renamed) for event in by_collection[exposures]]
                if renamed
                else by_collection[exposures]
            )
            refused_events = self._insert(exposures, events)
        except PyMongoError as exc:
            PREDICTION_ERRORS.labels(stage="trace_write").inc()
            logger.warning(
                "Trace writer: database unavailable (%s); spooling %d records", type(exc).__name__, len(items)
            )
            return False
        self.stats.duplicates += len(refused) - len(moved) + len(refused_moved) + len(refused_events)
        for given, new in renamed.items():
            logger.warning("Trace writer: two requests used the request id %s; the later trace is now %s", given, new)
        return True

    def _insert(self, name: str, documents: Sequence[Document]) -> list[int]:
        """Insert what is not there yet; return the positions of the documents refused as duplicates."""
        if not documents:
            return []
        try:
            self._collections(name).insert_many(documents, ordered=False)
            # Not len(inserted_ids): the driver lists no ids for documents handed over already encoded.
            self.stats.written += len(documents)
            return []
        except BulkWriteError as exc:
            errors = exc.details.get("writeErrors", [])
            others = [error for error in errors if error.get("code") != DUPLICATE_KEY]
            if others:
                raise
            self.stats.written += exc.details.get("nInserted", 0)
            return [int(error["index"]) for error in errors]

    def _taken_by_others(self, refused: list[Document]) -> dict[str, str]:
        """Of the traces refused as duplicates, those whose request id another request's trace holds: {id: new id}.

        A refused trace is usually this very trace written before (a replay after a write that did succeed): the
        stored one has its _id. A different _id means a client reused the id while the first request's trace was
        still on its way to the database, out of sight of the check at request time (queued in another worker, or
        spooled). That trace is kept under an id of its own instead of being dropped.
        """
        keyed = [trace for trace in refused if "_id" in trace]
        if not keyed:
            return {}
        stored = self._collections(TRACES).find(
            {"requestId": {"$in": [trace_key(trace) for trace in keyed]}}, {"_id": 1, "requestId": 1}
        )
        holders = {document["requestId"]: document["_id"] for document in stored}
        return {
            trace_key(trace): renamed_id(trace["_id"])
            for trace in keyed
            if trace_key(trace) in holders and holders[trace_key(trace)] != trace["_id"]
        }

    # --- the spool ------------------------------------------------------------------------------------------------
    def _spool(self, items: list[Record]) -> None:
        if self._disk.append(items):
            self.stats.spooled += len(items)
        else:
            self.stats.dropped += len(items)

    def replay_spool(self) -> int:
        """Write every spooled record back to the database; return how many records were replayed."""
        replayed = self._disk.replay(self._write_chunks)
        self.stats.replayed += replayed
        return replayed

    def _write_chunks(self, items: list[Record]) -> bool:
        """Write spooled records batch by batch; after each batch, what requests queued meanwhile goes first.

        A spool an outage left behind can take minutes to replay, and the queue is written by this same thread: a
        fresh trace would otherwise wait behind the whole spool instead of being readable a flush interval after its
        answer.
        """
        size = self._config.batch_size * 2
        for start in range(0, len(items), size):
            if not self._write(items[start : start + size]):
                return False
            self._flush_queue(background=True)
        return True

    def _records(self, drained: Iterable[Encoded]) -> list[Record]:
        return records_from_encoded(drained, self._config.exposures_collection)

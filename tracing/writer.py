"""Writes prediction traces and exposure events off the request path, without losing or duplicating any.

Each worker process has one `TraceWriter`: requests hand it records through a bounded queue; a background thread
inserts them in batches. A request encodes its records to BSON itself, so what waits in the queue is bytes: the
garbage collector never walks a backlog of dicts, and the writer thread encodes nothing. When the database
cannot take a batch, the batch is appended to a local spool file (JSON Lines in MongoDB extended JSON with dates as
epoch milliseconds, fsynced) and replayed once the database answers again. Every record carries a key the database
enforces as unique (a trace's requestId; an exposure's _id derived from its requestId), so a replay of a batch that
was in fact written only meets duplicate-key errors, which are skipped: none is lost, none is written twice.
"""

import hashlib
import logging
import math
import os
import queue
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import bson
from bson import ObjectId, json_util
from bson.codec_options import CodecOptions
from bson.json_util import DatetimeRepresentation, JSONMode, JSONOptions
from bson.raw_bson import RawBSONDocument
from pymongo.collection import Collection
from pymongo.errors import BulkWriteError, PyMongoError

from monitoring.metrics import PREDICTION_ERRORS, TRACE_BACKLOG

logger = logging.getLogger(__name__)
DUPLICATE_KEY = 11000
TRACES = "prediction_traces"
EVENTS = "raw_events"
# Decoding a queued record for the spool: datetimes come back as they went in (UTC, tz-aware).
_DECODE: CodecOptions[dict[str, Any]] = CodecOptions(tz_aware=True)
# Spool lines carry dates as epoch milliseconds ({"$date": {"$numberLong": ...}}): reading them back parses no date
# string, which made reading a request's trace and exposure back 1.7 times as slow. Lines with ISO dates still read.
_SPOOL_JSON = JSONOptions(json_mode=JSONMode.LEGACY, datetime_representation=DatetimeRepresentation.NUMBERLONG)
# A record waiting to be written: (collection, document); a queued request's records are still encoded.
Document = dict[str, Any] | RawBSONDocument
Record = tuple[str, Document]
# One request's records, as queued: (request id, trace BSON, exposure BSON).
Encoded = tuple[str, bytes, bytes]


def exposure_id(request_id: str) -> ObjectId:
    """A stable _id for a request's exposure event, so writing it twice is refused by the database itself."""
    return ObjectId(hashlib.sha256(f"exposure:{request_id}".encode()).digest()[:12])


@dataclass(frozen=True)
class WriterConfig:
    spool_dir: Path
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
        config.spool_dir.mkdir(parents=True, exist_ok=True)
        self._spool_path = config.spool_dir / f"spool-{os.getpid()}-{time.time_ns()}.jsonl"

    # --- the request side ---------------------------------------------------------------------------------------
    def submit(self, trace: dict[str, Any], exposure: dict[str, Any]) -> None:
        """Queue one request's trace and exposure; never blocks the request (a full queue spools directly)."""
        request_id = trace["requestId"]
        encoded = (request_id, bson.encode(trace), bson.encode(exposure))
        if self._queue.qsize() >= self._config.queue_max_requests:
            self._spool(_records([encoded]))
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
        return 2 * self._queue.qsize() + self._spooled_records()

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
            self._spool(_records(left))
            self._forget(left)

    # --- the background side --------------------------------------------------------------------------------------
    def _run(self) -> None:
        while not self._stop.is_set():
            self._stop.wait(self._config.flush_seconds)
            self._flush_queue(yield_on_stop=True)
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

    def _flush_queue(self, *, deadline: float = math.inf, yield_on_stop: bool = False) -> None:
        """Write queued batches until the queue is empty or `deadline`; the thread yields to close() between batches."""
        while time.monotonic() < deadline and not (yield_on_stop and self._stop.is_set()):
            if not (drained := self._drain()):
                break
            items = _records(drained)
            if not self._write(items):
                self._spool(items)
            self._forget(drained)

    def _forget(self, drained: Iterable[Encoded]) -> None:
        written = [request_id for request_id, _, _ in drained]
        with self._lock:  # one C call: requests wait on this lock in submit()
            self._pending_ids.difference_update(written)

    def _write(self, items: list[Record]) -> bool:
        """Insert a batch; True when every record is now in the database (written now or before)."""
        by_collection: dict[str, list[Document]] = {}
        for collection, document in items:
            by_collection.setdefault(collection, []).append(document)
        try:
            for name, documents in by_collection.items():
                self._insert(name, documents)
        except PyMongoError as exc:
            PREDICTION_ERRORS.labels(stage="trace_write").inc()
            logger.warning(
                "Trace writer: database unavailable (%s); spooling %d records", type(exc).__name__, len(items)
            )
            return False
        return True

    def _insert(self, name: str, documents: list[Document]) -> None:
        try:
            self._collections(name).insert_many(documents, ordered=False)
            # Not len(inserted_ids): the driver lists no ids for documents handed over already encoded.
            self.stats.written += len(documents)
        except BulkWriteError as exc:
            errors = exc.details.get("writeErrors", [])
            others = [error for error in errors if error.get("code") != DUPLICATE_KEY]
            if others:
                raise
            self.stats.duplicates += len(errors)
            self.stats.written += exc.details.get("nInserted", 0)

    # --- the spool ------------------------------------------------------------------------------------------------
    def _spooled_records(self) -> int:
        total = 0
        for path in self._config.spool_dir.glob("*.jsonl"):
            try:
                with path.open("rb") as handle:
                    total += sum(1 for _ in handle)
            except OSError:
                continue
        return total

    def _spool_bytes(self) -> int:
        return sum(path.stat().st_size for path in self._config.spool_dir.glob("*.jsonl") if path.exists())

    def _spool(self, items: list[Record]) -> None:
        if self._spool_bytes() >= self._config.spool_max_bytes:
            self.stats.dropped += len(items)
            logger.error("Trace spool full (%d bytes); dropped %d records", self._config.spool_max_bytes, len(items))
            return
        records = ({"c": name, "d": _plain(document)} for name, document in items)
        lines = "".join(json_util.dumps(record, json_options=_SPOOL_JSON) + "\n" for record in records)
        with self._spool_path.open("a", encoding="utf-8") as handle:
            handle.write(lines)
            handle.flush()
            os.fsync(handle.fileno())
        self.stats.spooled += len(items)

    def replay_spool(self) -> int:
        """Write every spooled record back to the database; return how many records were replayed."""
        replayed = 0
        for path in sorted(self._config.spool_dir.glob("spool-*.jsonl")):
            claimed = path.with_name(f"replaying-{os.getpid()}-{path.name}")
            try:
                # The rename claims the file: no other worker replays it at the same time.
                path.rename(claimed)
            except OSError:
                continue
            items = [self._decode(line) for line in claimed.read_text(encoding="utf-8").splitlines() if line.strip()]
            if items and not self._write_chunks(items):
                claimed.rename(path)  # still down: keep it for the next attempt
                break
            claimed.unlink()
            replayed += len(items)
        self._reclaim_abandoned()
        self.stats.replayed += replayed
        return replayed

    def _write_chunks(self, items: list[Record]) -> bool:
        size = self._config.batch_size * 2
        return all(self._write(items[start : start + size]) for start in range(0, len(items), size))

    def _reclaim_abandoned(self) -> None:
        """A worker that died while replaying leaves its claimed file behind: put it back in the spool."""
        for path in self._config.spool_dir.glob("replaying-*.jsonl"):
            owner = path.name.split("-")[1]
            if owner.isdigit() and int(owner) != os.getpid() and not _alive(int(owner)):
                path.rename(path.with_name(path.name.split("-", 2)[2]))

    @staticmethod
    def _decode(line: str) -> Record:
        record = json_util.loads(line)
        return str(record["c"]), dict(record["d"])


def _records(drained: Iterable[Encoded]) -> list[Record]:
    """Queued requests as the records to insert: their BSON goes to the database as it is."""
    records: list[Record] = []
    for _, trace, exposure in drained:
        records += [(TRACES, RawBSONDocument(trace)), (EVENTS, RawBSONDocument(exposure))]
    return records


def _plain(document: Document) -> dict[str, Any]:
    """A record as a dict for the spool's extended JSON."""
    if isinstance(document, RawBSONDocument):
        return bson.decode(document.raw, codec_options=_DECODE)
    return dict(document)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True

"""Writes prediction traces and exposure events off the request path, without losing or duplicating any.

Each worker process has one `TraceWriter`: requests hand it records through a bounded queue; a background thread
inserts them in batches. A request encodes its records to BSON itself, so what waits in the queue is bytes: the
garbage collector never walks a backlog of dicts, and the writer thread encodes nothing. When the database
cannot take a batch, the batch is appended to a local spool file (JSON Lines in MongoDB extended JSON with dates as
epoch milliseconds, fsynced) and replayed once the database answers again. Every record carries a key the database
enforces as unique (a trace's requestId; an exposure's _id derived from its requestId), so a replay of a batch that
was in fact written only meets duplicate-key errors, which are skipped: none is lost, none is written twice. A trace
refused because a different request holds its request id (a client reused the id before the first trace reached the
database) is kept under an id derived from its own _id, its exposure with it.
"""

import hashlib
import logging
import math
import os
import queue
import threading
import time
from collections.abc import Callable, Iterable, Sequence
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
        selection, session and retry handling) that was as much CPU as 70 documents' own, in a profile under load.
        """
        while time.monotonic() < deadline and not (background and self._stop.is_set()):
            if not (drained := self._drain()):
                break
            items = _records(drained)
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
        by_collection: dict[str, list[Document]] = {TRACES: [], EVENTS: []}
        for collection, document in items:
            by_collection[collection].append(document)
        try:
            traces = by_collection[TRACES]
            refused = [traces[index] for index in self._insert(TRACES, traces)]
            renamed = self._taken_by_others(refused)
            moved = [_renamed_trace(trace, renamed) for trace in refused if _key(trace) in renamed]
            refused_moved = self._insert(TRACES, moved)  # refused only when this very trace was moved before
            events = (
                [_renamed_exposure(event, renamed) for event in by_collection[EVENTS]]
                if renamed
                else by_collection[EVENTS]
            )
            refused_events = self._insert(EVENTS, events)
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
            {"requestId": {"$in": [_key(trace) for trace in keyed]}}, {"_id": 1, "requestId": 1}
        )
        holders = {document["requestId"]: document["_id"] for document in stored}
        return {
            _key(trace): _renamed_id(trace["_id"])
            for trace in keyed
            if _key(trace) in holders and holders[_key(trace)] != trace["_id"]
        }

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


def _key(trace: Document) -> str:
    return str(trace["requestId"])


def _renamed_id(trace_id: ObjectId) -> str:
    """The id a trace takes when its request id turns out taken: derived from its own _id, so a replay of the same
    trace lands on the same id (and is refused as written) instead of writing it a second time."""
    return hashlib.sha256(f"renamed:{trace_id}".encode()).hexdigest()[:32]


def _renamed_trace(trace: Document, renamed: dict[str, str]) -> dict[str, Any]:
    document = _plain(trace)
    given = document["requestId"]
    document["requestId"] = renamed[given]
    document["metadata"] = {
        **(document.get("metadata") or {}),
        "clientRequestId": given,
        "requestIdReplaced": "already used by another request, found when the trace was written",
    }
    return document


def _renamed_exposure(event: Document, renamed: dict[str, str]) -> Document:
    """A renamed trace's exposure, moved to the new request id; every other event as it is."""
    given = (event.get("payload") or {}).get("requestId")
    if given not in renamed:
        return event
    document = _plain(event)
    document["payload"] = {**document["payload"], "requestId": renamed[given]}
    document["_id"] = exposure_id(renamed[given])
    return document


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

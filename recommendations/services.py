"""Writes for user events."""

import logging
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from bson import ObjectId
from django.conf import settings
from django.db import connections
from django.utils import timezone
from pymongo.collection import Collection
from pymongo.errors import BulkWriteError

from core.assignment import variant_assign
from core.errors import ApplicationError
from core.metrics import COLD_START, MODEL_ERROR
from recommendations.event_files import FileRow
from recommendations.events import (
    EventInput,
    EventLimits,
    EventRejection,
    event_id_derive,
    event_validate,
    events_validate,
)
from recommendations.models import RawEvent
from recommendations.serving import ServingSnapshot
from registry.loading import LoadedModel
from tracing.records import exposure_id

logger = logging.getLogger(__name__)

# Events per unordered insert: large enough that the database, not the round trips, sets the pace.
INSERT_BATCH_SIZE = 10_000
# An import keeps the first rejections for its report; the rest are only counted (and written to its rejects file).
MAX_REPORTED_REJECTIONS = 1000
_DUPLICATE_KEY = 11000


@dataclass(frozen=True)
class Written:
    """What one write did: events inserted, and events whose id was already stored (written before, not again)."""

    inserted: int = 0
    duplicates: int = 0

    def __add__(self, other: "Written") -> "Written":
        return Written(self.inserted + other.inserted, self.duplicates + other.duplicates)


@dataclass(frozen=True)
class IngestResult:
    stored: int
    duplicates: int
    rejected: list[EventRejection]


def event_limits_from_settings() -> EventLimits:
    """The event bounds configured for this deployment."""
    return EventLimits(
        max_payload_bytes=settings.EVENT_MAX_PAYLOAD_BYTES,
        max_future_seconds=settings.EVENT_MAX_FUTURE_SECONDS,
    )


def _events_collection() -> Collection[dict[str, Any]]:
    return connections["default"].get_collection(RawEvent._meta.db_table)  # type: ignore[attr-defined,no-any-return]


def _document(event: EventInput, received: datetime, event_id: str | None) -> dict[str, Any]:
    """The stored form of an event (RawEvent's columns), built directly: the model layer costs more than the insert."""
    document: dict[str, Any] = {
        "type": event.type,
        "userId": event.user_id,
        "itemId": event.item_id,
        "ts": event.ts,
        "payload": event.payload,
        "receivedAt": received,
    }
    if event_id is not None:
        document["eventId"] = event_id
    return document


def raw_events_write(documents: list[dict[str, Any]], collection: Collection[dict[str, Any]] | None = None) -> Written:
    """Insert unordered: every new event is stored, and one whose eventId is already stored counts as a duplicate.

    Any other write error is raised; what was inserted before it stays, and a re-run skips it by id.
    """
    if not documents:
        return Written()
    try:
        target = collection if collection is not None else _events_collection()
        inserted = target.insert_many(documents, ordered=False)
    except BulkWriteError as exc:
        errors = exc.details.get("writeErrors", [])
        if any(error.get("code") != _DUPLICATE_KEY for error in errors):
            raise
        return Written(inserted=int(exc.details.get("nInserted", 0)), duplicates=len(errors))
    return Written(inserted=len(inserted.inserted_ids))


def raw_event_store_many(*, events: Sequence[EventInput], received_at: datetime | None = None) -> int:
    """Insert validated events (with their eventId, when they have one) in batches; return how many were stored."""
    received = received_at or timezone.now()
    stored = 0
    for start in range(0, len(events), INSERT_BATCH_SIZE):
        batch = events[start : start + INSERT_BATCH_SIZE]
        stored += raw_events_write([_document(event, received, event.event_id) for event in batch]).inserted
    return stored


def raw_event_ingest(*, raws: Sequence[object], now: datetime | None = None) -> IngestResult:
    """Validate a batch and store its valid events; invalid ones are reported, not stored.

    Valid events are kept even when others in the batch fail, so one bad event never costs a client the rest. Each
    event is stored under its eventId, or one derived from its content and index: a retried batch stores nothing twice.
    """
    moment = now or timezone.now()
    valid, rejected = events_validate(raws, now=moment, limits=event_limits_from_settings())
    documents = [
        _document(event, moment, event.event_id or event_id_derive(raws[index], index, received=moment))
        for index, event in valid
    ]
    written = raw_events_write(documents)
    return IngestResult(stored=written.inserted, duplicates=written.duplicates, rejected=rejected)


def raw_event_delete_all() -> int:
    """Delete every stored event (used by `seed_demo --replace`); return how many were deleted."""
    deleted, _ = RawEvent.objects.all().delete()
    return deleted


@dataclass
class ImportResult:
    read: int = 0
    written: Written = Written()
    rejected_count: int = 0
    rejected: list[tuple[int, dict[str, str]]] = field(default_factory=list)

    def reject(self, line: int, errors: dict[str, str]) -> None:
        self.rejected_count += 1
        if len(self.rejected) < MAX_REPORTED_REJECTIONS:
            self.rejected.append((line, errors))


class _ChunkWriter:
    """Writes one chunk in a background thread while the caller validates the next (pymongo waits without the GIL)."""

    def __init__(self, collection: Collection[dict[str, Any]], *, dry_run: bool) -> None:
        self._collection = collection
        self._dry_run = dry_run
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="import-writer")
        self._in_flight: Future[Written] | None = None
        self.written = Written()

    def write(self, documents: list[dict[str, Any]]) -> None:
        self._settle()
        if self._dry_run:
            self.written += Written(inserted=len(documents))
        elif documents:
            self._in_flight = self._pool.submit(raw_events_write, documents, self._collection)

    def _settle(self) -> None:
        if self._in_flight is not None:
            in_flight, self._in_flight = self._in_flight, None
            self.written += in_flight.result()

    def __enter__(self) -> "_ChunkWriter":
        return self

    def __exit__(self, *exc_info: object) -> None:
        try:
            self._settle()
        finally:
            self._pool.shutdown()


def _row_document(
    row: FileRow, received: datetime, limits: EventLimits
) -> tuple[dict[str, Any] | None, dict[str, str]]:
    """The stored form of one file row, or None and why it is rejected (field -> message)."""
    if row.error is not None:
        return None, {"line": row.error}
    validated = event_validate(row.event, now=received, limits=limits)
    if not isinstance(validated, EventInput):
        return None, validated
    return _document(validated, received, validated.event_id or event_id_derive(row.event, row.line)), {}


def raw_event_import(
    *,
    rows: Iterable[FileRow],
    chunk_size: int = INSERT_BATCH_SIZE,
    dry_run: bool = False,
    on_progress: Callable[[int], None] | None = None,
    on_reject: Callable[[int, dict[str, str]], None] | None = None,
) -> ImportResult:
    """Validate and store events from a file in chunks, so memory stays flat for files of any size.

    Rejected lines are reported by line number; valid lines are stored (unless dry_run) whatever their neighbours do.
    Each event is stored under its eventId, or one derived from its content and line number, so importing a file
    again (or a longer version of it) writes only what is new.
    """
    result = ImportResult()
    limits = event_limits_from_settings()
    pending: list[dict[str, Any]] = []
    received = timezone.now()
    with _ChunkWriter(_events_collection(), dry_run=dry_run) as writer:
        for row in rows:
            result.read += 1
            document, errors = _row_document(row, received, limits)
            if document is not None:
                pending.append(document)
            else:
                result.reject(row.line, errors)
                if on_reject:
                    on_reject(row.line, errors)
            if len(pending) >= chunk_size:
                writer.write(pending)
                pending, received = [], timezone.now()
                if on_progress:
                    on_progress(result.read)
        writer.write(pending)
    result.written = writer.written
    if on_progress:
        on_progress(result.read)
    return result


@dataclass(frozen=True)
class Served:
    """One answered recommendation request, with everything its trace needs."""

    request_id: str
    user_id: str
    variant: str
    model: LoadedModel
    revision: int
    items: list[tuple[str, float]]
    fallback_reason: str | None
    served_at: datetime
    experiment: str | None = None
    phase: int | None = None


def recommendation_serve(
    *, user_id: str, limit: int, request_id: str, snapshot: ServingSnapshot, now: datetime
) -> Served:
    """Assign the user's variant, score with that variant's model (control stands in when it cannot), and answer.

    The fallback reason says why the answer is not the variant's own personal ranking: the snapshot's treatment
    stand-in reason; else `model_error` when the treatment model raised and control answered instead; else
    `cold_start` when the serving model does not know the rider. The variant stays the one assigned. A control model
    that raises is the service failing: the error propagates.
    """
    if snapshot.unavailable is not None or snapshot.control is None:
        raise ApplicationError("serving_unavailable", f"No model can serve: {snapshot.unavailable}.", status=503)
    variant = variant_assign(user_id, treatment_share=snapshot.treatment_share, salt=snapshot.salt)
    model, fallback = snapshot.model_for(variant)
    try:
        items = model.model.recommend(user_id, limit)
    except Exception:
        if model is snapshot.control:
            raise
        logger.warning("Treatment version %s failed to score; control answered instead", model.version, exc_info=True)
        model, fallback = snapshot.control, MODEL_ERROR
        items = model.model.recommend(user_id, limit)
    if fallback is None and not model.model.knows(user_id):
        fallback = COLD_START
    return Served(
        request_id,
        user_id,
        variant,
        model,
        snapshot.revision,
        items,
        fallback,
        now,
        snapshot.experiment,
        snapshot.phase,
    )


def rounded(value: float, places: int) -> float:
    """`value` rounded to `places` decimals, for a finite value of ordinary size such as a score or a latency.

    Not round(value, places): it prints the value as decimal digits and parses them back (snprintf and strtod), costly
    at a dozen calls an answer. Scaling, rounding to an integer and dividing lands
    on the double nearest the decimal result, which is what round() returns too. The two can differ only when scaling
    moves a value across an exact tie (by one in the last decimal kept), and in the sign of a zero.
    """
    scale = 10.0**places
    return round(value * scale) / scale


def prediction_records(
    served: Served, *, recommendations: list[dict[str, Any]], latency_ms: float, metadata: dict[str, Any]
) -> tuple[dict[str, Any], ...]:
    """The trace and the exposure event of a served request, as the documents the trace writer inserts.

    `recommendations` is the answer's own list ({itemId, score} as the client saw them), so the trace records
    exactly what was served. The exposure carries what the guardrails read: the answer's latency (the trace's value)
    and, only when there was one, the fallback reason (`fallback`; absent, not null, for the variant's own answer, to
    keep the most frequent documents small).
    """
    latency = rounded(latency_ms, 3)
    trace = {
        "_id": ObjectId(),  # set here, not by the driver: the writer hands the database encoded documents
        "requestId": served.request_id,
        "userId": served.user_id,
        "variant": served.variant,
        "modelVersion": served.model.version,
        "artifactSha256": served.model.artifact_sha256,
        "servingRevision": served.revision,
        "dataSnapshotId": served.model.data_snapshot_id,
        "pipelineGitSha": served.model.pipeline_git_sha,
        "containerImageDigest": served.model.container_image_digest,
        "recommendations": recommendations,
        "latencyMs": latency,
        "metadata": metadata,
        "fallbackReason": served.fallback_reason,
        "createdAt": served.served_at,
    }
    payload: dict[str, Any] = {
        "requestId": served.request_id,
        "variant": served.variant,
        "modelVersion": served.model.version,
        "items": [item for item, _ in served.items],
        "latencyMs": latency,
    }
    if served.fallback_reason is not None:
        payload["fallback"] = served.fallback_reason
    if served.experiment is not None:
        # Which experiment and phase the user was exposed in: the phase summary counts by these, not by time.
        tags = {"experiment": served.experiment, "phase": served.phase}
        trace |= tags
        payload |= tags
    exposure = {
        "_id": exposure_id(served.request_id),
        "type": "recommend",
        "userId": served.user_id,
        "itemId": None,
        "ts": served.served_at,
        "payload": payload,
        "receivedAt": served.served_at,
    }
    return trace, exposure

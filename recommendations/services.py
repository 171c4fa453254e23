"""Writes for user events."""

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from django.conf import settings
from django.utils import timezone

from recommendations.event_files import FileRow
from recommendations.events import EventInput, EventLimits, EventRejection, event_validate, events_validate
from recommendations.models import RawEvent

INSERT_BATCH_SIZE = 5000
# An import keeps the first rejections for its report; the rest are only counted.
MAX_REPORTED_REJECTIONS = 1000


@dataclass(frozen=True)
class IngestResult:
    stored: int
    rejected: list[EventRejection]


def event_limits_from_settings() -> EventLimits:
    """The event bounds configured for this deployment."""
    return EventLimits(
        max_payload_bytes=settings.EVENT_MAX_PAYLOAD_BYTES,
        max_future_seconds=settings.EVENT_MAX_FUTURE_SECONDS,
    )


def raw_event_store_many(*, events: Sequence[EventInput], received_at: datetime | None = None) -> int:
    """Insert validated events in batches; return how many were stored."""
    received = received_at or timezone.now()
    rows = [
        RawEvent(
            type=event.type,
            user_id=event.user_id,
            item_id=event.item_id,
            ts=event.ts,
            payload=event.payload,
            received_at=received,
        )
        for event in events
    ]
    RawEvent.objects.bulk_create(rows, batch_size=INSERT_BATCH_SIZE)
    return len(rows)


def raw_event_ingest(*, raws: Sequence[object], now: datetime | None = None) -> IngestResult:
    """Validate a batch and store its valid events; invalid ones are reported, not stored.

    Valid events are kept even when others in the batch fail, so one bad event never costs a client the rest.
    """
    moment = now or timezone.now()
    valid, rejected = events_validate(raws, now=moment, limits=event_limits_from_settings())
    stored = raw_event_store_many(events=valid, received_at=moment) if valid else 0
    return IngestResult(stored=stored, rejected=rejected)


def raw_event_delete_all() -> int:
    """Delete every stored event (used by `seed_demo --replace`); return how many were deleted."""
    deleted, _ = RawEvent.objects.all().delete()
    return deleted


@dataclass
class ImportResult:
    read: int = 0
    stored: int = 0
    rejected_count: int = 0
    rejected: list[tuple[int, dict[str, str]]] = field(default_factory=list)

    def reject(self, line: int, errors: dict[str, str]) -> None:
        self.rejected_count += 1
        if len(self.rejected) < MAX_REPORTED_REJECTIONS:
            self.rejected.append((line, errors))


def raw_event_import(
    *,
    rows: Iterable[FileRow],
    chunk_size: int = INSERT_BATCH_SIZE,
    dry_run: bool = False,
    on_progress: Callable[[int], None] | None = None,
) -> ImportResult:
    """Validate and store events from a file in chunks, so memory stays flat for files of any size.

    Rejected lines are reported by line number; valid lines are stored (unless dry_run) whatever their neighbours do.
    """
    result = ImportResult()
    limits = event_limits_from_settings()
    pending: list[EventInput] = []

    def flush() -> None:
        if pending and not dry_run:
            result.stored += raw_event_store_many(events=pending)
        elif pending:
            result.stored += len(pending)
        if on_progress:
            on_progress(result.read)
        pending.clear()

    for row in rows:
        result.read += 1
        if row.error is not None:
            result.reject(row.line, {"line": row.error})
            continue
        validated = event_validate(row.event, now=timezone.now(), limits=limits)
        if isinstance(validated, EventInput):
            pending.append(validated)
        else:
            result.reject(row.line, validated)
        if len(pending) >= chunk_size:
            flush()
    flush()
    return result

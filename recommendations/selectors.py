"""Reads for user events."""

from collections.abc import Iterator
from datetime import datetime
from typing import Any

from bson.codec_options import CodecOptions, DatetimeConversion
from django.db import connections
from pymongo.collection import Collection
from pymongo.cursor import Cursor

from recommendations.models import RawEvent
from recommendations.runtime import trace_writer
from tracing.selectors import prediction_trace_exists


def raw_event_count() -> int:
    """How many events are stored."""
    return RawEvent.objects.count()


def raw_event_exists() -> bool:
    """Whether any event is stored (cheaper than counting)."""
    return RawEvent.objects.exists()


TRAINING_EVENT_TYPES = ("view", "play", "book", "skip")
_MS_CODEC: CodecOptions[dict[str, Any]] = CodecOptions(datetime_conversion=DatetimeConversion.DATETIME_MS)


def raw_event_collection() -> Collection[dict[str, Any]]:
    """`raw_events` through pymongo, for reads that stream more events than ORM instances could hold."""
    collection: Collection[dict[str, Any]] = connections["default"].get_collection(  # type: ignore[attr-defined]
        RawEvent._meta.db_table
    )
    return collection


def _training_cursor(*, start: datetime, end: datetime, batch_size: int) -> Cursor[dict[str, Any]]:
    return (
        raw_event_collection()
        .with_options(codec_options=_MS_CODEC)
        .find(
            {"ts": {"$gte": start, "$lt": end}, "type": {"$in": list(TRAINING_EVENT_TYPES)}},
            projection={"_id": 0, "userId": 1, "itemId": 1, "type": 1, "ts": 1},
            batch_size=batch_size,
        )
    )


def training_events_iter(
    *, start: datetime, end: datetime, batch_size: int = 20_000
) -> Iterator[tuple[str, str, str, int]]:
    """Stream (userId, itemId, type, ts in ms) of the interaction events in [start, end), straight from pymongo.

    Bypasses the ORM: a million model instances would cost more than the training itself.
    """
    for document in _training_cursor(start=start, end=end, batch_size=batch_size):
        yield document["userId"], document["itemId"], document["type"], int(document["ts"])


def training_events_scan(*, start: datetime, end: datetime, batch_size: int = 20_000) -> int:
    """Read the same events as training_events_iter and do nothing with them: the benchmark's reference cost."""
    return sum(1 for _ in _training_cursor(start=start, end=end, batch_size=batch_size))


def request_id_in_use(*, request_id: str) -> bool:
    """Whether a trace exists, or is about to be written by this process, under this request id."""
    return trace_writer().is_pending(request_id) or prediction_trace_exists(request_id=request_id)

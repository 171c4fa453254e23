"""Reads for user events."""

from collections.abc import Iterator, Sequence
from datetime import datetime
from typing import Any

from bson.codec_options import CodecOptions, DatetimeConversion
from django.db import connections
from pymongo.collection import Collection
from pymongo.cursor import Cursor

from core.recommender.pairs import LEVELS, TEST, TRAIN, VALIDATION, PairRecord
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


def _level_stages(fraction: float) -> list[dict[str, Any]]:
    """Number each rider's events from the newest, then give each its hold-out level (core.recommender.pairs)."""
    newest_first = {
        "partitionBy": "$userId",
        # _id breaks ties in time: insertion order for ObjectIds, so the later of two simultaneous events is newer.
        "sortBy": {"ts": -1, "_id": -1},
        "output": {
            "newest": {"$documentNumber": {}},
            "total": {"$count": {}, "window": {"documents": ["unbounded", "unbounded"]}},
        },
    }
    held = {"$floor": {"$multiply": ["$total", fraction]}}
    validation = {"$floor": {"$multiply": [{"$subtract": ["$total", "$held"]}, fraction]}}
    level = {
        "$switch": {
            "branches": [
                {"case": {"$lte": ["$newest", "$held"]}, "then": TEST},
                {"case": {"$lte": [{"$subtract": ["$newest", "$held"]}, validation]}, "then": VALIDATION},
            ],
            "default": TRAIN,
        }
    }
    return [{"$setWindowFields": newest_first}, {"$set": {"held": held}}, {"$set": {"level": level}}]


def _cell(level: int, kind: str) -> dict[str, Any]:
    return {"$and": [{"$eq": ["$level", level]}, {"$eq": ["$type", kind]}]}


def _pairs_pipeline(
    *, start: datetime, end: datetime, reference: datetime, half_lives: Sequence[float], fraction: float
) -> list[dict[str, Any]]:
    group: dict[str, Any] = {"_id": {"u": "$userId", "i": "$itemId"}, "last": {"$max": "$ts"}}
    for level in LEVELS:
        # $max skips the nulls: the pair's newest event in this level, if any.
        group[f"l{level}"] = {"$max": {"$cond": [{"$eq": ["$level", level]}, "$ts", None]}}
        for kind in TRAINING_EVENT_TYPES:
            group[f"n{level}_{kind}"] = {"$sum": {"$cond": [_cell(level, kind), 1, 0]}}
            for index, half_life in enumerate(half_lives):
                # 2 ** ((ts - newest) / half-life): an event counts half as much for every half-life before the newest.
                exponent = {"$divide": [{"$subtract": ["$ts", reference]}, half_life * 86_400_000]}
                weight = {"$cond": [_cell(level, kind), {"$pow": [2.0, exponent]}, 0.0]}
                group[f"d{index}_{level}_{kind}"] = {"$sum": weight}
    match = {"ts": {"$gte": start, "$lt": end}, "type": {"$in": list(TRAINING_EVENT_TYPES)}}
    fields = {"_id": 1, "userId": 1, "itemId": 1, "type": 1, "ts": 1}
    return [{"$match": match}, {"$project": fields}, *_level_stages(fraction), {"$group": group}]


def _newest_event(*, start: datetime, end: datetime) -> datetime | None:
    match = {"ts": {"$gte": start, "$lt": end}, "type": {"$in": list(TRAINING_EVENT_TYPES)}}
    for document in raw_event_collection().find(match, projection={"_id": 0, "ts": 1}).sort("ts", -1).limit(1):
        ts: datetime = document["ts"]
        return ts
    return None


def _pair_record(document: dict[str, Any], half_lives: Sequence[float]) -> PairRecord:
    cells = [(level, kind) for level in LEVELS for kind in TRAINING_EVENT_TYPES]
    counts = {(level, kind): int(document[f"n{level}_{kind}"]) for level, kind in cells}
    decayed = {
        half_life: {(level, kind): float(document[f"d{index}_{level}_{kind}"]) for level, kind in cells}
        for index, half_life in enumerate(half_lives)
    }
    level_last = {level: int(document[f"l{level}"]) for level in LEVELS if document.get(f"l{level}") is not None}
    key = document["_id"]
    return PairRecord(key["u"], key["i"], counts, decayed, int(document["last"]), level_last)


def training_pairs_iter(
    *, start: datetime, end: datetime, half_lives: Sequence[float], fraction: float, batch_size: int = 2_000
) -> Iterator[PairRecord]:
    """Stream the interaction events of [start, end) summed per (rider, item) and hold-out level, by one aggregation.

    `$match` on the window and `$project` of four fields (on every shard of a cluster), `$setWindowFields` numbering
    each rider's events from the newest (partitioned by rider), then `$group` by rider and item; only the pairs reach
    the client (docs/SCALE.md: where a cluster runs each stage). Decay is relative to the window's newest event and
    rescaled per level by core.recommender.pairs, as the single-machine trainer decays.
    """
    reference = _newest_event(start=start, end=end)
    if reference is None:
        return
    pipeline = _pairs_pipeline(start=start, end=end, reference=reference, half_lives=half_lives, fraction=fraction)
    cursor = (
        raw_event_collection()
        .with_options(codec_options=_MS_CODEC)
        .aggregate(pipeline, allowDiskUse=True, batchSize=batch_size)
    )
    for document in cursor:
        yield _pair_record(document, half_lives)


def request_id_in_use(*, request_id: str) -> bool:
    """Whether a trace exists, or is about to be written by this process, under this request id."""
    return trace_writer().is_pending(request_id) or prediction_trace_exists(request_id=request_id)

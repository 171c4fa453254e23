"""The event streams an experiment's figures are computed from: exposures and conversions, oldest first."""

import heapq
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from bson.codec_options import CodecOptions

from experiments.exposures import CONVERSION, EXPOSURE, Event, Rules
from recommendations.selectors import raw_event_collection

# Documents per cursor batch: small enough that what is read ahead stays a few MB whatever the window holds.
BATCH = 2_000
SLICE = timedelta(hours=1)
# Event times as aware UTC datetimes, comparable with the phases' times.
TZ_AWARE: CodecOptions[dict[str, Any]] = CodecOptions(tz_aware=True)


@dataclass(frozen=True)
class PhaseStreams:
    """What one phase's figures are computed from: the rules, and where each stream starts and ends."""

    experiment: str
    rules: Rules
    # Exposures from the experiment's start (who was exposed in an earlier phase is known before this one begins).
    exposures_from: datetime
    exposures_to: datetime
    # Conversions from the pre-period before the phase, up to one conversion window after its end.
    conversions_from: datetime
    conversions_to: datetime


def _time_slices(start: datetime, end: datetime) -> Iterator[tuple[datetime, datetime]]:
    """Consecutive [a, b) slices of SLICE covering [start, end)."""
    while start < end:
        yield start, min(start + SLICE, end)
        start += SLICE


def _sorted_by_time(query: dict[str, Any], projection: dict[str, int], start: datetime, end: datetime) -> Iterator[Any]:
    """Documents matching `query` with ts in [start, end), oldest first.

    Read one hour at a time, each slice sorted by the server: a server that sorts in memory (rather than walking the
    (type, ts) index) then never holds more than an hour of events, and our side holds one batch.
    """
    for low, high in _time_slices(start, end):
        yield from (
            raw_event_collection()
            .with_options(codec_options=TZ_AWARE)
            .find({**query, "ts": {"$gte": low, "$lt": high}}, projection=projection, batch_size=BATCH)
            .sort("ts", 1)
            .allow_disk_use(True)
        )


def exposure_stream(*, start: datetime, end: datetime, experiment: str | None = None) -> Iterator[Event]:
    """`recommend` events in [start, end) (only those tagged with `experiment` when given), oldest first, with only
    the fields the summary needs."""
    projection = {
        "_id": 0,
        "userId": 1,
        "ts": 1,
        "payload.variant": 1,
        "payload.modelVersion": 1,
        "payload.items": 1,
        "payload.phase": 1,
        "payload.experiment": 1,
        "payload.latencyMs": 1,
        "payload.fallback": 1,
    }
    # The experiment is matched here, not in the query: while it runs nearly every exposure carries it anyway, and
    # the (type, ts) index then serves the query alone on every server.
    for doc in _sorted_by_time({"type": "recommend"}, projection, start, end):
        payload = doc.get("payload") or {}
        if experiment is not None and payload.get("experiment") != experiment:
            continue
        yield Event(
            ts=doc["ts"],
            kind=EXPOSURE,
            user_id=doc["userId"],
            variant=str(payload.get("variant", "")),
            model_version=str(payload.get("modelVersion", "")),
            items=frozenset(payload.get("items") or ()),
            phase=int(payload.get("phase") or 0),
            latency_ms=payload.get("latencyMs"),
            fallback=str(payload.get("fallback") or ""),
        )


def conversion_stream(*, start: datetime, end: datetime, types: list[str]) -> Iterator[Event]:
    """Conversion events in [start, end), oldest first.

    One equality query per type, merged here: some servers answer `type: {$in: [...]}` with a collection scan.
    """
    projection = {"_id": 0, "userId": 1, "ts": 1, "itemId": 1}

    def of_type(kind: str) -> Iterator[Event]:
        for doc in _sorted_by_time({"type": kind}, projection, start, end):
            yield Event(
                ts=doc["ts"],
                kind=CONVERSION,
                user_id=doc["userId"],
                item_id=str(doc.get("itemId") or ""),
                event_type=kind,
            )

    return heapq.merge(*(of_type(kind) for kind in dict.fromkeys(types)), key=lambda event: event.ts)

"""Running aggregates of an experiment's phases, so that a look reads only the events since the previous one.

A phase's tally (experiments/exposures.py `PhaseTally`) is saved in `experiment_rollups` as it stood after every event
before a watermark; the next look restores it, feeds it the events from the watermark on, and saves it again at a
later watermark. The watermark trails the clock by EXPERIMENT_ROLLUP_SETTLE_MINUTES, so events written a little late
(the trace writer's buffer, a client's retried batch) are still read; what is newer is read again at every look and
never saved. Exposures of the conversion window before the watermark are part of the state, so a conversion after
it is matched as in one pass. `rebuild` starts from scratch; the figures are the same.

The state is JSON (orjson), compressed and split into chunk documents under the document size limit. A save writes a
new generation of chunks, then switches the head document to it with a conditional update, then deletes the old
chunks: a reader never sees half a state, and of two looks saving at once one wins and the other's chunks go.
"""

import hashlib
import time
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import orjson
from bson import Binary
from django.conf import settings
from django.db import connections
from pymongo.collection import Collection
from pymongo.errors import BulkWriteError

from core.errors import ApplicationError
from core.metrics import CUPED_PRE_PERIOD_DAYS
from experiments.exposures import Event, ExposureCounts, PhaseTally, Rules, from_micros, merged, micros
from experiments.rollup_pipeline import rebuilt_tally
from experiments.state import ExperimentInfo, Phase
from experiments.streams import PhaseStreams, conversion_stream, exposure_stream

ROLLUP_COLLECTION = "experiment_rollups"
# Bumped whenever what the state holds changes: an older state is then rebuilt, never misread.
STATE_FORMAT = 1
# Compressed bytes per chunk document: well under MongoDB's 16 MB document limit.
CHUNK_BYTES = 8 * 1024 * 1024
# A look catches up this much event time per query, saving nothing in between.
CATCH_UP_STEP = timedelta(hours=6)
# A web request's look reads at least this many events before it may stop for time, so that it always moves forward.
EVENTS_PER_BUDGET_CHECK = 256
RETRY_AFTER_SECONDS = 5


def _collection() -> Collection[dict[str, Any]]:
    collection: Collection[dict[str, Any]] = connections["default"].get_collection(  # type: ignore[attr-defined]
        ROLLUP_COLLECTION
    )
    return collection


def phase_streams(info: ExperimentInfo, phase: Phase, now: datetime) -> PhaseStreams:
    end = min(phase.ended_at or now, now)
    window = timedelta(minutes=int(info.primary_metric.get("windowMinutes", settings.CONVERSION_WINDOW_MINUTES)))
    types = frozenset(info.primary_metric.get("eventTypes", settings.CONVERSION_EVENT_TYPES))
    pre_period = timedelta(days=CUPED_PRE_PERIOD_DAYS) if info.cuped else None
    rules = Rules(
        window=window,
        conversion_types=types,
        phase=phase.id,
        phase_start=phase.started_at,
        secondary=tuple(info.secondary_metrics),
        pre_period=pre_period,
    )
    return PhaseStreams(
        experiment=info.key,
        rules=rules,
        exposures_from=info.phases[0].started_at,
        exposures_to=end,
        conversions_from=phase.started_at - (pre_period or timedelta(0)),
        conversions_to=min(end + window, now),
    )


def _fingerprint(key: str, streams: PhaseStreams) -> str:
    """What the saved state was computed for: a state saved under other rules is rebuilt, never merged."""
    rules = streams.rules
    described = [
        STATE_FORMAT,
        key,
        rules.phase,
        rules.window.total_seconds(),
        sorted(rules.conversion_types),
        list(rules.secondary),
        rules.pre_period.total_seconds() if rules.pre_period else None,
        streams.exposures_from.isoformat(),
        str(rules.phase_start),
    ]
    return hashlib.sha256(orjson.dumps(described)).hexdigest()[:32]


@dataclass(frozen=True)
class Saved:
    watermark: datetime
    state: dict[str, Any]


def _head_id(key: str, phase: int) -> str:
    return f"{key}:{phase}"


def _load(key: str, phase: int, fingerprint: str) -> tuple[int, Saved | None]:
    """(the head's generation, the saved state when it was computed for `fingerprint`)."""
    collection = _collection()
    head = collection.find_one({"_id": _head_id(key, phase)})
    if head is None:
        return 0, None
    generation = int(head["generation"])
    if head.get("fingerprint") != fingerprint:
        return generation, None
    chunks = collection.find({"head": head["_id"], "generation": generation}).sort("index", 1)
    data = b"".join(bytes(chunk["data"]) for chunk in chunks)
    if len(data) != head["bytes"]:  # a chunk missing: never read half a state
        return generation, None
    state = orjson.loads(zlib.decompress(data))
    return generation, Saved(from_micros(head["watermark"]), state)


def _save(key: str, phase: int, fingerprint: str, generation: int, watermark: datetime, state: dict[str, Any]) -> bool:
    """Write the state as the next generation; False when another look saved meanwhile (its state stays)."""
    collection = _collection()
    head_id, new = _head_id(key, phase), generation + 1
    data = zlib.compress(orjson.dumps(state), 1)
    pieces = [data[at : at + CHUNK_BYTES] for at in range(0, len(data), CHUNK_BYTES)] or [b""]
    collection.delete_many({"head": head_id, "generation": new})  # left by a look that stopped before its switch
    try:
        collection.insert_many(
            [
                {"_id": f"{head_id}:{new}:{i}", "head": head_id, "generation": new, "index": i, "data": Binary(piece)}
                for i, piece in enumerate(pieces)
            ]
        )
    except BulkWriteError:  # another look writes the same generation now: it saves, this one does not
        return False
    # The watermark in microseconds: a BSON date keeps milliseconds, and the next look reads from exactly here.
    head = {"fingerprint": fingerprint, "generation": new, "watermark": micros(watermark), "bytes": len(data)}
    if generation:
        switched = collection.update_one({"_id": head_id, "generation": generation}, {"$set": head}).modified_count
    else:
        switched = collection.update_one({"_id": head_id}, {"$setOnInsert": head}, upsert=True).upserted_id is not None
    stale = {"head": head_id, "generation": {"$ne": new} if switched else new}
    collection.delete_many(stale)
    return bool(switched)


def _events(streams: PhaseStreams, start: datetime, end: datetime) -> Iterator[Event]:
    rules = streams.rules
    exposures_from = max(start, streams.exposures_from)
    conversions_from = max(start, streams.conversions_from)
    return merged(
        exposure_stream(start=exposures_from, end=min(end, streams.exposures_to), experiment=streams.experiment),
        conversion_stream(start=conversions_from, end=min(end, streams.conversions_to), types=rules.event_types()),
    )


def phase_counts(
    *, info: ExperimentInfo, phase: Phase, now: datetime, rebuild: bool = False, budget_seconds: float | None = None
) -> ExposureCounts:
    """The phase's figures as of `now`, reading only the events after the saved watermark (all of them to rebuild).

    With `budget_seconds` (a web request's), a look that has more to read than the budget allows saves how far it
    got and answers 503 `summary_computing` with Retry-After; the next look goes on from there.
    """
    streams = phase_streams(info, phase, now)
    fingerprint = _fingerprint(info.key, streams)
    settled = min(now - timedelta(minutes=settings.EXPERIMENT_ROLLUP_SETTLE_MINUTES), streams.conversions_to)
    if rebuild:
        # From scratch in the database, up to the settled instant; the look below reads only what is newer.
        tally = rebuilt_tally(streams, settled)
        _save(info.key, phase.id, fingerprint, _generation(info.key, phase), settled, tally.state())
        tally.feed(_events(streams, settled, now))
        return tally.counts(end=streams.exposures_to)
    generation, saved = _load(info.key, phase.id, fingerprint)
    if saved is not None:
        tally, watermark = PhaseTally.restore(streams.rules, saved.state), saved.watermark
    else:
        tally, watermark = PhaseTally(streams.rules), min(streams.exposures_from, streams.conversions_from)
    if saved is None or settled > watermark:
        budget = _Budget(budget_seconds)
        while watermark < settled:
            step = min(watermark + CATCH_UP_STEP, settled)
            tally.feed(budget.take(_events(streams, watermark, step)))
            if budget.cut is not None:
                _save(info.key, phase.id, fingerprint, generation, budget.cut, tally.state())
                raise _computing(budget.cut, streams, settled)
            watermark = step
        _save(info.key, phase.id, fingerprint, generation, watermark, tally.state())
    tally.feed(_events(streams, watermark, now))
    return tally.counts(end=streams.exposures_to)


class _Budget:
    """Ends a look's stream once out of time, between two instants, so that everything before the cut is read."""

    def __init__(self, seconds: float | None) -> None:
        self._deadline = None if seconds is None else time.monotonic() + seconds
        self._last: datetime | None = None
        self._since_check = 0
        self.cut: datetime | None = None

    def take(self, events: Iterator[Event]) -> Iterator[Event]:
        for event in events:
            if self._deadline is not None and self._last is not None and event.ts > self._last and self._out_of_time():
                self.cut = event.ts
                return
            self._last = event.ts
            self._since_check += 1
            yield event

    def _out_of_time(self) -> bool:
        if self._since_check < EVENTS_PER_BUDGET_CHECK:
            return False
        self._since_check = 0
        return self._deadline is not None and time.monotonic() > self._deadline


def _computing(reached: datetime, streams: PhaseStreams, settled: datetime) -> ApplicationError:
    start = min(streams.exposures_from, streams.conversions_from)
    done = (reached - start) / (settled - start)
    return ApplicationError(
        "summary_computing",
        f"The phase's figures are being brought up to date ({done:.0%} of its time read); ask again in a few seconds.",
        status=503,
        details={"readUpTo": reached.isoformat(), "readingTo": settled.isoformat()},
        headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
    )


def _generation(key: str, phase: Phase) -> int:
    head = _collection().find_one({"_id": _head_id(key, phase.id)}, projection={"generation": 1})
    return int(head["generation"]) if head else 0

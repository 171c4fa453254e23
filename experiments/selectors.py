"""Reads for experiments: the exposure and conversion streams of a window, and the summary built from them."""

import heapq
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings

from core.errors import ApplicationError
from core.statistics import Arm, Result, Settings, analyse, rate_interval
from core.variants import DEFAULT_EXPERIMENT
from experiments.exposures import CONVERSION, EXPOSURE, Event, ExposureCounts, VariantCounts, count_exposures, merged
from recommendations.selectors import raw_event_collection
from registry.selectors import serving_state_current
from registry.state import ServingStateInfo

EXPERIMENTS = (DEFAULT_EXPERIMENT,)
# Documents per cursor batch: small enough that what is read ahead stays a few MB whatever the window holds.
BATCH = 2_000
SLICE = timedelta(hours=1)


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
            .find({**query, "ts": {"$gte": low, "$lt": high}}, projection=projection, batch_size=BATCH)
            .sort("ts", 1)
            .allow_disk_use(True)
        )


def exposure_stream(*, start: datetime, end: datetime) -> Iterator[Event]:
    """`recommend` events in [start, end), oldest first, with only the fields the summary needs."""
    projection = {"_id": 0, "userId": 1, "ts": 1, "payload.variant": 1, "payload.modelVersion": 1, "payload.items": 1}
    for doc in _sorted_by_time({"type": "recommend"}, projection, start, end):
        payload = doc.get("payload") or {}
        yield Event(
            ts=doc["ts"],
            kind=EXPOSURE,
            user_id=doc["userId"],
            variant=str(payload.get("variant", "")),
            model_version=str(payload.get("modelVersion", "")),
            items=frozenset(payload.get("items") or ()),
        )


def conversion_stream(*, start: datetime, end: datetime, types: list[str]) -> Iterator[Event]:
    """Conversion events in [start, end), oldest first.

    One equality query per type, merged here: some servers answer `type: {$in: [...]}` with a collection scan.
    """
    projection = {"_id": 0, "userId": 1, "ts": 1, "itemId": 1}

    def of_type(kind: str) -> Iterator[Event]:
        for doc in _sorted_by_time({"type": kind}, projection, start, end):
            yield Event(ts=doc["ts"], kind=CONVERSION, user_id=doc["userId"], item_id=str(doc.get("itemId") or ""))

    return heapq.merge(*(of_type(kind) for kind in dict.fromkeys(types)), key=lambda event: event.ts)


def window_counts(*, start: datetime, end: datetime) -> ExposureCounts:
    """Exposed and converted users per variant for exposures in [start, end)."""
    window = timedelta(minutes=settings.CONVERSION_WINDOW_MINUTES)
    exposures = exposure_stream(start=start, end=end)
    # A conversion may come up to one conversion window after the last exposure of the window.
    conversions = conversion_stream(start=start, end=end + window, types=list(settings.CONVERSION_EVENT_TYPES))
    return count_exposures(merged(exposures, conversions), window=window)


@dataclass(frozen=True)
class VersionShare:
    version: str
    exposures: int
    share: float


@dataclass(frozen=True)
class RateInterval:
    lower: float
    upper: float
    method: str = "wilson"


@dataclass(frozen=True)
class VariantSummary:
    versions: list[VersionShare]
    exposed_users: int
    converted_users: int
    conversion_rate: float | None
    conversion_rate_ci: RateInterval | None


@dataclass(frozen=True)
class ExperimentSummary:
    """What the summary says; ExperimentSummarySerializer shapes it for the API, the web admin and the command."""

    experiment: str
    start: datetime
    end: datetime
    hours: int
    conversion_window_minutes: int
    conversion_event_types: list[str]
    treatment_share: float
    control: VariantSummary
    treatment: VariantSummary
    users_in_both: int
    stats: Result
    serving: ServingStateInfo | None


def _variant_summary(counts: VariantCounts, alpha: float) -> VariantSummary:
    total = sum(counts.versions.values())
    interval = rate_interval(Arm(counts.exposed_users, counts.converted_users), alpha=alpha)
    exposed, converted = counts.exposed_users, counts.converted_users
    return VariantSummary(
        versions=[
            VersionShare(version, n, round(n / total, 4))
            for version, n in sorted(counts.versions.items(), key=lambda item: -item[1])
        ],
        exposed_users=exposed,
        converted_users=converted,
        conversion_rate=round(converted / exposed, 6) if exposed else None,
        conversion_rate_ci=RateInterval(round(interval[0], 6), round(interval[1], 6)) if interval else None,
    )


def experiment_summary(*, experiment: str, hours: int, now: datetime, alpha: float | None = None) -> ExperimentSummary:
    """The summary of the last `hours` hours: counts per variant, statistics, decision and reasons."""
    if experiment not in EXPERIMENTS:
        raise ApplicationError("experiment_not_found", f"No experiment named {experiment!r}.", status=404)
    start = now - timedelta(hours=hours)
    counts = window_counts(start=start, end=now)
    state = serving_state_current(experiment=experiment)
    share = state.treatment_share if state else 0.5
    config = Settings(
        alpha=alpha if alpha is not None else settings.EXPERIMENT_ALPHA,
        relative_mde=settings.EXPERIMENT_RELATIVE_MDE,
        power=settings.EXPERIMENT_POWER,
        treatment_share=share,
    )
    result = analyse(
        Arm(counts.control.exposed_users, counts.control.converted_users),
        Arm(counts.treatment.exposed_users, counts.treatment.converted_users),
        config,
    )
    return ExperimentSummary(
        experiment=experiment,
        start=start,
        end=now,
        hours=hours,
        conversion_window_minutes=settings.CONVERSION_WINDOW_MINUTES,
        conversion_event_types=list(settings.CONVERSION_EVENT_TYPES),
        treatment_share=share,
        control=_variant_summary(counts.control, config.alpha),
        treatment=_variant_summary(counts.treatment, config.alpha),
        users_in_both=counts.users_in_both,
        stats=result,
        serving=state,
    )

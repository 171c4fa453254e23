"""Reads for experiments: the exposure and conversion streams of a window, and the summary built from them."""

import heapq
from collections.abc import Iterator
from dataclasses import asdict
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import connections
from pymongo.collection import Collection

from experiments.exposures import CONVERSION, EXPOSURE, Event, ExposureCounts, count_exposures, merged
from experiments.statistics import Arm, Result, Settings, analyse, rate_interval
from registry.selectors import serving_state_current
from registry.services import DEFAULT_EXPERIMENT
from rideease.errors import ApplicationError

EXPERIMENTS = (DEFAULT_EXPERIMENT,)
# Documents per cursor batch: small enough that what is read ahead stays a few MB whatever the window holds.
BATCH = 2_000
SLICE = timedelta(hours=1)


def _events() -> Collection[dict[str, Any]]:
    return connections["default"].get_collection("raw_events")  # type: ignore[attr-defined, no-any-return]


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
            _events()
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


def _variant_json(counts: Any, alpha: float) -> dict[str, Any]:
    total = sum(counts.versions.values())
    interval = rate_interval(Arm(counts.exposed_users, counts.converted_users), alpha=alpha)
    return {
        "versions": [
            {"version": version, "exposures": n, "share": round(n / total, 4)}
            for version, n in sorted(counts.versions.items(), key=lambda item: -item[1])
        ],
        "exposedUsers": counts.exposed_users,
        "convertedUsers": counts.converted_users,
        "conversionRate": round(counts.converted_users / counts.exposed_users, 6) if counts.exposed_users else None,
        "conversionRateCi": {"lower": round(interval[0], 6), "upper": round(interval[1], 6), "method": "wilson"}
        if interval
        else None,
    }


def _stats_json(result: Result) -> dict[str, Any]:
    data = asdict(result)
    return {
        "difference": data["difference"],
        "relativeLift": data["relative_lift"],
        "ci": {"lower": data["ci_lower"], "upper": data["ci_upper"], "level": data["level"], "method": data["method"]},
        "z": data["z"],
        "pValue": data["p_value"],
        "alpha": data["alpha"],
        "srm": {"pValue": data["srm_p_value"], "ok": data["srm_ok"]},
        "minSamplePerVariant": data["min_sample_per_variant"],
        "power": data["power"],
    }


def experiment_summary(*, experiment: str, hours: int, now: datetime, alpha: float | None = None) -> dict[str, Any]:
    """The summary of the last `hours` hours: counts per variant, statistics, decision and reasons."""
    if experiment not in EXPERIMENTS:
        raise ApplicationError("experiment_not_found", f"No experiment named {experiment!r}.", status=404)
    if not 1 <= hours <= 720:
        raise ApplicationError("validation_error", "windowHours must be an integer from 1 to 720.")
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
    return {
        "experiment": experiment,
        "window": {"start": start.isoformat(), "end": now.isoformat(), "hours": hours},
        "conversion": {
            "windowMinutes": settings.CONVERSION_WINDOW_MINUTES,
            "eventTypes": settings.CONVERSION_EVENT_TYPES,
        },
        "treatmentShare": share,
        "variants": {
            "control": _variant_json(counts.control, config.alpha),
            "treatment": _variant_json(counts.treatment, config.alpha),
        },
        "usersInBothVariants": counts.users_in_both,
        "stats": _stats_json(result),
        "decision": result.decision,
        "reasons": result.reasons,
        "serving": {"control": state.control_version, "treatment": state.treatment_version} if state else None,
    }

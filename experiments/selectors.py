"""Reads for experiments: the exposure and conversion streams of a window, and the summary built from them."""

import math
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings

from core.errors import ApplicationError
from core.guardrails import (
    GuardrailResult,
    MetricResult,
    RequestStats,
    cuped,
    guardrails_check,
    mean_metric,
    metrics_adjusted,
)
from core.statistics import Arm, Result, Settings, analyse, rate_interval
from core.variants import CONTROL, DEFAULT_EXPERIMENT, TREATMENT
from experiments.exposures import ExposureCounts, VariantCounts, count_exposures, merged
from experiments.models import Experiment, ExperimentStatus
from experiments.rollups import phase_counts
from experiments.state import ExperimentInfo, Phase, experiment_info
from experiments.streams import conversion_stream, exposure_stream
from registry.selectors import serving_state_current
from registry.state import ServingStateInfo

# The serving slots: /experiments/<slot>/summary reads the experiment running on it (or a window of hours).
SLOTS = (DEFAULT_EXPERIMENT,)
DAY = timedelta(days=1)
# The slot's summary when no experiment runs on it.
DEFAULT_WINDOW_HOURS = 24


def window_counts(*, start: datetime, end: datetime) -> ExposureCounts:
    """Exposed and converted users per variant for exposures in [start, end), tagged or not."""
    window = timedelta(minutes=settings.CONVERSION_WINDOW_MINUTES)
    exposures = exposure_stream(start=start, end=end)
    # A conversion may come up to one conversion window after the last exposure of the window.
    conversions = conversion_stream(start=start, end=end + window, types=list(settings.CONVERSION_EVENT_TYPES))
    types = list(settings.CONVERSION_EVENT_TYPES)
    return count_exposures(merged(exposures, conversions), window=window, conversion_types=frozenset(types))


def experiment_get(*, key: str) -> ExperimentInfo:
    record = Experiment.objects.filter(key=key).first()
    if record is None:
        raise ApplicationError("experiment_not_found", f"No experiment with key {key!r}.", status=404)
    return experiment_info(record)


def experiment_running(*, slot: str = DEFAULT_EXPERIMENT) -> ExperimentInfo | None:
    record = Experiment.objects.filter(slot=slot, status=ExperimentStatus.RUNNING).first()
    return experiment_info(record) if record else None


def experiment_list(*, status: str | None = None, limit: int = 100) -> list[ExperimentInfo]:
    """Experiments newest first, optionally of one status."""
    query = Experiment.objects.order_by("-created_at")
    if status is not None:
        query = query.filter(status=status)
    return [experiment_info(record) for record in query[:limit]]


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
class CumulativePoint:
    """The difference and its interval as they stood at the end of a day of the phase (the last point: now)."""

    day: int
    at: datetime
    control_users: int
    treatment_users: int
    difference: float | None
    ci_lower: float | None
    ci_upper: float | None
    decision: str


@dataclass(frozen=True)
class ExperimentSummary:
    """What the summary says; ExperimentSummarySerializer shapes it for the API, the web admin and the command.

    Either an experiment's phase (`phase` set, `hours` None) or an ad-hoc window of hours over every exposure.
    """

    experiment: str
    slot: str
    start: datetime
    end: datetime
    hours: int | None
    conversion_window_minutes: int
    conversion_event_types: list[str]
    treatment_share: float
    control: VariantSummary
    treatment: VariantSummary
    users_in_both: int
    stats: Result
    serving: ServingStateInfo | None
    phase: Phase | None = None
    status: str | None = None
    users_from_earlier_phases: int = 0
    cumulative: list[CumulativePoint] = field(default_factory=list)
    # A phase's guardrails, secondary metrics (p-values adjusted together), answers per arm and the ramp.
    guardrails: list[GuardrailResult] = field(default_factory=list)
    secondary: list[MetricResult] = field(default_factory=list)
    requests: dict[str, RequestStats] = field(default_factory=dict)
    ramp: list[dict[str, Any]] = field(default_factory=list)
    ramp_step: int = 0


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


def _arms(counts: ExposureCounts) -> tuple[Arm, Arm]:
    return (
        Arm(counts.control.exposed_users, counts.control.converted_users),
        Arm(counts.treatment.exposed_users, counts.treatment.converted_users),
    )


def experiment_summary(*, experiment: str, hours: int, now: datetime, alpha: float | None = None) -> ExperimentSummary:
    """The ad-hoc summary of the last `hours` hours on a slot, over every exposure (tagged or not).

    For exploration: users exposed under different shares or versions are added together, so decisions use the
    phase summary instead.
    """
    if experiment not in SLOTS:
        raise ApplicationError("experiment_not_found", f"No serving slot named {experiment!r}.", status=404)
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
    return ExperimentSummary(
        experiment=experiment,
        slot=experiment,
        start=start,
        end=now,
        hours=hours,
        conversion_window_minutes=settings.CONVERSION_WINDOW_MINUTES,
        conversion_event_types=list(settings.CONVERSION_EVENT_TYPES),
        treatment_share=share,
        control=_variant_summary(counts.control, config.alpha),
        treatment=_variant_summary(counts.treatment, config.alpha),
        users_in_both=counts.users_in_both,
        stats=analyse(*_arms(counts), config),
        serving=state,
    )


def _look(start: datetime, end: datetime) -> int:
    """The daily look this is: 1 during the phase's first day, 2 during its second, ..."""
    return max(1, math.ceil((end - start) / DAY))


def experiment_phase_summary(
    *,
    info: ExperimentInfo,
    now: datetime,
    phase_id: int | None = None,
    alpha: float | None = None,
    rebuild: bool = False,
    budget_seconds: float | None = None,
) -> ExperimentSummary:
    """An experiment's summary over one phase (the current one by default), from the phase's start.

    Only exposures tagged with the phase count, and users first exposed in an earlier phase are left out; the
    sample-ratio check uses the phase's own share. `cumulative` has the difference and its interval at the end of
    each day of the phase, as a daily look would have seen them (without CUPED; the last point is the decision's).
    The figures come from the phase's running aggregates, brought up to date (`rebuild`: recomputed from scratch).
    """
    if not info.phases:
        raise ApplicationError("experiment_not_started", f"Experiment {info.key} has not started.", status=409)
    phase = info.current_phase if phase_id is None else next((p for p in info.phases if p.id == phase_id), None)
    if phase is None:
        raise ApplicationError("phase_not_found", f"Experiment {info.key} has no phase {phase_id}.", status=404)
    start, end = phase.started_at, min(phase.ended_at or now, now)
    counts = phase_counts(info=info, phase=phase, now=now, rebuild=rebuild, budget_seconds=budget_seconds)
    config = info.settings(treatment_share=phase.treatment_share)
    if alpha is not None:
        config = replace(config, alpha=alpha)
    control, treatment = _arms(counts)
    adjusted = cuped(counts.primary[CONTROL], counts.primary[TREATMENT]) if info.cuped else None
    stats = analyse(control, treatment, config, look=_look(start, end), adjusted=adjusted)
    cumulative = [
        _point(day, point.at, Arm(*point.control), Arm(*point.treatment), config)
        for day, point in enumerate(counts.cumulative, start=1)
    ]
    cumulative.append(_point(_look(start, end), end, control, treatment, config, stats))
    secondary = [
        mean_metric(name, arms[CONTROL], arms[TREATMENT], alpha=config.alpha, n_star=config.n_star)
        for name, arms in counts.secondary.items()
    ]
    return ExperimentSummary(
        experiment=info.key,
        slot=info.slot,
        start=start,
        end=end,
        hours=None,
        conversion_window_minutes=int(info.primary_metric.get("windowMinutes", settings.CONVERSION_WINDOW_MINUTES)),
        conversion_event_types=list(info.primary_metric.get("eventTypes", settings.CONVERSION_EVENT_TYPES)),
        treatment_share=phase.treatment_share,
        control=_variant_summary(counts.control, config.alpha),
        treatment=_variant_summary(counts.treatment, config.alpha),
        users_in_both=counts.users_in_both,
        stats=stats,
        serving=serving_state_current(experiment=info.slot),
        phase=phase,
        status=info.status,
        users_from_earlier_phases=counts.users_from_earlier_phases,
        cumulative=cumulative,
        guardrails=guardrails_check(
            info.guardrails,
            counts.requests[CONTROL],
            counts.requests[TREATMENT],
            alpha=config.alpha,
            n_star=config.n_star,
        ),
        secondary=metrics_adjusted(secondary, info.adjustment, config.alpha),
        requests=counts.requests,
        ramp_step=info.ramp_step,
        ramp=info.ramp,
    )


def _point(
    day: int, at: datetime, control: Arm, treatment: Arm, config: Settings, stats: Result | None = None
) -> CumulativePoint:
    result = stats or analyse(control, treatment, config, look=day)
    return CumulativePoint(
        day=day,
        at=at,
        control_users=control.exposed,
        treatment_users=treatment.exposed,
        difference=result.difference,
        ci_lower=result.ci_lower,
        ci_upper=result.ci_upper,
        decision=result.decision,
    )


def summary_read(
    *,
    key: str,
    hours: int | None,
    phase_id: int | None,
    now: datetime,
    rebuild: bool = False,
    budget_seconds: float | None = None,
) -> ExperimentSummary:
    """The summary the API, the web admin and the command show for `key`.

    An experiment's key: its current phase (or `phase_id`). The slot's name: the experiment running on it, or the
    last 24 hours when none runs. `hours`: an ad-hoc window of hours on the slot, for exploration.
    """
    if hours is not None:
        if phase_id is not None:
            raise ApplicationError("validation_error", "Give phase or windowHours, not both.")
        slot = key if key in SLOTS else experiment_get(key=key).slot
        return experiment_summary(experiment=slot, hours=hours, now=now)
    info = experiment_running(slot=key) if key in SLOTS else experiment_get(key=key)
    if info is None:
        if phase_id is not None:
            raise ApplicationError("experiment_not_found", f"No experiment runs on {key}.", status=404)
        return experiment_summary(experiment=key, hours=DEFAULT_WINDOW_HOURS, now=now)
    return experiment_phase_summary(
        info=info, now=now, phase_id=phase_id, rebuild=rebuild, budget_seconds=budget_seconds
    )

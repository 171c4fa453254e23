"""Experiments: what was tested, on which versions, with which rule, by whom, when, in which phases, and the result."""

import re

from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator, RegexValidator
from django.db import models

from core.metrics import ADJUSTMENTS, DEFAULT_GUARDRAILS, EVENT_METRIC_PREFIX, GUARDRAIL_METRICS, SECONDARY_METRICS
from core.statistics import FIXED_HORIZON, GROUP_SEQUENTIAL, SEQUENTIAL
from core.variants import DEFAULT_EXPERIMENT

KEY_PATTERN = r"^[a-z][a-z0-9-]{0,63}$"


def _not_a_slot(key: str) -> None:
    # The slot's own name reads the running experiment in /experiments/<slot>/summary, so no experiment may take it.
    if key == DEFAULT_EXPERIMENT:
        raise ValidationError(f"{key!r} names the serving slot; choose another key.")


SHARE_MIN, SHARE_MAX = 0.001, 0.999


def _open_share(share: float) -> None:
    # Both arms get riders: from a 0.1% canary to 99.9%.
    if not SHARE_MIN <= share <= SHARE_MAX:
        raise ValidationError(f"The treatment share must be from {SHARE_MIN} to {SHARE_MAX}.")


MAX_RAMP_STEPS = 10
EVENT_TYPE_PATTERN = r"^[a-z][a-z0-9_]{0,31}$"
_EVENT_TYPE = re.compile(EVENT_TYPE_PATTERN)


def default_guardrails() -> list[dict[str, object]]:
    return [dict(guardrail) for guardrail in DEFAULT_GUARDRAILS]


def _number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _guardrails_valid(guardrails: object) -> None:
    """[{metric, threshold, relative}], each metric at most once."""
    if not isinstance(guardrails, list):
        raise ValidationError("A list of {metric, threshold, relative}.")
    seen = set()
    for guardrail in guardrails:
        if not isinstance(guardrail, dict) or set(guardrail) != {"metric", "threshold", "relative"}:
            raise ValidationError("Each guardrail is {metric, threshold, relative}.")
        metric, threshold = guardrail["metric"], guardrail["threshold"]
        if metric not in GUARDRAIL_METRICS or metric in seen:
            raise ValidationError(f"metric must be one of {', '.join(GUARDRAIL_METRICS)}, each once.")
        if not _number(threshold) or not 0 <= threshold <= 100 or not isinstance(guardrail["relative"], bool):
            raise ValidationError(f"{metric}: threshold is a number from 0 to 100 and relative true or false.")
        seen.add(metric)


def _secondary_metrics_valid(names: object) -> None:
    """Names from the catalogue, or event:<type>, each at most once."""
    if not isinstance(names, list) or len(names) != len(set(map(str, names))) or len(names) > 10:
        raise ValidationError("A list of up to 10 distinct metric names.")
    for name in names:
        if not isinstance(name, str):
            raise ValidationError("Metric names are strings.")
        if name in SECONDARY_METRICS:
            continue
        event_type = name.removeprefix(EVENT_METRIC_PREFIX)
        if name == event_type or not _EVENT_TYPE.match(event_type):
            raise ValidationError(f"{name!r}: one of {', '.join(SECONDARY_METRICS)} or event:<type>.")


def _ramp_valid(steps: object) -> None:
    """[{share, minHours, minUsers}], shares rising within the open range; empty: no ramp."""
    if not isinstance(steps, list) or len(steps) > MAX_RAMP_STEPS:
        raise ValidationError(f"A list of up to {MAX_RAMP_STEPS} steps {{share, minHours, minUsers}}.")
    previous = 0.0
    for step in steps:
        if not isinstance(step, dict) or set(step) != {"share", "minHours", "minUsers"}:
            raise ValidationError("Each step is {share, minHours, minUsers}.")
        share, hours, users = step["share"], step["minHours"], step["minUsers"]
        if not _number(share) or not SHARE_MIN <= share <= SHARE_MAX or share <= previous:
            raise ValidationError(f"Step shares rise, each from {SHARE_MIN} to {SHARE_MAX}.")
        if not _number(hours) or not 0 <= hours <= 24 * 365:
            raise ValidationError("minHours is a number of hours from 0 to 8760.")
        if not isinstance(users, int) or isinstance(users, bool) or not 0 <= users <= 100_000_000:
            raise ValidationError("minUsers is a whole number from 0 to 100000000.")
        previous = share


class ExperimentStatus(models.TextChoices):
    DRAFT = "draft", "draft"
    RUNNING = "running", "running"
    STOPPED = "stopped", "stopped"


class ExperimentResult(models.TextChoices):
    SHIPPED = "shipped", "shipped"
    ROLLED_BACK = "rolled_back", "rolled back"
    INCONCLUSIVE = "inconclusive", "inconclusive"
    ABANDONED = "abandoned", "abandoned"


class DecisionRule(models.TextChoices):
    SEQUENTIAL = SEQUENTIAL, "confidence sequence (valid at any look)"
    GROUP_SEQUENTIAL = GROUP_SEQUENTIAL, "group sequential (valid at the planned daily looks)"
    FIXED_HORIZON = FIXED_HORIZON, "fixed horizon (valid only when read once at the planned sample)"


class Experiment(models.Model):
    """One experiment (`experiments` collection): a draft, then running on a serving slot, then stopped for good."""

    key = models.CharField(
        max_length=64,
        unique=True,
        validators=[
            RegexValidator(KEY_PATTERN, "Lower-case letters, digits and -, starting with a letter."),
            _not_a_slot,
        ],
        help_text="Lower-case letters, digits and -; stamped on every exposure served while it runs.",
    )
    name = models.CharField(max_length=200)
    hypothesis = models.TextField(blank=True, default="")
    owner = models.CharField(max_length=150)
    # The serving state it runs on; at most one experiment runs on a slot (the state records which).
    slot = models.CharField(max_length=64, default=DEFAULT_EXPERIMENT)
    control_version = models.CharField(max_length=32, db_column="controlVersion")
    treatment_version = models.CharField(max_length=32, db_column="treatmentVersion")
    treatment_share = models.FloatField(default=0.5, db_column="treatmentShare", validators=[_open_share])
    salt = models.CharField(max_length=64, blank=True, help_text="Assignment salt; empty: the experiment's key.")
    # The primary metric, frozen at creation: {"name": "conversion", "windowMinutes": .., "eventTypes": [..]}.
    primary_metric = models.JSONField(default=dict, db_column="primaryMetric")
    rule = models.CharField(max_length=24, choices=DecisionRule.choices, default=DecisionRule.SEQUENTIAL)
    alpha = models.FloatField(default=0.05, validators=[MinValueValidator(1e-6), MaxValueValidator(0.5)])
    relative_mde = models.FloatField(
        default=0.10, db_column="relativeMde", validators=[MinValueValidator(0.001), MaxValueValidator(10.0)]
    )
    power = models.FloatField(default=0.80, validators=[MinValueValidator(0.5), MaxValueValidator(0.999)])
    n_star = models.PositiveIntegerField(
        default=5000,
        db_column="nStar",
        validators=[MinValueValidator(100), MaxValueValidator(100_000_000)],
        help_text="Users (both arms) where the confidence sequence is tightest: about the sample you expect.",
    )
    planned_days = models.PositiveIntegerField(
        default=14,
        db_column="plannedDays",
        validators=[MinValueValidator(1), MaxValueValidator(365)],
        help_text="Planned daily looks (the group-sequential rule's bounds; the planned sample otherwise).",
    )
    # Guardrails, each tested one-sided with the primary's always-valid method: a failing one rolls back at once.
    guardrails = models.JSONField(default=default_guardrails, blank=True, validators=[_guardrails_valid])
    secondary_metrics = models.JSONField(
        default=list, blank=True, db_column="secondaryMetrics", validators=[_secondary_metrics_valid]
    )
    adjustment = models.CharField(
        max_length=8,
        choices=[(name, name) for name in ADJUSTMENTS],
        default=ADJUSTMENTS[0],
        help_text="How the secondary metrics' p-values are adjusted: holm (family-wise) or bh (false discovery).",
    )
    cuped = models.BooleanField(default=True, help_text="Reduce the primary metric's variance with CUPED.")
    # The ramp: the share serves its steps in turn, each for at least minHours and minUsers with guardrails holding.
    ramp = models.JSONField(default=list, blank=True, validators=[_ramp_valid])
    ramp_step = models.PositiveIntegerField(default=0, db_column="rampStep")  # index of the step serving
    # The automatic looks (`experiment_summary --apply`): consecutive failures, the last one, decisions by action.
    look_failures = models.PositiveIntegerField(default=0, db_column="lookFailures")
    last_look = models.JSONField(default=dict, blank=True, db_column="lastLook")
    decisions = models.JSONField(default=dict, blank=True)
    status = models.CharField(max_length=16, choices=ExperimentStatus.choices, default=ExperimentStatus.DRAFT)
    result = models.CharField(  # noqa: DJ001
        max_length=16, choices=ExperimentResult.choices, null=True, blank=True, default=None
    )
    # Machine-readable reasons for the result (e.g. significant_improvement, treatment_changed) and the actor's words.
    result_reasons = models.JSONField(default=list, blank=True, db_column="resultReasons")
    stop_reason = models.TextField(blank=True, default="", db_column="stopReason")
    created_at = models.DateTimeField(db_column="createdAt")
    started_at = models.DateTimeField(null=True, blank=True, db_column="startedAt")
    stopped_at = models.DateTimeField(null=True, blank=True, db_column="stoppedAt")
    stopped_by = models.CharField(max_length=150, blank=True, default="", db_column="stoppedBy")
    # [{id, startedAt, endedAt, controlVersion, treatmentVersion, treatmentShare, salt, revision, reason}], ISO times.
    phases = models.JSONField(default=list, blank=True)

    class Meta:
        db_table = "experiments"
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["slot", "status"], name="experiments_slot_status")]

    def __str__(self) -> str:
        return f"{self.key} ({self.status})"

"""Experiments: what was tested, on which versions, with which rule, by whom, when, in which phases, and the result."""

from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator, RegexValidator
from django.db import models

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

"""The experiment summary's query and shape: they validate the window and render the summary for the API, the web
admin and `manage.py experiment_summary`, and document both in the OpenAPI schema."""

from collections.abc import Mapping
from typing import Any

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from common.serializers import IsoDateTimeField, query_parse
from core.metrics import ADJUSTMENTS, DEFAULT_GUARDRAILS, GUARDRAIL_METRICS, SECONDARY_METRICS
from core.statistics import KEEP_RUNNING, ROLLBACK, SHIP
from experiments.models import DecisionRule, ExperimentResult, ExperimentStatus
from experiments.selectors import ExperimentSummary
from experiments.state import ExperimentInfo
from registry.state import REASON_MAX_LENGTH

WINDOW_HOURS_MAX = 720
_WINDOW_HOURS_ERROR = f"windowHours must be an integer from 1 to {WINDOW_HOURS_MAX}."


class SummaryQuerySerializer(serializers.Serializer):
    """What a summary reads: one rule for the API, the web admin and `manage.py experiment_summary`."""

    windowHours = serializers.IntegerField(
        min_value=1,
        max_value=WINDOW_HOURS_MAX,
        required=False,
        help_text="An ad-hoc window of the last this many hours, over every exposure (for exploration; "
        "decisions use the phase).",
        error_messages=dict.fromkeys(("invalid", "min_value", "max_value", "max_string_length"), _WINDOW_HOURS_ERROR),
    )
    phase = serializers.IntegerField(
        min_value=1,
        required=False,
        help_text="The phase to summarise (default: the current one).",
        error_messages=dict.fromkeys(("invalid", "min_value", "max_string_length"), "phase must be an integer >= 1."),
    )


def summary_query_parse(raw: Mapping[str, Any]) -> tuple[int | None, int | None]:
    """(window hours, phase) from a query or a command's options; ApplicationError when one is not valid."""
    given = {name: raw[name] for name in ("windowHours", "phase") if raw.get(name) is not None}
    query = query_parse(SummaryQuerySerializer, given)
    return query.get("windowHours"), query.get("phase")


class WindowSerializer(serializers.Serializer):
    start = IsoDateTimeField()
    end = IsoDateTimeField()
    hours = serializers.IntegerField(allow_null=True, help_text="The ad-hoc window's hours; null for a phase.")


class ConversionRuleSerializer(serializers.Serializer):
    windowMinutes = serializers.IntegerField(source="conversion_window_minutes")
    eventTypes = serializers.ListField(source="conversion_event_types", child=serializers.CharField())


class VersionShareSerializer(serializers.Serializer):
    version = serializers.CharField()
    exposures = serializers.IntegerField()
    share = serializers.FloatField()


class RateIntervalSerializer(serializers.Serializer):
    lower = serializers.FloatField()
    upper = serializers.FloatField()
    method = serializers.CharField()


class VariantSummarySerializer(serializers.Serializer):
    versions = VersionShareSerializer(many=True, help_text="Versions served in the window, by share of exposures.")
    exposedUsers = serializers.IntegerField(source="exposed_users")
    convertedUsers = serializers.IntegerField(source="converted_users")
    conversionRate = serializers.FloatField(source="conversion_rate", allow_null=True)
    conversionRateCi = RateIntervalSerializer(source="conversion_rate_ci", allow_null=True)


class VariantsSerializer(serializers.Serializer):
    control = VariantSummarySerializer()
    treatment = VariantSummarySerializer()


class DifferenceIntervalSerializer(serializers.Serializer):
    lower = serializers.FloatField(source="ci_lower", allow_null=True)
    upper = serializers.FloatField(source="ci_upper", allow_null=True)
    level = serializers.FloatField()
    method = serializers.CharField()


class SrmSerializer(serializers.Serializer):
    pValue = serializers.FloatField(source="srm_p_value", allow_null=True)
    ok = serializers.BooleanField(source="srm_ok")


class StatsSerializer(serializers.Serializer):
    rule = serializers.CharField(help_text="sequential (valid at any look), group_sequential or fixed_horizon.")
    validAtAnyLook = serializers.BooleanField(source="valid_at_any_look")
    look = serializers.IntegerField(allow_null=True, help_text="The daily look of the phase this is.")
    difference = serializers.FloatField(allow_null=True)
    relativeLift = serializers.FloatField(source="relative_lift", allow_null=True)
    ci = DifferenceIntervalSerializer(source="*")
    z = serializers.FloatField(allow_null=True)
    pValue = serializers.FloatField(
        source="p_value", allow_null=True, help_text="The rule's p-value: always-valid for the sequential rule."
    )
    fixedHorizonPValue = serializers.FloatField(source="fixed_horizon_p_value", allow_null=True)
    criticalZ = serializers.FloatField(source="critical_z", allow_null=True)
    alpha = serializers.FloatField()
    srm = SrmSerializer(source="*")
    minSamplePerVariant = serializers.IntegerField(source="min_sample_per_variant", allow_null=True)
    power = serializers.FloatField(allow_null=True)
    cupedApplied = serializers.BooleanField(
        source="cuped_applied", help_text="Whether the difference and interval are CUPED-adjusted."
    )
    varianceReduction = serializers.FloatField(
        source="variance_reduction",
        allow_null=True,
        help_text="CUPED: 1 - adjusted variance / unadjusted variance of the difference.",
    )


class GuardrailResultSerializer(serializers.Serializer):
    metric = serializers.CharField()
    threshold = serializers.FloatField()
    relative = serializers.BooleanField()
    control = serializers.FloatField(allow_null=True, help_text="Control's value: ms for latency, else a rate.")
    treatment = serializers.FloatField(allow_null=True)
    degradation = serializers.FloatField(
        allow_null=True, help_text="How much worse the treatment is: t / c - 1 when relative, else t - c."
    )
    lower = serializers.FloatField(
        allow_null=True, help_text="Its always-valid one-sided lower bound: the guardrail fails above the threshold."
    )
    status = serializers.CharField(help_text="ok, failing or insufficient (not enough answers to tell).")


class MetricResultSerializer(serializers.Serializer):
    name = serializers.CharField()
    control = serializers.FloatField(allow_null=True, help_text="Control's mean per exposed user.")
    treatment = serializers.FloatField(allow_null=True)
    difference = serializers.FloatField(allow_null=True)
    relativeLift = serializers.FloatField(source="relative_lift", allow_null=True)
    ciLower = serializers.FloatField(source="ci_lower", allow_null=True)
    ciUpper = serializers.FloatField(source="ci_upper", allow_null=True)
    pValue = serializers.FloatField(source="p_value", allow_null=True, help_text="Always-valid p-value.")
    adjustedPValue = serializers.FloatField(
        source="adjusted_p_value", allow_null=True, help_text="Adjusted across the experiment's secondary metrics."
    )
    significant = serializers.BooleanField()


class RequestStatsSerializer(serializers.Serializer):
    requests = serializers.IntegerField()
    modelErrors = serializers.IntegerField(source="errors", help_text="Answers where the model raised.")
    fallbacks = serializers.IntegerField(help_text="Answers that fell back: cold start, or a treatment not loaded.")


class RampSummarySerializer(serializers.Serializer):
    step = serializers.IntegerField(source="ramp_step", help_text="The step serving (0: the first).")
    steps = serializers.JSONField(source="ramp", help_text="[{share, minHours, minUsers}]; empty without a ramp.")


class ServingVersionsSerializer(serializers.Serializer):
    control = serializers.CharField(source="control_version")
    treatment = serializers.CharField(source="treatment_version", allow_null=True)


class PhaseSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    startedAt = IsoDateTimeField(source="started_at")
    endedAt = IsoDateTimeField(source="ended_at", allow_null=True)
    controlVersion = serializers.CharField(source="control_version")
    treatmentVersion = serializers.CharField(source="treatment_version", allow_null=True)
    treatmentShare = serializers.FloatField(source="treatment_share")
    salt = serializers.CharField()
    revision = serializers.IntegerField(help_text="The serving-state revision that started it.")
    reason = serializers.CharField(allow_blank=True)
    actor = serializers.CharField()


class CumulativePointSerializer(serializers.Serializer):
    day = serializers.IntegerField()
    at = IsoDateTimeField()
    controlUsers = serializers.IntegerField(source="control_users")
    treatmentUsers = serializers.IntegerField(source="treatment_users")
    difference = serializers.FloatField(allow_null=True)
    ciLower = serializers.FloatField(source="ci_lower", allow_null=True)
    ciUpper = serializers.FloatField(source="ci_upper", allow_null=True)
    decision = serializers.CharField()


class ExperimentSummarySerializer(serializers.Serializer):
    experiment = serializers.CharField(help_text="The experiment's key, or the slot for an ad-hoc window.")
    slot = serializers.CharField()
    status = serializers.CharField(allow_null=True)
    phase = PhaseSerializer(allow_null=True, help_text="The phase summarised; null for an ad-hoc window.")
    usersFromEarlierPhases = serializers.IntegerField(
        source="users_from_earlier_phases", help_text="Users first exposed in an earlier phase: not counted."
    )
    cumulative = CumulativePointSerializer(
        many=True, help_text="The difference and its interval at the end of each day of the phase."
    )
    window = WindowSerializer(source="*")
    conversion = ConversionRuleSerializer(source="*")
    treatmentShare = serializers.FloatField(source="treatment_share")
    variants = VariantsSerializer(source="*")
    usersInBothVariants = serializers.IntegerField(source="users_in_both")
    stats = StatsSerializer()
    decision = serializers.ChoiceField(source="stats.decision", choices=[SHIP, ROLLBACK, KEEP_RUNNING])
    reasons = serializers.ListField(
        source="stats.reasons",
        child=serializers.CharField(),
        help_text="Machine-readable, e.g. insufficient_sample, srm_detected.",
    )
    serving = ServingVersionsSerializer(allow_null=True)
    guardrails = GuardrailResultSerializer(many=True, help_text="Each guardrail, tested one-sided at any look.")
    secondaryMetrics = MetricResultSerializer(
        source="secondary", many=True, help_text="Reported, never deciding; p-values adjusted together."
    )
    answers = serializers.DictField(
        source="requests", child=RequestStatsSerializer(), help_text="Answers per variant in the phase."
    )
    ramp = RampSummarySerializer(source="*")


def experiment_summary_data(summary: ExperimentSummary) -> dict[str, Any]:
    """The summary as the API, the web admin and the command all show it."""
    data: dict[str, Any] = ExperimentSummarySerializer(summary).data
    return data


class GuardrailSerializer(serializers.Serializer):
    metric = serializers.ChoiceField(choices=GUARDRAIL_METRICS)
    threshold = serializers.FloatField(
        help_text="How much worse than control the treatment may be before the guardrail fails (0 to 100): a fraction "
        "of control's value when relative (0.2: 20% slower), else a difference (0.005: half a percentage point)."
    )
    relative = serializers.BooleanField()


class RampStepSerializer(serializers.Serializer):
    share = serializers.FloatField(help_text="The step's treatment share, 0.001 to 0.999, above the step before.")
    minHours = serializers.FloatField(help_text="Hours the step serves at least before the next (0 to 8760).")
    minUsers = serializers.IntegerField(
        help_text="Treatment users the step exposes at least before the next (0 to 100000000)."
    )


class LastLookSerializer(serializers.Serializer):
    at = IsoDateTimeField(required=False)
    phase = serializers.IntegerField(required=False)
    step = serializers.IntegerField(required=False, help_text="The ramp step looked at (0: the first).")
    outcome = serializers.CharField(required=False)
    action = serializers.CharField(required=False, allow_null=True, help_text="What the look did, if anything.")
    guardrails = serializers.DictField(
        child=serializers.CharField(), required=False, help_text="Each guardrail's status, by metric."
    )
    error = serializers.CharField(required=False, allow_null=True, help_text="Why the look failed, if it did.")


# Kept as sent and checked by the experiment's own rules (experiments.models), like every other field's range, so
# the API, the web admin and the model say the same; the schema shows their shape.
@extend_schema_field(GuardrailSerializer(many=True))
class GuardrailsField(serializers.JSONField):
    pass


@extend_schema_field(serializers.ListField(child=serializers.CharField()))
class MetricNamesField(serializers.JSONField):
    pass


@extend_schema_field(RampStepSerializer(many=True))
class RampField(serializers.JSONField):
    pass


@extend_schema_field(LastLookSerializer)
class LastLookField(serializers.JSONField):
    pass


def _guardrails_text(guardrails: tuple[dict[str, object], ...]) -> str:
    kinds = {True: "relative", False: "absolute"}
    return ", ".join(f"{g['metric']} {g['threshold']} {kinds[bool(g['relative'])]}" for g in guardrails)


GUARDRAILS_HELP = (
    "Each metric at most once; a failing guardrail rolls the experiment back at once. "
    f"Default: {_guardrails_text(DEFAULT_GUARDRAILS)}; [] for none."
)
SECONDARY_METRICS_HELP = (
    f"Up to 10 distinct names: {', '.join(SECONDARY_METRICS)}, or event:<type> (the share of users with such an "
    "event; the type in lower-case letters, digits and _). Reported with adjusted p-values, never deciding alone."
)
ADJUSTMENT_HELP = "How the secondary metrics' p-values are adjusted: holm (family-wise) or bh (false discovery rate)."
RAMP_HELP = (
    "Up to 10 steps with rising shares: a start serves the first step's share, and the automatic looks move to the "
    "next once the step has served its hours and users with every guardrail holding. [] (the default): no ramp, the "
    "start serves treatmentShare."
)


class ExperimentSerializer(serializers.Serializer):
    key = serializers.CharField()
    name = serializers.CharField()
    hypothesis = serializers.CharField(allow_blank=True)
    owner = serializers.CharField()
    slot = serializers.CharField()
    controlVersion = serializers.CharField(source="control_version")
    treatmentVersion = serializers.CharField(source="treatment_version")
    treatmentShare = serializers.FloatField(source="treatment_share")
    salt = serializers.CharField()
    primaryMetric = serializers.DictField(source="primary_metric")
    rule = serializers.ChoiceField(choices=DecisionRule.choices)
    alpha = serializers.FloatField()
    relativeMde = serializers.FloatField(source="relative_mde")
    power = serializers.FloatField()
    nStar = serializers.IntegerField(source="n_star")
    plannedDays = serializers.IntegerField(source="planned_days")
    guardrails = GuardrailsField(help_text=GUARDRAILS_HELP)
    secondaryMetrics = serializers.ListField(
        source="secondary_metrics", child=serializers.CharField(), help_text=SECONDARY_METRICS_HELP
    )
    adjustment = serializers.ChoiceField(choices=ADJUSTMENTS, help_text=ADJUSTMENT_HELP)
    cuped = serializers.BooleanField(help_text="Whether the primary metric's variance is reduced with CUPED.")
    ramp = RampField(help_text=RAMP_HELP)
    rampStep = serializers.IntegerField(
        source="ramp_step", help_text="The ramp step serving (0: the first); meaningless without a ramp."
    )
    lookFailures = serializers.IntegerField(
        source="look_failures", help_text="Automatic looks that failed in a row (0 after one that worked)."
    )
    lastLook = LastLookField(source="last_look", help_text="The last automatic look; {} before the first.")
    decisions = serializers.DictField(
        child=serializers.IntegerField(), help_text="How often the automatic looks took each action, by action."
    )
    status = serializers.ChoiceField(choices=ExperimentStatus.choices)
    result = serializers.ChoiceField(choices=ExperimentResult.choices, allow_null=True)
    resultReasons = serializers.ListField(source="result_reasons", child=serializers.CharField())
    stopReason = serializers.CharField(source="stop_reason", allow_blank=True)
    createdAt = IsoDateTimeField(source="created_at")
    startedAt = IsoDateTimeField(source="started_at", allow_null=True)
    stoppedAt = IsoDateTimeField(source="stopped_at", allow_null=True)
    stoppedBy = serializers.CharField(source="stopped_by", allow_blank=True)
    phases = PhaseSerializer(many=True)


class ExperimentListSerializer(serializers.Serializer):
    experiments = ExperimentSerializer(many=True)


def experiment_data(info: ExperimentInfo) -> dict[str, Any]:
    data: dict[str, Any] = ExperimentSerializer(info).data
    return data


def _reason_field() -> serializers.CharField:
    return serializers.CharField(max_length=REASON_MAX_LENGTH, required=False, allow_blank=True, default="")


class ExperimentCreateSerializer(serializers.Serializer):
    """A new draft. Types are checked here; ranges and formats by the experiment's own rules (as in the web admin)."""

    key = serializers.CharField(help_text="Lower-case letters, digits and -; unique.")
    name = serializers.CharField()
    hypothesis = serializers.CharField(required=False, allow_blank=True)
    controlVersion = serializers.CharField(source="control_version")
    treatmentVersion = serializers.CharField(source="treatment_version")
    treatmentShare = serializers.FloatField(source="treatment_share", required=False)
    salt = serializers.CharField(required=False, allow_blank=True, help_text="Default: the key.")
    rule = serializers.ChoiceField(choices=DecisionRule.choices, required=False)
    alpha = serializers.FloatField(required=False)
    relativeMde = serializers.FloatField(source="relative_mde", required=False)
    power = serializers.FloatField(required=False)
    nStar = serializers.IntegerField(source="n_star", required=False)
    plannedDays = serializers.IntegerField(source="planned_days", required=False)
    guardrails = GuardrailsField(required=False, help_text=GUARDRAILS_HELP)
    secondaryMetrics = MetricNamesField(source="secondary_metrics", required=False, help_text=SECONDARY_METRICS_HELP)
    adjustment = serializers.ChoiceField(choices=ADJUSTMENTS, required=False, help_text=ADJUSTMENT_HELP)
    cuped = serializers.BooleanField(
        required=False, help_text="Reduce the primary metric's variance with CUPED (default true)."
    )
    ramp = RampField(required=False, help_text=RAMP_HELP)


class ExperimentChangeSerializer(ExperimentCreateSerializer):
    """Changes to a draft (any field but the key), or to a running experiment (versions, share, salt: a new phase;
    nothing else changes once it runs)."""

    reason = _reason_field()

    def get_fields(self) -> dict[str, serializers.Field]:
        fields = super().get_fields()
        del fields["key"]
        return fields


class ExperimentStartSerializer(serializers.Serializer):
    reason = _reason_field()


class ExperimentStopSerializer(serializers.Serializer):
    result = serializers.ChoiceField(
        choices=ExperimentResult.choices,
        help_text="shipped: the treatment version becomes control; otherwise control stays. The share goes to 0.",
    )
    reason = _reason_field()
    phase = serializers.IntegerField(
        min_value=1,
        required=False,
        help_text="The phase the decision was read on: refused (409) if another phase has started since.",
    )

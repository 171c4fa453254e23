"""The experiment summary's query and shape: they validate the window and render the summary for the API, the web
admin and `manage.py experiment_summary`, and document both in the OpenAPI schema."""

from typing import Any

from rest_framework import serializers

from common.serializers import IsoDateTimeField, query_parse
from core.statistics import KEEP_RUNNING, ROLLBACK, SHIP
from experiments.selectors import ExperimentSummary

WINDOW_HOURS_MAX = 720
WINDOW_HOURS_DEFAULT = 24
_WINDOW_HOURS_ERROR = f"windowHours must be an integer from 1 to {WINDOW_HOURS_MAX}."


class SummaryQuerySerializer(serializers.Serializer):
    """The summary's window: one rule for the API, the web admin and `manage.py experiment_summary`."""

    windowHours = serializers.IntegerField(
        min_value=1,
        max_value=WINDOW_HOURS_MAX,
        default=WINDOW_HOURS_DEFAULT,
        required=False,
        help_text="The last this many hours.",
        error_messages=dict.fromkeys(("invalid", "min_value", "max_value", "max_string_length"), _WINDOW_HOURS_ERROR),
    )


def window_hours_parse(raw: object) -> int:
    """The window in hours from a query parameter or a command argument; ApplicationError when it is not valid."""
    hours: int = query_parse(SummaryQuerySerializer, {} if raw is None else {"windowHours": raw})["windowHours"]
    return hours


class WindowSerializer(serializers.Serializer):
    start = IsoDateTimeField()
    end = IsoDateTimeField()
    hours = serializers.IntegerField()


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
    difference = serializers.FloatField(allow_null=True)
    relativeLift = serializers.FloatField(source="relative_lift", allow_null=True)
    ci = DifferenceIntervalSerializer(source="*")
    z = serializers.FloatField(allow_null=True)
    pValue = serializers.FloatField(source="p_value", allow_null=True)
    alpha = serializers.FloatField()
    srm = SrmSerializer(source="*")
    minSamplePerVariant = serializers.IntegerField(source="min_sample_per_variant", allow_null=True)
    power = serializers.FloatField(allow_null=True)


class ServingVersionsSerializer(serializers.Serializer):
    control = serializers.CharField(source="control_version")
    treatment = serializers.CharField(source="treatment_version", allow_null=True)


class ExperimentSummarySerializer(serializers.Serializer):
    experiment = serializers.CharField()
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


def experiment_summary_data(summary: ExperimentSummary) -> dict[str, Any]:
    """The summary as the API, the web admin and the command all show it."""
    data: dict[str, Any] = ExperimentSummarySerializer(summary).data
    return data

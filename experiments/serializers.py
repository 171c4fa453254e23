"""The experiment summary's shape, for the OpenAPI schema."""

from rest_framework import serializers

from experiments.statistics import KEEP_RUNNING, ROLLBACK, SHIP


class SummaryQuerySerializer(serializers.Serializer):
    windowHours = serializers.IntegerField(
        min_value=1, max_value=720, default=24, required=False, help_text="The last this many hours."
    )


class WindowSerializer(serializers.Serializer):
    start = serializers.DateTimeField()
    end = serializers.DateTimeField()
    hours = serializers.IntegerField()


class ConversionRuleSerializer(serializers.Serializer):
    windowMinutes = serializers.IntegerField()
    eventTypes = serializers.ListField(child=serializers.CharField())


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
    exposedUsers = serializers.IntegerField()
    convertedUsers = serializers.IntegerField()
    conversionRate = serializers.FloatField(allow_null=True)
    conversionRateCi = RateIntervalSerializer(allow_null=True)


class VariantsSerializer(serializers.Serializer):
    control = VariantSummarySerializer()
    treatment = VariantSummarySerializer()


class DifferenceIntervalSerializer(serializers.Serializer):
    lower = serializers.FloatField(allow_null=True)
    upper = serializers.FloatField(allow_null=True)
    level = serializers.FloatField()
    method = serializers.CharField()


class SrmSerializer(serializers.Serializer):
    pValue = serializers.FloatField(allow_null=True)
    ok = serializers.BooleanField()


class StatsSerializer(serializers.Serializer):
    difference = serializers.FloatField(allow_null=True)
    relativeLift = serializers.FloatField(allow_null=True)
    ci = DifferenceIntervalSerializer()
    z = serializers.FloatField(allow_null=True)
    pValue = serializers.FloatField(allow_null=True)
    alpha = serializers.FloatField()
    srm = SrmSerializer()
    minSamplePerVariant = serializers.IntegerField(allow_null=True)
    power = serializers.FloatField(allow_null=True)


class ServingVersionsSerializer(serializers.Serializer):
    control = serializers.CharField()
    treatment = serializers.CharField(allow_null=True)


class ExperimentSummarySerializer(serializers.Serializer):
    experiment = serializers.CharField()
    window = WindowSerializer()
    conversion = ConversionRuleSerializer()
    treatmentShare = serializers.FloatField()
    variants = VariantsSerializer()
    usersInBothVariants = serializers.IntegerField()
    stats = StatsSerializer()
    decision = serializers.ChoiceField(choices=[SHIP, ROLLBACK, KEEP_RUNNING])
    reasons = serializers.ListField(
        child=serializers.CharField(), help_text="Machine-readable, e.g. insufficient_sample, srm_detected."
    )
    serving = ServingVersionsSerializer(allow_null=True)

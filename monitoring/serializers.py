"""The health endpoints' response shapes, for the OpenAPI schema."""

from rest_framework import serializers


class HealthSerializer(serializers.Serializer):
    status = serializers.ChoiceField(choices=["ok"])
    version = serializers.CharField()
    uptimeSeconds = serializers.FloatField()
    time = serializers.DateTimeField()


class CheckSerializer(serializers.Serializer):
    ok = serializers.BooleanField()
    detail = serializers.CharField()


class ReadinessSerializer(serializers.Serializer):
    status = serializers.ChoiceField(choices=["ready"])
    checks = serializers.DictField(child=CheckSerializer(), help_text="database and model, each with ok and detail.")

"""The trace endpoint's response shape, for the OpenAPI schema."""

from rest_framework import serializers

from recommendations.events import VARIANTS
from recommendations.serializers import RecommendedItemSerializer
from registry.serializers import ModelVersionSerializer


class TraceSerializer(serializers.Serializer):
    requestId = serializers.CharField()
    userId = serializers.CharField()
    variant = serializers.ChoiceField(choices=VARIANTS)
    modelVersion = serializers.CharField()
    artifactSha256 = serializers.CharField()
    servingRevision = serializers.IntegerField()
    dataSnapshotId = serializers.CharField()
    pipelineGitSha = serializers.CharField()
    containerImageDigest = serializers.CharField()
    recommendations = RecommendedItemSerializer(many=True)
    latencyMs = serializers.FloatField()
    metadata = serializers.DictField()
    fallbackReason = serializers.CharField(allow_null=True)
    createdAt = serializers.DateTimeField()
    model = ModelVersionSerializer(allow_null=True, help_text="Null only if the version's record was deleted.")

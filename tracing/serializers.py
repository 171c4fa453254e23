"""The trace endpoint's response shape, for the OpenAPI schema."""

from rest_framework import serializers

from recommendations.events import VARIANTS
from recommendations.serializers import RecommendedItemSerializer


class ModelLineageSerializer(serializers.Serializer):
    version = serializers.CharField()
    modelName = serializers.CharField()
    algorithm = serializers.CharField()
    params = serializers.DictField()
    status = serializers.CharField()
    trainedAt = serializers.DateTimeField()
    trainingWindow = serializers.DictField(help_text="start, end and test-split times of the training data.")
    counts = serializers.DictField()
    dataSnapshotId = serializers.CharField()
    pipelineGitSha = serializers.CharField()
    containerImageDigest = serializers.CharField()
    provenanceSources = serializers.DictField()
    metrics = serializers.DictField()
    artifactUri = serializers.CharField()
    artifactSha256 = serializers.DictField(child=serializers.CharField())


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
    model = ModelLineageSerializer(allow_null=True, help_text="Null only if the version's record was deleted.")

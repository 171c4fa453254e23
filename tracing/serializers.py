"""The trace endpoint's response shape: it renders the trace, and documents it in the OpenAPI schema."""

from rest_framework import serializers

from common.serializers import IsoDateTimeField
from core.variants import VARIANTS
from registry.serializers import ModelVersionSerializer


# One recommended item as the client saw it; a trace keeps the list exactly as served.
class RecommendedItemSerializer(serializers.Serializer):
    itemId = serializers.CharField()
    score = serializers.FloatField()


class TraceSerializer(serializers.Serializer):
    requestId = serializers.CharField(source="request_id")
    userId = serializers.CharField(source="user_id")
    variant = serializers.ChoiceField(choices=VARIANTS)
    modelVersion = serializers.CharField(source="model_version")
    artifactSha256 = serializers.CharField(source="artifact_sha256")
    servingRevision = serializers.IntegerField(source="serving_revision")
    dataSnapshotId = serializers.CharField(source="data_snapshot_id")
    pipelineGitSha = serializers.CharField(source="pipeline_git_sha")
    containerImageDigest = serializers.CharField(source="container_image_digest")
    recommendations = RecommendedItemSerializer(many=True)
    latencyMs = serializers.FloatField(source="latency_ms")
    metadata = serializers.DictField()
    fallbackReason = serializers.CharField(source="fallback_reason", allow_null=True)
    createdAt = IsoDateTimeField(source="created_at")
    model = ModelVersionSerializer(allow_null=True, help_text="Null only if the version's record was deleted.")

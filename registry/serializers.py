"""The admin API's request and response shapes, for the OpenAPI schema (the views validate by hand)."""

from drf_spectacular.utils import inline_serializer
from rest_framework import serializers

from recommendations.events import VARIANTS
from registry.services import TARGETS

ACTOR_HELP = "Who asks (X-Actor header): an operator's name or a pipeline's id; recorded in the history."


class PageQuerySerializer(serializers.Serializer):
    limit = serializers.IntegerField(min_value=1, max_value=100, default=20, required=False, help_text="Page size.")
    cursor = serializers.CharField(required=False, help_text="`nextCursor` of the previous page.")


class ServingStateSerializer(serializers.Serializer):
    experiment = serializers.CharField()
    control = serializers.CharField()
    treatment = serializers.CharField(allow_null=True)
    treatmentShare = serializers.FloatField(min_value=0, max_value=1)
    revision = serializers.IntegerField()
    updatedAt = serializers.DateTimeField()
    updatedBy = serializers.CharField()


class ModelVersionSerializer(serializers.Serializer):
    version = serializers.CharField()
    modelName = serializers.CharField()
    status = serializers.CharField()
    algorithm = serializers.CharField()
    params = serializers.DictField()
    metrics = serializers.DictField()
    trainingWindow = serializers.DictField(help_text="start, end and test-split times of the training data.")
    counts = serializers.DictField()
    dataSnapshotId = serializers.CharField()
    pipelineGitSha = serializers.CharField()
    containerImageDigest = serializers.CharField()
    provenanceSources = serializers.DictField()
    artifactUri = serializers.CharField()
    artifactSha256 = serializers.DictField(child=serializers.CharField(), help_text="File name -> sha256.")
    trainedAt = serializers.DateTimeField()
    createdAt = serializers.DateTimeField()


class ModelListOutputSerializer(serializers.Serializer):
    models = ModelVersionSerializer(many=True)
    nextCursor = serializers.CharField(allow_null=True, help_text="Pass as `cursor` for the next page.")
    serving = ServingStateSerializer(allow_null=True)


class ServingOutputSerializer(serializers.Serializer):
    serving = ServingStateSerializer()


class SwitchInputSerializer(serializers.Serializer):
    version = serializers.CharField(help_text="A registered, ready version, e.g. v1.4.0.")
    target = serializers.ChoiceField(choices=TARGETS, help_text="all: control and treatment both.")
    treatmentShare = serializers.FloatField(min_value=0, max_value=1, required=False)
    reason = serializers.CharField(max_length=500, required=False, allow_blank=True)


class RollbackInputSerializer(serializers.Serializer):
    target = serializers.ChoiceField(choices=VARIANTS)
    reason = serializers.CharField(max_length=500, required=False, allow_blank=True)


_SIDE = inline_serializer(
    "ServingSide",
    fields={
        "control": serializers.CharField(allow_null=True, required=False),
        "treatment": serializers.CharField(allow_null=True, required=False),
        "treatmentShare": serializers.FloatField(required=False),
    },
)
# "from" is a Python keyword: the fields are given as a mapping.
ServingChangeSerializer = inline_serializer(
    "ServingChange",
    fields={
        "revision": serializers.IntegerField(),
        "changedAt": serializers.DateTimeField(),
        "actor": serializers.CharField(),
        "action": serializers.CharField(),
        "target": serializers.CharField(),
        "from": _SIDE,
        "to": _SIDE,
        "reason": serializers.CharField(allow_blank=True),
    },
)


class ServingHistoryOutputSerializer(serializers.Serializer):
    changes = serializers.ListField(child=ServingChangeSerializer)
    nextCursor = serializers.CharField(allow_null=True, help_text="Pass as `cursor` for the next page.")

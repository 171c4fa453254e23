"""The admin API's request and response shapes, for the OpenAPI schema (the views validate by hand)."""

from drf_spectacular.utils import inline_serializer
from rest_framework import serializers

from common.serializers import IsoDateTimeField
from core.variants import VARIANTS
from registry.state import REASON_MAX_LENGTH, TARGETS

PAGE_LIMIT_MAX = 100
_PAGE_LIMIT_ERROR = f"limit must be an integer from 1 to {PAGE_LIMIT_MAX}."


class PageQuerySerializer(serializers.Serializer):
    limit = serializers.IntegerField(
        min_value=1,
        max_value=PAGE_LIMIT_MAX,
        default=20,
        required=False,
        help_text="Page size.",
        error_messages=dict.fromkeys(("invalid", "min_value", "max_value", "max_string_length"), _PAGE_LIMIT_ERROR),
    )
    cursor = serializers.CharField(required=False, help_text="`nextCursor` of the previous page.")


class ServingStateSerializer(serializers.Serializer):
    experiment = serializers.CharField()
    control = serializers.CharField(source="control_version")
    treatment = serializers.CharField(source="treatment_version", allow_null=True)
    treatmentShare = serializers.FloatField(source="treatment_share", min_value=0, max_value=1)
    revision = serializers.IntegerField()
    updatedAt = IsoDateTimeField(source="updated_at")
    updatedBy = serializers.CharField(source="updated_by")
    salt = serializers.CharField(help_text="The assignment salt in force.")
    runningExperiment = serializers.CharField(
        source="running_experiment", allow_null=True, help_text="The experiment running on the slot, if any."
    )
    phase = serializers.IntegerField(allow_null=True, help_text="Its phase, stamped on every exposure.")


class ModelVersionSerializer(serializers.Serializer):
    version = serializers.CharField()
    modelName = serializers.CharField(source="model_name")
    status = serializers.CharField()
    algorithm = serializers.CharField()
    params = serializers.DictField()
    metrics = serializers.DictField()
    trainingWindow = serializers.DictField(
        source="training_window", help_text="start, end and test-split times of the training data."
    )
    counts = serializers.DictField()
    dataSnapshotId = serializers.CharField(source="data_snapshot_id")
    pipelineGitSha = serializers.CharField(source="pipeline_git_sha")
    containerImageDigest = serializers.CharField(source="container_image_digest")
    provenanceSources = serializers.DictField(source="provenance_sources")
    artifactUri = serializers.CharField(source="artifact_uri")
    artifactSha256 = serializers.DictField(
        source="artifact_sha256", child=serializers.CharField(), help_text="File name -> sha256."
    )
    trainedAt = IsoDateTimeField(source="trained_at")
    createdAt = IsoDateTimeField(source="created_at")


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
    reason = serializers.CharField(max_length=REASON_MAX_LENGTH, required=False, allow_blank=True)


class RollbackInputSerializer(serializers.Serializer):
    target = serializers.ChoiceField(choices=VARIANTS)
    reason = serializers.CharField(max_length=REASON_MAX_LENGTH, required=False, allow_blank=True)


class ServingSideSerializer(serializers.Serializer):
    """What the variants served before or after a change; all null before the first one."""

    control = serializers.CharField(allow_null=True, required=False)
    treatment = serializers.CharField(allow_null=True, required=False)
    treatmentShare = serializers.FloatField(allow_null=True, required=False)
    salt = serializers.CharField(allow_null=True, allow_blank=True, required=False)
    experiment = serializers.CharField(allow_null=True, required=False)
    phase = serializers.IntegerField(allow_null=True, required=False)


# "from" is a Python keyword: the fields are given as a mapping.
ServingChangeSerializer = inline_serializer(
    "ServingChange",
    fields={
        "revision": serializers.IntegerField(),
        "changedAt": IsoDateTimeField(source="changed_at"),
        "actor": serializers.CharField(),
        "action": serializers.CharField(),
        "target": serializers.CharField(),
        "from": ServingSideSerializer(source="before"),
        "to": ServingSideSerializer(source="after"),
        "reason": serializers.CharField(allow_blank=True),
    },
)


class ServingHistoryOutputSerializer(serializers.Serializer):
    changes = serializers.ListField(child=ServingChangeSerializer)
    nextCursor = serializers.CharField(allow_null=True, help_text="Pass as `cursor` for the next page.")

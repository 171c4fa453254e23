"""Per-prediction provenance: everything needed to explain one served recommendation."""

from django.db import models


class PredictionTrace(models.Model):
    """One served prediction (`prediction_traces`), kept for TRACE_RETENTION_DAYS by a TTL index on createdAt."""

    request_id = models.CharField(max_length=128, unique=True, db_column="requestId")
    user_id = models.CharField(max_length=128, db_column="userId")
    variant = models.CharField(max_length=16)
    model_version = models.CharField(max_length=32, db_column="modelVersion")
    artifact_sha256 = models.CharField(max_length=64, db_column="artifactSha256")
    serving_revision = models.PositiveIntegerField(db_column="servingRevision")
    data_snapshot_id = models.CharField(max_length=128, db_column="dataSnapshotId")
    pipeline_git_sha = models.CharField(max_length=64, db_column="pipelineGitSha")
    container_image_digest = models.CharField(max_length=128, db_column="containerImageDigest")
    recommendations = models.JSONField(default=list)
    latency_ms = models.FloatField(db_column="latencyMs")
    metadata = models.JSONField(default=dict, blank=True)
    # null, not "": the variant's own version served, with no fallback.
    fallback_reason = models.CharField(max_length=64, null=True, blank=True, db_column="fallbackReason")  # noqa: DJ001
    created_at = models.DateTimeField(db_column="createdAt")

    class Meta:
        db_table = "prediction_traces"
        ordering = ["-created_at"]
        # Only what a query uses (the admin's exact search by rider): every index is paid for on each served request.
        indexes = [models.Index(fields=["user_id", "-created_at"], name="traces_user_created")]

    def __str__(self) -> str:
        return f"{self.request_id} {self.variant} {self.model_version}"

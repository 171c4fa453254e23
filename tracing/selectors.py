"""Reads for prediction traces."""

from typing import Any

from recommendations.runtime import trace_writer
from registry.selectors import model_version_lineage
from tracing.models import PredictionTrace

TRACE_FIELDS = (
    "request_id",
    "user_id",
    "variant",
    "model_version",
    "artifact_sha256",
    "serving_revision",
    "data_snapshot_id",
    "pipeline_git_sha",
    "container_image_digest",
    "recommendations",
    "latency_ms",
    "metadata",
    "fallback_reason",
    "created_at",
)


def request_id_in_use(*, request_id: str) -> bool:
    """Whether a trace exists, or is about to be written by this process, under this request id."""
    return trace_writer().is_pending(request_id) or PredictionTrace.objects.filter(request_id=request_id).exists()


def prediction_trace_lineage(*, request_id: str) -> dict[str, Any] | None:
    """A trace with the full lineage of the model version that served it, or None when unknown."""
    row = PredictionTrace.objects.filter(request_id=request_id).values(*TRACE_FIELDS).first()
    if row is None:
        return None
    return {
        "requestId": row["request_id"],
        "userId": row["user_id"],
        "variant": row["variant"],
        "modelVersion": row["model_version"],
        "artifactSha256": row["artifact_sha256"],
        "servingRevision": row["serving_revision"],
        "dataSnapshotId": row["data_snapshot_id"],
        "pipelineGitSha": row["pipeline_git_sha"],
        "containerImageDigest": row["container_image_digest"],
        "recommendations": row["recommendations"],
        "latencyMs": row["latency_ms"],
        "metadata": row["metadata"],
        "fallbackReason": row["fallback_reason"],
        "createdAt": row["created_at"].isoformat(),
        "model": model_version_lineage(version=row["model_version"]),
    }

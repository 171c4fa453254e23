"""Reads for prediction traces."""

from typing import Any

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


def prediction_trace_exists(*, request_id: str) -> bool:
    """Whether a trace is stored under this request id."""
    return PredictionTrace.objects.filter(request_id=request_id).exists()


def prediction_trace_lineage(*, request_id: str) -> dict[str, Any] | None:
    """A trace's fields with the record of the model version that served it (`model`), or None when unknown."""
    row = PredictionTrace.objects.filter(request_id=request_id).values(*TRACE_FIELDS).first()
    if row is None:
        return None
    return {**row, "model": model_version_lineage(version=row["model_version"])}

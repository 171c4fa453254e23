"""Reads for the registry."""

from recommendations.serving import StateView
from registry.models import ModelVersion, ServingState
from registry.services import DEFAULT_EXPERIMENT


def serving_state_view(*, experiment: str = DEFAULT_EXPERIMENT) -> StateView | None:
    """The serving state as the serving runtime needs it, or None when there is none yet."""
    row = (
        ServingState.objects.filter(experiment=experiment)
        .values("revision", "control_version", "treatment_version", "treatment_share")
        .first()
    )
    if row is None:
        return None
    return StateView(
        revision=row["revision"],
        control_version=row["control_version"],
        treatment_version=row["treatment_version"],
        treatment_share=row["treatment_share"],
    )


def model_version_lineage(*, version: str) -> dict[str, object] | None:
    """What a trace's reader needs to know about the version that served it."""
    record = ModelVersion.objects.filter(version=version).first()
    if record is None:
        return None
    return {
        "version": record.version,
        "modelName": record.model_name,
        "algorithm": record.algorithm,
        "params": record.params,
        "status": record.status,
        "trainedAt": record.trained_at.isoformat(),
        "trainingWindow": record.training_window,
        "counts": record.counts,
        "dataSnapshotId": record.data_snapshot_id,
        "pipelineGitSha": record.pipeline_git_sha,
        "containerImageDigest": record.container_image_digest,
        "provenanceSources": record.provenance_sources,
        "metrics": record.metrics,
        "artifactUri": record.artifact_uri,
        "artifactSha256": record.artifact_sha256,
    }

"""Reads for the registry."""

from typing import Any

from recommendations.serving import StateView
from registry.models import ModelVersion, ServingState, ServingStateChange
from registry.services import DEFAULT_EXPERIMENT, ServingStateInfo, serving_state_info
from registry.versions import version_key


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


def model_version_public(record: ModelVersion) -> dict[str, Any]:
    """A version's record as the API shows it, in the model list and in a trace's lineage (no model payloads)."""
    return {
        "version": record.version,
        "modelName": record.model_name,
        "status": record.status,
        "algorithm": record.algorithm,
        "params": record.params,
        "metrics": record.metrics,
        "trainingWindow": record.training_window,
        "counts": record.counts,
        "dataSnapshotId": record.data_snapshot_id,
        "pipelineGitSha": record.pipeline_git_sha,
        "containerImageDigest": record.container_image_digest,
        "provenanceSources": record.provenance_sources,
        "artifactUri": record.artifact_uri,
        "artifactSha256": record.artifact_sha256,
        "trainedAt": record.trained_at.isoformat(),
        "createdAt": record.created_at.isoformat(),
    }


def model_version_lineage(*, version: str) -> dict[str, Any] | None:
    """What a trace's reader needs to know about the version that served it."""
    record = ModelVersion.objects.filter(version=version).first()
    return model_version_public(record) if record is not None else None


def serving_state_current(*, experiment: str = DEFAULT_EXPERIMENT) -> ServingStateInfo | None:
    state = ServingState.objects.filter(experiment=experiment).first()
    return serving_state_info(state) if state else None


def model_version_page(*, limit: int, after: str | None = None) -> tuple[list[dict[str, Any]], str | None]:
    """Versions newest first, without model payloads; `after` is the last version of the previous page."""
    query = ModelVersion.objects.order_by("-version_key")
    if after is not None:
        query = query.filter(version_key__lt=version_key(after))
    rows = list(query[: limit + 1])
    page = [model_version_public(row) for row in rows[:limit]]
    return page, (rows[limit - 1].version if len(rows) > limit else None)


def serving_history_page(
    *, limit: int, before: int | None = None, experiment: str = DEFAULT_EXPERIMENT
) -> tuple[list[dict[str, Any]], str | None]:
    """History records newest first; `before` is the last revision of the previous page."""
    query = ServingStateChange.objects.filter(experiment=experiment).order_by("-revision")
    if before is not None:
        query = query.filter(revision__lt=before)
    rows = list(query[: limit + 1])
    page = [
        {
            "revision": row.revision,
            "changedAt": row.changed_at.isoformat(),
            "actor": row.actor,
            "action": row.action,
            "target": row.target,
            "from": row.before,
            "to": row.after,
            "reason": row.reason,
        }
        for row in rows[:limit]
    ]
    return page, (str(rows[limit - 1].revision) if len(rows) > limit else None)

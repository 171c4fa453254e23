"""Reads for the registry: the serving state, model versions and the serving history."""

from dataclasses import dataclass, fields
from datetime import datetime
from typing import Any

from core.variants import DEFAULT_EXPERIMENT
from registry.models import ModelVersion, ServingState, ServingStateChange
from registry.state import ServingStateInfo, serving_state_info
from registry.versions import version_key


@dataclass(frozen=True)
class ModelVersionInfo:
    """A registered version as other apps see it: its record without the model itself."""

    version: str
    model_name: str
    status: str
    algorithm: str
    params: dict[str, Any]
    metrics: dict[str, Any]
    training_window: dict[str, Any]
    counts: dict[str, Any]
    data_snapshot_id: str
    pipeline_git_sha: str
    container_image_digest: str
    provenance_sources: dict[str, str]
    artifact_uri: str
    artifact_sha256: dict[str, str]
    trained_at: datetime
    created_at: datetime


def _version_info(record: ModelVersion) -> ModelVersionInfo:
    return ModelVersionInfo(**{item.name: getattr(record, item.name) for item in fields(ModelVersionInfo)})


def serving_state_current(*, experiment: str = DEFAULT_EXPERIMENT) -> ServingStateInfo | None:
    """The serving state, or None before the first switch."""
    state = ServingState.objects.filter(experiment=experiment).first()
    return serving_state_info(state) if state else None


def model_version_lineage(*, version: str) -> ModelVersionInfo | None:
    """What a trace's reader needs to know about the version that served it."""
    record = ModelVersion.objects.filter(version=version).first()
    return _version_info(record) if record is not None else None


def model_version_exists() -> bool:
    """Whether any version is registered."""
    return ModelVersion.objects.exists()


def model_version_last_published_at() -> datetime | None:
    """When the newest model version was registered, or None before the first one."""
    row = ModelVersion.objects.order_by("-created_at").values("created_at").first()
    return row["created_at"] if row else None


def model_version_page(*, limit: int, after: str | None = None) -> tuple[list[ModelVersionInfo], str | None]:
    """Versions newest first; `after` is the last version of the previous page."""
    query = ModelVersion.objects.order_by("-version_key")
    if after is not None:
        query = query.filter(version_key__lt=version_key(after))
    rows = list(query[: limit + 1])
    return [_version_info(row) for row in rows[:limit]], (rows[limit - 1].version if len(rows) > limit else None)


def serving_history_page(
    *, limit: int, before: int | None = None, experiment: str = DEFAULT_EXPERIMENT
) -> tuple[list[ServingStateChange], str | None]:
    """History records newest first; `before` is the last revision of the previous page."""
    query = ServingStateChange.objects.filter(experiment=experiment).order_by("-revision")
    if before is not None:
        query = query.filter(revision__lt=before)
    rows = list(query[: limit + 1])
    return rows[:limit], (str(rows[limit - 1].revision) if len(rows) > limit else None)

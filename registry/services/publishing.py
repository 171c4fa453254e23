"""Publishing model versions: version numbers reserved against concurrent trainers, artifacts written and read back,
then the version registered."""

import logging
import os
import socket
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.conf import settings
from django.db import IntegrityError
from django.db.models import Max
from django.utils import timezone

from core.artifacts import ARRAYS_FILE, METADATA_FILE, MODEL_FILE, json_bytes, model_files_build, sha256_hex
from core.errors import ApplicationError
from core.recommender.algorithms import Recommender
from registry.models import ModelStatus, ModelVersion, VersionReservation
from registry.storage import ArtifactStore, ArtifactStoreError, artifact_store_from_uri
from registry.versions import version_from_key, version_key, version_next_minor, version_parse

logger = logging.getLogger(__name__)
_RESERVE_ATTEMPTS = 50


def process_owner() -> str:
    """Who holds a reservation: host and pid, for the operator reading a stuck one."""
    return f"{socket.gethostname()}:{os.getpid()}"


def _highest_taken_key() -> int | None:
    registered = ModelVersion.objects.aggregate(top=Max("version_key"))["top"]
    reserved = VersionReservation.objects.aggregate(top=Max("version_key"))["top"]
    keys = [key for key in (registered, reserved) if key is not None]
    return max(keys) if keys else None


def model_version_reserve(*, requested: str | None = None, owner: str | None = None) -> str:
    """Take a version number for a new model: `requested` if free, else the minor bump of the highest taken.

    The unique index on reservations arbitrates between concurrent trainers: the loser of a race moves on to the
    next number, so two runs never publish under the same version.
    """
    holder = owner or process_owner()
    if requested is not None:
        try:
            version_parse(requested)
        except ValueError as exc:
            raise ApplicationError("invalid_version", str(exc), status=400) from exc
        if ModelVersion.objects.filter(version=requested).exists():
            raise ApplicationError("version_exists", f"Version {requested} is already registered.", status=409)
        try:
            VersionReservation.objects.create(
                version=requested, version_key=version_key(requested), owner=holder, reserved_at=timezone.now()
            )
        except IntegrityError as exc:
            raise ApplicationError("version_exists", f"Version {requested} is being published.", status=409) from exc
        return requested
    for _ in range(_RESERVE_ATTEMPTS):
        top = _highest_taken_key()
        candidate = version_next_minor(version_from_key(top) if top is not None else None)
        try:
            VersionReservation.objects.create(
                version=candidate, version_key=version_key(candidate), owner=holder, reserved_at=timezone.now()
            )
        except IntegrityError:
            continue
        return candidate
    raise ApplicationError("version_conflict", "Could not reserve a version number; too many concurrent trainers.")


def model_version_release(*, version: str) -> None:
    """Drop a reservation (after registering, or after a failed publish frees the number)."""
    VersionReservation.objects.filter(version=version).delete()


@dataclass(frozen=True)
class Provenance:
    data_snapshot_id: str
    pipeline_git_sha: str
    container_image_digest: str
    # Where each value came from, e.g. {"dataSnapshotId": "computed from the training window", ...}
    sources: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class VersionDraft:
    """Everything a trained model needs to become a registered version."""

    version: str
    model_name: str
    model: Recommender
    metrics: dict[str, Any]
    training_window: dict[str, Any]
    counts: dict[str, Any]
    provenance: Provenance
    trained_at: datetime


@dataclass(frozen=True)
class PublishedVersion:
    version: str
    artifact_uri: str
    artifact_sha256: dict[str, str]
    metadata: dict[str, Any]


def _metadata(draft: VersionDraft, artifact_uri: str, checksums: dict[str, str]) -> dict[str, Any]:
    return {
        "version": draft.version,
        "modelName": draft.model_name,
        "algorithm": draft.model.algorithm,
        "params": draft.model.config().get("params", {}),
        "dataSnapshotId": draft.provenance.data_snapshot_id,
        "pipelineGitSha": draft.provenance.pipeline_git_sha,
        "containerImageDigest": draft.provenance.container_image_digest,
        "provenanceSources": draft.provenance.sources,
        "artifactUri": artifact_uri,
        "trainedAt": draft.trained_at.isoformat(),
        "trainingWindow": draft.training_window,
        "counts": draft.counts,
        "metrics": draft.metrics,
        "artifactSha256": checksums,
    }


def _upload_and_verify(store: ArtifactStore, version: str, files: dict[str, bytes]) -> None:
    for name in (MODEL_FILE, ARRAYS_FILE, METADATA_FILE):  # metadata last: its presence means the rest is there
        store.put_bytes(f"{version}/{name}", files[name])
    for name, data in files.items():
        if sha256_hex(store.get_bytes(f"{version}/{name}")) != sha256_hex(data):
            raise ApplicationError(
                "artifact_mismatch", f"{name} read back from the store differs from what was written."
            )


def model_version_publish(*, store: ArtifactStore, draft: VersionDraft) -> PublishedVersion:
    """Write the artifacts, read them back to verify, then register the version (status ready) last.

    On any failure the uploaded files are removed and nothing is registered; the error says which stage failed.
    The caller holds the version's reservation and releases it either way.
    """
    stage = "serialise"
    try:
        built = model_files_build(draft.model)
        artifact_uri = store.uri_for(draft.version)
        metadata = _metadata(draft, artifact_uri, built.checksums())
        files = {**built.files, METADATA_FILE: json_bytes(metadata)}
        checksums = {name: sha256_hex(data) for name, data in sorted(files.items())}
        stage = "upload"
        _upload_and_verify(store, draft.version, files)
        stage = "register"
        ModelVersion.objects.create(
            model_name=draft.model_name,
            version=draft.version,
            version_key=version_key(draft.version),
            status=ModelStatus.READY,
            algorithm=draft.model.algorithm,
            params=metadata["params"],
            metrics=draft.metrics,
            data_snapshot_id=draft.provenance.data_snapshot_id,
            pipeline_git_sha=draft.provenance.pipeline_git_sha,
            container_image_digest=draft.provenance.container_image_digest,
            artifact_uri=artifact_uri,
            artifact_sha256=checksums,
            training_window=draft.training_window,
            counts=draft.counts,
            provenance_sources=draft.provenance.sources,
            trained_at=draft.trained_at,
            created_at=timezone.now(),
        )
    except Exception as exc:
        _remove_partial_upload(store, draft.version)
        detail = exc.message if isinstance(exc, ApplicationError) else f"{type(exc).__name__}: {exc}"
        raise ApplicationError(
            "publish_failed",
            f"Publishing {draft.version} failed during {stage}: {detail}",
            status=500,
            details={"version": draft.version, "stage": stage},
        ) from exc
    return PublishedVersion(draft.version, artifact_uri, checksums, metadata)


def _remove_partial_upload(store: ArtifactStore, version: str) -> None:
    try:
        store.delete_prefix(f"{version}/")
    except Exception:  # the original failure matters more; log this one for the operator
        logger.exception("Could not remove the partial upload of %s from %s", version, store.uri)


def model_version_create(*, requested: str | None, draft_for: Callable[[str], VersionDraft]) -> PublishedVersion:
    """Publish a new version to MODEL_REGISTRY_URI: reserve its number (`requested` or the next one), publish the
    draft made for that number, and release the reservation whatever happens."""
    try:
        store = artifact_store_from_uri(
            settings.MODEL_REGISTRY_URI,
            s3_endpoint_url=settings.MODEL_REGISTRY_S3_ENDPOINT_URL,
            base_dir=settings.BASE_DIR,
        )
    except ArtifactStoreError as exc:
        raise ApplicationError("storage_unavailable", f"MODEL_REGISTRY_URI: {exc}") from exc
    version = model_version_reserve(requested=requested)
    try:
        return model_version_publish(store=store, draft=draft_for(version))
    finally:
        model_version_release(version=version)

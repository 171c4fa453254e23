"""Writes for the registry: version numbers, publishing model versions, and the serving state with its history."""

import logging
import os
import socket
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.db import DatabaseError, IntegrityError
from django.db.models import Max
from django.utils import timezone
from django_mongodb_backend import transaction
from pymongo.errors import OperationFailure

from recommendations.recommender import Recommender
from registry.artifacts import ARRAYS_FILE, METADATA_FILE, MODEL_FILE, json_bytes, model_files_build, sha256_hex
from registry.models import ModelStatus, ModelVersion, ServingState, ServingStateChange, VersionReservation
from registry.storage import ArtifactStore
from registry.versions import version_from_key, version_key, version_next_minor, version_parse
from rideease.errors import ApplicationError

logger = logging.getLogger(__name__)
_RESERVE_ATTEMPTS = 50
DEFAULT_EXPERIMENT = "rec-engine"
TARGETS = ("control", "treatment", "all")
WRITE_CONFLICT = 112


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


@dataclass(frozen=True)
class ServingStateInfo:
    experiment: str
    control_version: str
    treatment_version: str | None
    treatment_share: float
    revision: int
    updated_at: datetime
    updated_by: str


def serving_state_info(state: ServingState) -> ServingStateInfo:
    return ServingStateInfo(
        experiment=state.experiment,
        control_version=state.control_version,
        treatment_version=state.treatment_version,
        treatment_share=state.treatment_share,
        revision=state.revision,
        updated_at=state.updated_at,
        updated_by=state.updated_by,
    )


def _snapshot(control: str | None, treatment: str | None, share: float | None) -> dict[str, Any]:
    return {"control": control, "treatment": treatment, "treatmentShare": share}


def _check_switch(version: str, target: str, treatment_share: float | None) -> None:
    if target not in TARGETS:
        raise ApplicationError("invalid_target", f"target must be one of {', '.join(TARGETS)}.", status=400)
    if treatment_share is not None and not 0.0 <= treatment_share <= 1.0:
        raise ApplicationError("invalid_share", "treatmentShare must be between 0 and 1.", status=400)
    _check_servable(version)


def _check_servable(version: str) -> None:
    """The version is registered, ready, and its artifacts load with every sha256 verified."""
    from registry.loading import model_version_load

    record = ModelVersion.objects.filter(version=version).first()
    if record is None:
        raise ApplicationError("version_not_found", f"Version {version} is not registered.", status=404)
    if record.status != ModelStatus.READY:
        raise ApplicationError("version_not_ready", f"Version {version} is {record.status}, not ready.", status=409)
    model_version_load(version=version)


Change = Callable[[dict[str, Any]], dict[str, Any]]


def serving_state_switch(
    *,
    version: str,
    target: str,
    actor: str,
    reason: str = "",
    treatment_share: float | None = None,
    experiment: str = DEFAULT_EXPERIMENT,
) -> ServingStateInfo:
    """Put a ready, loadable version on a variant (or both): one conditional write on the revision + one history record.

    Nothing changes unless the version exists, is ready and its artifacts pass their sha256 checks.
    """
    _check_switch(version, target, treatment_share)

    def change(before: dict[str, Any]) -> dict[str, Any]:
        share = treatment_share if treatment_share is not None else (before["treatmentShare"] or 0.5)
        return _snapshot(
            version if target in ("control", "all") else before["control"],
            version if target in ("treatment", "all") else before["treatment"],
            share,
        )

    return _apply(experiment=experiment, action="switch", target=target, actor=actor, reason=reason, change=change)


def _previous_version(experiment: str, variant: str) -> str | None:
    """What `variant` served before its most recent change that has not been rolled back already.

    Rollbacks stack: each one undoes the latest change not yet undone, so repeated rollbacks walk back in time.
    """
    undone = 0
    for record in ServingStateChange.objects.filter(experiment=experiment).order_by("-revision").iterator():
        if record.before.get(variant) == record.after.get(variant):
            continue
        if record.action == "rollback":
            undone += 1
        elif undone:
            undone -= 1
        else:
            previous: str | None = record.before.get(variant)
            return previous
    raise ApplicationError("nothing_to_roll_back", f"No change of the {variant} version is left to undo.", status=409)


def serving_state_rollback(
    *, target: str, actor: str, reason: str = "", experiment: str = DEFAULT_EXPERIMENT
) -> ServingStateInfo:
    """Give `target` back the version it had before its last change (no treatment: control serves everyone)."""
    if target not in ("control", "treatment"):
        raise ApplicationError("invalid_target", "target must be control or treatment.", status=400)
    previous = _previous_version(experiment, target)
    if previous is None and target == "control":
        raise ApplicationError("nothing_to_roll_back", "Control had no version before its last change.", status=409)
    if previous is not None:
        _check_servable(previous)

    def change(before: dict[str, Any]) -> dict[str, Any]:
        after = dict(before)
        after[target] = previous
        return after

    return _apply(experiment=experiment, action="rollback", target=target, actor=actor, reason=reason, change=change)


def _apply(*, experiment: str, action: str, target: str, actor: str, reason: str, change: Change) -> ServingStateInfo:
    """Apply `change` to the state in one MongoDB transaction: a conditional write on the revision it read, and
    exactly one history record. A concurrent change makes the condition fail: 409, and nothing is written."""
    try:
        with transaction.atomic():
            return _apply_in_transaction(experiment, action, target, actor, reason, change)
    except IntegrityError as exc:
        # Two first-ever changes raced to create the state, or to append the same revision: one of them lost.
        raise _concurrent_change() from exc
    except DatabaseError as exc:
        if _is_write_conflict(exc):
            # The other transaction touched the state first; this one was rolled back whole.
            raise _concurrent_change() from exc
        raise


def _concurrent_change() -> ApplicationError:
    return ApplicationError(
        "concurrent_change", "The serving state changed meanwhile; nothing was applied.", status=409
    )


def _is_write_conflict(exc: BaseException) -> bool:
    cause = exc.__cause__ if exc.__cause__ is not None else exc
    if isinstance(cause, OperationFailure):
        return cause.code == WRITE_CONFLICT or cause.has_error_label("TransientTransactionError")
    return False


def _apply_in_transaction(
    experiment: str, action: str, target: str, actor: str, reason: str, change: Change
) -> ServingStateInfo:
    now = timezone.now()
    state = ServingState.objects.filter(experiment=experiment).first()
    before = (
        _snapshot(state.control_version, state.treatment_version, state.treatment_share)
        if state
        else _snapshot(None, None, None)
    )
    after = change(before)
    if after["control"] is None:
        raise ApplicationError("no_control", "Set a control version before a treatment.", status=409)
    values = {
        "control_version": after["control"],
        "treatment_version": after["treatment"],
        "treatment_share": after["treatmentShare"],
        "updated_at": now,
        "updated_by": actor,
    }
    if state is None:
        state = ServingState.objects.create(experiment=experiment, revision=1, **values)
    else:
        changed = ServingState.objects.filter(pk=state.pk, revision=state.revision).update(
            revision=state.revision + 1, **values
        )
        if changed != 1:
            raise ApplicationError("concurrent_change", "The serving state changed meanwhile; retry.", status=409)
        state.refresh_from_db()
    ServingStateChange.objects.create(
        experiment=experiment,
        revision=state.revision,
        changed_at=now,
        actor=actor,
        action=action,
        target=target,
        before=before,
        after=after,
        reason=reason,
    )
    return serving_state_info(state)

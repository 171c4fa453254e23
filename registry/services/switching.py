"""Changing the serving state: switch a version onto a variant, roll a variant back, each as one conditional write
on the revision plus one history record, in one MongoDB transaction."""

from collections.abc import Callable
from typing import Any

from django.db import DatabaseError, IntegrityError
from django.utils import timezone
from django_mongodb_backend import transaction
from pymongo.errors import OperationFailure

from core.errors import ApplicationError
from core.variants import CONTROL, DEFAULT_EXPERIMENT, TREATMENT
from registry.loading import model_version_load
from registry.models import ModelStatus, ModelVersion, ServingState, ServingStateChange
from registry.state import ALL, TARGETS, ServingStateInfo, reason_check, serving_state_info

WRITE_CONFLICT = 112


def _snapshot(control: str | None, treatment: str | None, share: float | None) -> dict[str, Any]:
    return {CONTROL: control, TREATMENT: treatment, "treatmentShare": share}


def _check_switch(version: str, target: str, treatment_share: float | None) -> None:
    if target not in TARGETS:
        raise ApplicationError("invalid_target", f"target must be one of {', '.join(TARGETS)}.", status=400)
    if treatment_share is not None and not 0.0 <= treatment_share <= 1.0:
        raise ApplicationError("invalid_share", "treatmentShare must be between 0 and 1.", status=400)
    _check_servable(version)


def _check_servable(version: str) -> None:
    """The version is registered, ready, and its artifacts load with every sha256 verified."""
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
    reason = reason_check(reason)
    _check_switch(version, target, treatment_share)

    def change(before: dict[str, Any]) -> dict[str, Any]:
        share = treatment_share if treatment_share is not None else (before["treatmentShare"] or 0.5)
        return _snapshot(
            version if target in (CONTROL, ALL) else before[CONTROL],
            version if target in (TREATMENT, ALL) else before[TREATMENT],
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
    reason = reason_check(reason)
    if target not in (CONTROL, TREATMENT):
        raise ApplicationError("invalid_target", "target must be control or treatment.", status=400)
    previous = _previous_version(experiment, target)
    if previous is None and target == CONTROL:
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
    if after[CONTROL] is None:
        raise ApplicationError("no_control", "Set a control version before a treatment.", status=409)
    values = {
        "control_version": after[CONTROL],
        "treatment_version": after[TREATMENT],
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

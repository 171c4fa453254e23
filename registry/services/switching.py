"""Changing the serving state: switch a version onto a variant, roll a variant back, or set it for an experiment,
each as one conditional write on the revision plus one history record, in one MongoDB transaction.

While an experiment runs on the slot, a plain switch or rollback changes it too: a new treatment version stops it
(`treatment_changed`); any other change of a version, the share or the salt starts its next phase. Listeners (the
experiments app registers one) are told inside the same transaction, so the experiment's record and the state never
disagree."""

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.conf import settings
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
NEW_PHASE, TREATMENT_CHANGED, SHARE_CLOSED = "new_phase", "treatment_changed", "share_closed"
# What defines a phase: a change of any of these while an experiment runs starts a new one.
_PHASE_KEYS = (CONTROL, TREATMENT, "treatmentShare", "salt")


def _snapshot(
    control: str | None,
    treatment: str | None,
    share: float | None,
    *,
    salt: str | None = None,
    experiment: str | None = None,
    phase: int | None = None,
) -> dict[str, Any]:
    return {
        CONTROL: control,
        TREATMENT: treatment,
        "treatmentShare": share,
        "salt": salt,
        "experiment": experiment,
        "phase": phase,
    }


@dataclass(frozen=True)
class ServingChange:
    """One accepted change, as listeners see it (inside its transaction)."""

    slot: str
    action: str
    actor: str
    reason: str
    at: datetime
    before: dict[str, Any]
    after: dict[str, Any]
    state: ServingStateInfo
    # What the change did to the running experiment `before["experiment"]`: NEW_PHASE, TREATMENT_CHANGED or None.
    experiment_effect: str | None


Listener = Callable[[ServingChange], None]
_listeners: list[Listener] = []


def serving_change_listener_register(listener: Listener) -> None:
    """Call `listener` inside the transaction of every accepted change (once per listener, from AppConfig.ready)."""
    if listener not in _listeners:
        _listeners.append(listener)


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
        return {
            **before,
            CONTROL: version if target in (CONTROL, ALL) else before[CONTROL],
            TREATMENT: version if target in (TREATMENT, ALL) else before[TREATMENT],
            "treatmentShare": share,
        }

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


def serving_state_experiment_set(
    *,
    slot: str,
    control_version: str,
    treatment_version: str | None,
    treatment_share: float,
    salt: str,
    experiment: str | None,
    phase: int | None,
    expect_experiment: str | None,
    expect_phase: int | None,
    action: str,
    actor: str,
    reason: str,
    also: Callable[[ServingChange], None],
) -> ServingStateInfo:
    """Set the whole state for an experiment (start, new phase, stop), with `also` run in the same transaction.

    Refused with 409 unless the slot runs `expect_experiment` in `expect_phase` when the change is applied: two
    experiments never run on one slot, and a change or a stop decided on one phase never lands on another (every
    change of a version, the share or the salt while an experiment runs starts a new phase or stops it).
    Only versions that will serve are loaded and verified first: a stop (share 0) never waits on the treatment's files.
    """
    reason = reason_check(reason)
    if not 0.0 <= treatment_share <= 1.0:
        raise ApplicationError("invalid_share", "treatmentShare must be between 0 and 1.", status=400)
    serving = [control_version] + ([treatment_version] if treatment_version and treatment_share > 0 else [])
    for version in dict.fromkeys(serving):
        _check_servable(version)

    def change(before: dict[str, Any]) -> dict[str, Any]:
        running = before["experiment"]
        if running != expect_experiment:
            raise ApplicationError(
                "experiment_conflict",
                f"Experiment {running} runs on {slot}." if running else f"No experiment runs on {slot} any more.",
                status=409,
            )
        if before["phase"] != expect_phase:
            raise ApplicationError(
                "phase_changed",
                f"Experiment {running} is in phase {before['phase']} now, not {expect_phase}; read it again.",
                status=409,
            )
        return _snapshot(
            control_version, treatment_version, treatment_share, salt=salt, experiment=experiment, phase=phase
        )

    return _apply(
        experiment=slot, action=action, target=ALL, actor=actor, reason=reason, change=change, also=also, managed=True
    )


def _experiment_effect(before: dict[str, Any], after: dict[str, Any]) -> str | None:
    """What a plain switch or rollback does to the experiment running on the slot, updating `after` to match."""
    if before["experiment"] is None or all(before[key] == after[key] for key in _PHASE_KEYS):
        return None
    if after[TREATMENT] != before[TREATMENT] or not 0.0 < after["treatmentShare"] < 1.0:
        # What was tested is no longer served, or one arm is empty: the experiment cannot go on.
        after.update(experiment=None, phase=None)
        return TREATMENT_CHANGED if after[TREATMENT] != before[TREATMENT] else SHARE_CLOSED
    after["phase"] = before["phase"] + 1
    return NEW_PHASE


def _apply(
    *,
    experiment: str,
    action: str,
    target: str,
    actor: str,
    reason: str,
    change: Change,
    also: Callable[[ServingChange], None] | None = None,
    managed: bool = False,
) -> ServingStateInfo:
    """Apply `change` to the state in one MongoDB transaction: a conditional write on the revision it read, and
    exactly one history record. A concurrent change makes the condition fail: 409, and nothing is written.

    `managed` changes set the experiment fields themselves; any other change goes through `_experiment_effect`.
    """
    try:
        with transaction.atomic():
            change_made = _apply_in_transaction(experiment, action, target, actor, reason, change, managed)
            for listener in ([also] if also else []) + _listeners:
                listener(change_made)
            return change_made.state
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
    experiment: str, action: str, target: str, actor: str, reason: str, change: Change, managed: bool
) -> ServingChange:
    now = timezone.now()
    state = ServingState.objects.filter(experiment=experiment).first()
    before = (
        _snapshot(
            state.control_version,
            state.treatment_version,
            state.treatment_share,
            salt=state.salt or settings.EXPERIMENT_SALT,
            experiment=state.running_experiment,
            phase=state.phase,
        )
        if state
        else _snapshot(None, None, None, salt=settings.EXPERIMENT_SALT)
    )
    after = change(before)
    effect = None if managed else _experiment_effect(before, after)
    if after[CONTROL] is None:
        raise ApplicationError("no_control", "Set a control version before a treatment.", status=409)
    values = {
        "control_version": after[CONTROL],
        "treatment_version": after[TREATMENT],
        "treatment_share": after["treatmentShare"],
        "salt": after["salt"],
        "running_experiment": after["experiment"],
        "phase": after["phase"],
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
    return ServingChange(experiment, action, actor, reason, now, before, after, serving_state_info(state), effect)

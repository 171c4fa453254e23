"""Writes of experiments: create a draft, start it, change it while it runs (a new phase), stop it.

Every change of what is served goes through the registry's serving-state write (one conditional write on the
revision and one history record), with the experiment's own record updated in the same transaction.
"""

import logging
from dataclasses import replace
from datetime import datetime
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import IntegrityError, connections
from django.utils import timezone

from core.errors import ApplicationError
from core.rollout import FAILED as LOOK_FAILED
from experiments.models import Experiment, ExperimentResult, ExperimentStatus
from experiments.state import ExperimentInfo, Phase, experiment_info, phase_document
from registry.selectors import model_version_lineage
from registry.services import (
    NEW_PHASE,
    SHARE_CLOSED,
    TREATMENT_CHANGED,
    ServingChange,
    serving_state_experiment_set,
)
from registry.state import reason_check

logger = logging.getLogger(__name__)
# What a draft may set; what a running experiment may change (each change starts a new phase).
DRAFT_FIELDS = frozenset(
    {
        "key",
        "name",
        "hypothesis",
        "control_version",
        "treatment_version",
        "treatment_share",
        "salt",
        "rule",
        "alpha",
        "relative_mde",
        "power",
        "n_star",
        "planned_days",
        "guardrails",
        "secondary_metrics",
        "adjustment",
        "cuped",
        "ramp",
    }
)
PHASE_FIELDS = frozenset({"control_version", "treatment_version", "treatment_share", "salt"})


def _record(key: str) -> Experiment:
    record = Experiment.objects.filter(key=key).first()
    if record is None:
        raise ApplicationError("experiment_not_found", f"No experiment with key {key!r}.", status=404)
    return record


def _validated(record: Experiment) -> None:
    """The model's own rules (the web admin's form applies the same ones) and registered versions, as one error."""
    fields: dict[str, str] = {}
    try:
        record.full_clean(validate_unique=False)
    except ValidationError as exc:
        fields = {name: " ".join(messages) for name, messages in exc.message_dict.items()}
    for name in ("control_version", "treatment_version"):
        version = getattr(record, name)
        if name not in fields and model_version_lineage(version=version) is None:
            fields[name] = f"Version {version} is not registered."
    if fields:
        raise ApplicationError("validation_error", "The experiment is invalid.", details={"fields": fields})


def _primary_metric() -> dict[str, Any]:
    """Today's conversion rule, frozen into the experiment so a later settings change cannot alter its metric."""
    return {
        "name": "conversion",
        "windowMinutes": settings.CONVERSION_WINDOW_MINUTES,
        "eventTypes": list(settings.CONVERSION_EVENT_TYPES),
    }


def experiment_create(*, fields: dict[str, Any], actor: str, now: datetime | None = None) -> ExperimentInfo:
    """A new draft experiment; refused (409) when the key is taken."""
    unknown = set(fields) - DRAFT_FIELDS
    if unknown:
        raise ApplicationError("validation_error", "Unknown fields.", details={"fields": sorted(unknown)})
    record = Experiment(**fields, owner=actor, created_at=now or timezone.now(), primary_metric=_primary_metric())
    record.salt = record.salt or record.key
    _validated(record)
    if Experiment.objects.filter(key=record.key).exists():
        raise ApplicationError("experiment_exists", f"An experiment with key {record.key!r} exists.", status=409)
    try:
        record.save()
    except IntegrityError as exc:
        raise ApplicationError(
            "experiment_exists", f"An experiment with key {record.key!r} exists.", status=409
        ) from exc
    return experiment_info(record)


def _phase_from(change: ServingChange, number: int) -> Phase:
    state = change.state
    return Phase(
        id=number,
        started_at=change.at,
        ended_at=None,
        control_version=state.control_version,
        treatment_version=state.treatment_version,
        treatment_share=state.treatment_share,
        salt=state.salt,
        revision=state.revision,
        reason=change.reason,
        actor=change.actor,
    )


def _closed(phases: list[Phase], at: datetime) -> list[dict[str, Any]]:
    """The stored phases with the current one ended at `at`."""
    return [phase_document(replace(p, ended_at=p.ended_at or at)) for p in phases]


def _update(record: Experiment, expected: str, **values: Any) -> None:
    """Write `values` if the experiment is still `expected`; a concurrent change makes it 409 (and rolls back)."""
    if Experiment.objects.filter(pk=record.pk, status=expected).update(**values) != 1:
        raise ApplicationError(
            "concurrent_change", "The experiment changed meanwhile; nothing was applied.", status=409
        )


def experiment_start(*, key: str, actor: str, reason: str = "") -> ExperimentInfo:
    """Serve the experiment's versions and share with its salt, tagging exposures with its key and phase 1."""
    record = _record(key)
    if record.status != ExperimentStatus.DRAFT:
        raise ApplicationError("experiment_not_draft", f"Experiment {key} is {record.status}.", status=409)

    # A ramp starts on its first step; the share then follows the steps `experiment_summary --apply` takes.
    share = float(record.ramp[0]["share"]) if record.ramp else record.treatment_share

    def also(change: ServingChange) -> None:
        phase = _phase_from(change, 1)
        _update(
            record,
            ExperimentStatus.DRAFT,
            status=ExperimentStatus.RUNNING,
            started_at=change.at,
            phases=[phase_document(phase)],
            treatment_share=share,
            ramp_step=0,
        )

    serving_state_experiment_set(
        slot=record.slot,
        control_version=record.control_version,
        treatment_version=record.treatment_version,
        treatment_share=share,
        salt=record.salt,
        experiment=key,
        phase=1,
        expect_experiment=None,
        expect_phase=None,
        action="experiment_start",
        actor=actor,
        reason=reason or f"start experiment {key}",
        also=also,
    )
    return experiment_info(_record(key))


def experiment_change(
    *,
    key: str,
    changes: dict[str, Any],
    actor: str,
    reason: str = "",
    phase: int | None = None,
    ramp_step: int | None = None,
) -> ExperimentInfo:
    """Edit a draft; or change a running experiment's versions, share or salt, which starts its next phase.

    `phase`: the phase the change was decided on (refused, 409, once another has started); `ramp_step`: the ramp step
    the new phase serves.
    """
    record = _record(key)
    if "salt" in changes:
        changes = {**changes, "salt": changes["salt"] or key}  # as at creation: an empty salt means the key
    if record.status == ExperimentStatus.DRAFT:
        return _draft_change(record, changes)
    if record.status != ExperimentStatus.RUNNING:
        raise ApplicationError("experiment_stopped", f"Experiment {key} is stopped; create a new one.", status=409)
    unknown = set(changes) - PHASE_FIELDS
    if unknown:
        raise ApplicationError(
            "validation_error",
            f"A running experiment can change only {', '.join(sorted(PHASE_FIELDS))}.",
            details={"fields": sorted(unknown)},
        )
    _phase_check(experiment_info(record), phase)
    changes = {name: value for name, value in changes.items() if getattr(record, name) != value}
    if not changes:
        # Asked for what runs already (a ramp step sent twice): no new phase.
        return experiment_info(record)
    for name, value in changes.items():
        setattr(record, name, value)
    _validated(record)
    info = experiment_info(record)
    number = len(info.phases) + 1
    step = {} if ramp_step is None else {"ramp_step": ramp_step}

    def also(change: ServingChange) -> None:
        phases = [*_closed(info.phases, change.at), phase_document(_phase_from(change, number))]
        _update(record, ExperimentStatus.RUNNING, phases=phases, **changes, **step)

    serving_state_experiment_set(
        slot=record.slot,
        control_version=record.control_version,
        treatment_version=record.treatment_version,
        treatment_share=record.treatment_share,
        salt=record.salt,
        experiment=key,
        phase=number,
        expect_experiment=key,
        expect_phase=number - 1,
        action="experiment_phase",
        actor=actor,
        reason=reason or f"experiment {key}: phase {number}",
        also=also,
    )
    return experiment_info(_record(key))


def _draft_change(record: Experiment, changes: dict[str, Any]) -> ExperimentInfo:
    unknown = set(changes) - (DRAFT_FIELDS - {"key"})
    if unknown:
        raise ApplicationError("validation_error", "Unknown fields.", details={"fields": sorted(unknown)})
    changes = {name: value for name, value in changes.items() if getattr(record, name) != value}
    if not changes:
        return experiment_info(record)
    for name, value in changes.items():
        setattr(record, name, value)
    _validated(record)
    _update(record, ExperimentStatus.DRAFT, **changes)
    return experiment_info(_record(record.key))


def _phase_check(info: ExperimentInfo, phase: int | None) -> Phase:
    """The running experiment's current phase; 409 when a decision read on `phase` came before another began."""
    current = info.current_phase
    assert current is not None  # a running experiment has at least its first phase
    if phase is not None and phase != current.id:
        raise ApplicationError(
            "phase_changed",
            f"Experiment {info.key} is in phase {current.id} now, not {phase}; read it again.",
            status=409,
        )
    return current


def experiment_ramp_advance(*, key: str, phase: int, actor: str, reason: str) -> ExperimentInfo:
    """Serve the ramp's next step: a new phase at its share (refused when the phase read is no longer current)."""
    record = _record(key)
    if record.status != ExperimentStatus.RUNNING:
        raise ApplicationError("experiment_not_running", f"Experiment {key} is {record.status}.", status=409)
    step = record.ramp_step + 1
    if step >= len(record.ramp):
        raise ApplicationError("ramp_done", f"Experiment {key} is on its ramp's last step.", status=409)
    share = float(record.ramp[step]["share"])
    changes = {"treatment_share": share}
    return experiment_change(key=key, changes=changes, actor=actor, reason=reason, phase=phase, ramp_step=step)


def experiment_look_record(*, key: str, look: dict[str, Any], action: str) -> None:
    """Record an automatic look: its outcome, one more decision of its kind, and the consecutive failures (reset by
    any look that computed). One atomic update, so two looks at once both count."""
    failed = look.get("outcome") == LOOK_FAILED
    update: dict[str, Any] = {"$set": {"lastLook": look}, "$inc": {f"decisions.{action}": 1}}
    if failed:
        update["$inc"]["lookFailures"] = 1
    else:
        update["$set"]["lookFailures"] = 0
    collection = connections["default"].get_collection(Experiment._meta.db_table)  # type: ignore[attr-defined]
    if collection.update_one({"key": key}, update).matched_count != 1:
        raise ApplicationError("experiment_not_found", f"No experiment with key {key!r}.", status=404)


def experiment_stop(
    *,
    key: str,
    result: str,
    actor: str,
    reason: str = "",
    reasons: list[str] | None = None,
    phase: int | None = None,
) -> ExperimentInfo:
    """Stop for good. Shipped: the treatment version becomes control; any other result: control keeps serving.

    Either way the treatment share goes to 0. A draft can only be abandoned (nothing is served for it). `phase` is the
    phase the decision was read on: refused (409) when another has started since, so what ships is what was tested.
    """
    reason = reason_check(reason)
    if result not in ExperimentResult.values:
        raise ApplicationError(
            "validation_error", f"result must be one of {', '.join(ExperimentResult.values)}.", status=400
        )
    record = _record(key)
    stopped = {"result": result, "result_reasons": list(reasons or []), "stop_reason": reason, "stopped_by": actor}
    if record.status == ExperimentStatus.DRAFT and result == ExperimentResult.ABANDONED:
        _update(record, ExperimentStatus.DRAFT, status=ExperimentStatus.STOPPED, stopped_at=timezone.now(), **stopped)
        return experiment_info(_record(key))
    if record.status == ExperimentStatus.DRAFT:
        raise ApplicationError(
            "experiment_not_running", f"Experiment {key} is a draft: it can only be abandoned.", status=409
        )
    if record.status != ExperimentStatus.RUNNING:
        raise ApplicationError("experiment_not_running", f"Experiment {key} is stopped already.", status=409)
    info = experiment_info(record)
    current = _phase_check(info, phase)
    shipped = result == ExperimentResult.SHIPPED
    if shipped and current.treatment_version is None:
        raise ApplicationError("nothing_to_ship", f"Experiment {key} has no treatment version.", status=409)

    def also(change: ServingChange) -> None:
        _update(
            record,
            ExperimentStatus.RUNNING,
            status=ExperimentStatus.STOPPED,
            stopped_at=change.at,
            phases=_closed(info.phases, change.at),
            **stopped,
        )

    serving_state_experiment_set(
        slot=record.slot,
        control_version=(current.treatment_version if shipped else current.control_version) or current.control_version,
        treatment_version=current.treatment_version,
        treatment_share=0.0,
        salt=current.salt,
        experiment=None,
        phase=None,
        expect_experiment=key,
        expect_phase=current.id,
        action=f"experiment_{result}",
        actor=actor,
        reason=reason or f"experiment {key}: {result}",
        also=also,
    )
    return experiment_info(_record(key))


def serving_change_observe(change: ServingChange) -> None:
    """A plain switch or rollback while an experiment runs: next phase, or stop it when the treatment changed or the
    share closed one arm."""
    key = change.before["experiment"]
    if change.experiment_effect is None or key is None:
        return
    record = Experiment.objects.filter(key=key).first()
    if record is None:
        # The state names an experiment whose record is gone (deleted by hand): nothing to follow, never block the
        # switch, which also clears the name when it changes the treatment.
        logger.warning("Serving state names experiment %s, which has no record", key)
        return
    info = experiment_info(record)
    if change.experiment_effect in (TREATMENT_CHANGED, SHARE_CLOSED):
        _update(
            record,
            ExperimentStatus.RUNNING,
            status=ExperimentStatus.STOPPED,
            result=ExperimentResult.ABANDONED,
            result_reasons=[change.experiment_effect],
            stop_reason=change.reason,
            stopped_by=change.actor,
            stopped_at=change.at,
            phases=_closed(info.phases, change.at),
        )
        return
    assert change.experiment_effect == NEW_PHASE
    state = change.state
    phase = _phase_from(change, int(change.after["phase"]))
    _update(
        record,
        ExperimentStatus.RUNNING,
        control_version=state.control_version,
        treatment_share=state.treatment_share,
        phases=[*_closed(info.phases, change.at), phase_document(phase)],
    )

"""Experiments as every reader sees them: the record with its phases parsed (times as datetimes)."""

from dataclasses import dataclass, fields
from datetime import datetime
from typing import Any

from core.statistics import Settings
from experiments.models import Experiment


@dataclass(frozen=True)
class Phase:
    """A stretch of an experiment with one configuration: exposures carry its id, its summary counts its users."""

    id: int
    started_at: datetime
    ended_at: datetime | None
    control_version: str
    treatment_version: str | None
    treatment_share: float
    salt: str
    revision: int
    reason: str
    actor: str


@dataclass(frozen=True)
class ExperimentInfo:
    key: str
    name: str
    hypothesis: str
    owner: str
    slot: str
    control_version: str
    treatment_version: str
    treatment_share: float
    salt: str
    primary_metric: dict[str, Any]
    rule: str
    alpha: float
    relative_mde: float
    power: float
    n_star: int
    planned_days: int
    guardrails: list[dict[str, Any]]
    secondary_metrics: list[str]
    adjustment: str
    cuped: bool
    ramp: list[dict[str, Any]]
    ramp_step: int
    look_failures: int
    last_look: dict[str, Any]
    decisions: dict[str, int]
    status: str
    result: str | None
    result_reasons: list[str]
    stop_reason: str
    created_at: datetime
    started_at: datetime | None
    stopped_at: datetime | None
    stopped_by: str
    phases: list[Phase]

    @property
    def current_phase(self) -> Phase | None:
        return self.phases[-1] if self.phases else None

    @property
    def starting_share(self) -> float:
        """The share a start serves: the ramp's first step, or the treatment share without a ramp."""
        return float(self.ramp[0]["share"]) if self.ramp else self.treatment_share

    def settings(self, *, treatment_share: float) -> Settings:
        """The decision rule's settings, for a phase with this treatment share."""
        return Settings(
            alpha=self.alpha,
            relative_mde=self.relative_mde,
            power=self.power,
            treatment_share=treatment_share,
            rule=self.rule,
            n_star=self.n_star,
            planned_looks=self.planned_days,
        )


def phase_document(phase: Phase) -> dict[str, Any]:
    """A phase as stored in the experiment's `phases` list."""
    return {
        "id": phase.id,
        "startedAt": phase.started_at.isoformat(),
        "endedAt": phase.ended_at.isoformat() if phase.ended_at else None,
        "controlVersion": phase.control_version,
        "treatmentVersion": phase.treatment_version,
        "treatmentShare": phase.treatment_share,
        "salt": phase.salt,
        "revision": phase.revision,
        "reason": phase.reason,
        "actor": phase.actor,
    }


def _phase(document: dict[str, Any]) -> Phase:
    ended = document.get("endedAt")
    return Phase(
        id=int(document["id"]),
        started_at=datetime.fromisoformat(document["startedAt"]),
        ended_at=datetime.fromisoformat(ended) if ended else None,
        control_version=document["controlVersion"],
        treatment_version=document.get("treatmentVersion"),
        treatment_share=float(document["treatmentShare"]),
        salt=document.get("salt", ""),
        revision=int(document.get("revision", 0)),
        reason=document.get("reason", ""),
        actor=document.get("actor", ""),
    )


def experiment_info(record: Experiment) -> ExperimentInfo:
    """The record as the shared type: its fields as they are, lists and dicts copied, phases parsed."""
    values = {item.name: getattr(record, item.name) for item in fields(ExperimentInfo) if item.name != "phases"}
    values |= {
        "primary_metric": dict(record.primary_metric),
        "result_reasons": list(record.result_reasons),
        "guardrails": [dict(guardrail) for guardrail in record.guardrails],
        "secondary_metrics": list(record.secondary_metrics),
        "ramp": [dict(step) for step in record.ramp],
        "last_look": dict(record.last_look),
        "decisions": dict(record.decisions),
    }
    return ExperimentInfo(**values, phases=[_phase(document) for document in record.phases])

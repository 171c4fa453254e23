"""What an automatic look does with a running experiment: hold, advance its ramp, roll back or ship (pure Python).

As Argo Rollouts and GrowthBook Safe Rollouts do it: a failing guardrail or a primary interval wholly below zero rolls
back at once, whatever the step; a step advances only after its minimum time and treatment users with no guardrail
failing and the sample ratio as planned; only the last step (or an experiment without a ramp) ships, and only on the
decision rule's own ship. Anything else holds: an inconclusive look changes nothing.
"""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from core.guardrails import GUARDRAIL_FAILING, GuardrailResult
from core.statistics import ROLLBACK, SHIP

HOLD, ADVANCE, ROLL_BACK, SHIP_IT, FAILED = "hold", "advance", "rollback", "ship", "failed"
# Every outcome a look records (`failed`: it could not compute), in the order the metrics list them.
LOOK_ACTIONS = (HOLD, ADVANCE, ROLL_BACK, SHIP_IT, FAILED)


@dataclass(frozen=True)
class LookFigures:
    """What the plan reads from a phase's summary."""

    decision: str
    reasons: Sequence[str]  # the decision rule's own, e.g. srm_detected
    difference: float | None
    ci_lower: float | None
    ci_upper: float | None
    srm_ok: bool
    guardrails: Sequence[GuardrailResult]
    treatment_users: int
    hours: float  # since the phase started


@dataclass(frozen=True)
class Plan:
    action: str
    reason: str
    # The ramp step and share an advance moves to.
    step: int | None = None
    share: float | None = None


def _figure(value: float | None, relative: bool) -> str:
    if value is None:
        return "-"
    return f"{value:+.1%}" if relative else f"{value:+.4g}"


def _guardrail_reason(result: GuardrailResult) -> str:
    relative = result.relative
    return (
        f"guardrail {result.metric} failing: control {result.control:.4g}, treatment {result.treatment:.4g} "
        f"(worse by {_figure(result.degradation, relative)}, at least {_figure(result.lower, relative)} "
        f"> threshold {_figure(result.threshold, relative)})"
    )


def _primary(figures: LookFigures) -> str:
    interval = f"[{_figure(figures.ci_lower, False)}, {_figure(figures.ci_upper, False)}]"
    return f"difference {_figure(figures.difference, False)}, interval {interval}"


def rollout_plan(figures: LookFigures, ramp: Sequence[Mapping[str, Any]], step: int) -> Plan:
    """The action for this look, with the figures behind it in its reason."""
    failing = [result for result in figures.guardrails if result.status == GUARDRAIL_FAILING]
    if failing:
        return Plan(ROLL_BACK, "; ".join(_guardrail_reason(result) for result in failing))
    if figures.decision == ROLLBACK:
        return Plan(ROLL_BACK, f"primary metric worse: {_primary(figures)} below zero")
    if not ramp or step >= len(ramp) - 1:
        if figures.decision == SHIP:
            return Plan(SHIP_IT, f"primary metric better: {_primary(figures)} above zero; no guardrail failing")
        return Plan(HOLD, f"{figures.decision} ({', '.join(figures.reasons)}): {_primary(figures)}")
    current, following = ramp[step], ramp[step + 1]
    waiting = []
    if figures.hours < float(current["minHours"]):
        waiting.append(f"{figures.hours:.1f} of {current['minHours']} h")
    if figures.treatment_users < int(current["minUsers"]):
        waiting.append(f"{figures.treatment_users} of {current['minUsers']} treatment users")
    if not figures.srm_ok:
        waiting.append("sample ratio mismatch")
    if waiting:
        return Plan(HOLD, f"step {step + 1} of {len(ramp)} holds: {', '.join(waiting)}")
    return Plan(
        ADVANCE,
        f"step {step + 1} of {len(ramp)} done ({figures.hours:.1f} h, {figures.treatment_users} treatment users, "
        f"no guardrail failing, {_primary(figures)}): share {current['share']:.1%} -> {following['share']:.1%}",
        step=step + 1,
        share=float(following["share"]),
    )

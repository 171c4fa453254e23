"""manage.py experiment_summary [KEY | HOURS]: an experiment's summary as a table or JSON; --apply acts on it (the
automatic look of the cron job), --dry-run says what it would do."""

import json
import time
from collections.abc import Callable
from functools import partial
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone
from pymongo.errors import OperationFailure

from common.commands import command_actor
from common.errors import DATABASE_ERRORS
from core.errors import ApplicationError
from core.guardrails import GUARDRAIL_FAILING
from core.rollout import ADVANCE, FAILED, ROLL_BACK, SHIP_IT, LookFigures, Plan, rollout_plan
from core.variants import DEFAULT_EXPERIMENT, VARIANTS
from experiments.models import Experiment, ExperimentResult
from experiments.selectors import SLOTS, ExperimentSummary, experiment_running, summary_read
from experiments.serializers import WINDOW_HOURS_MAX, experiment_summary_data, summary_query_parse
from experiments.services import experiment_look_record, experiment_ramp_advance, experiment_stop

RESULTS = {SHIP_IT: ExperimentResult.SHIPPED, ROLL_BACK: ExperimentResult.ROLLED_BACK}
# A look that cannot read retries after RETRY_DELAY_SECONDS, then twice as long, before it counts as failed.
LOOK_ATTEMPTS = 3
RETRY_DELAY_SECONDS = 5.0


def _number(value: float | None) -> str:
    return "-" if value is None else f"{value:.4g}"


def _percent(value: float | None) -> str:
    return "-" if value is None else f"{value:.2%}"


class Command(BaseCommand):
    help = (
        "Summarise an experiment's current phase (default: the one running on the slot): exposed and converted "
        "users per variant, the decision rule's interval and p-value, SRM and power, guardrails and secondary "
        "metrics, and the decision. --apply acts on it as the cron job does: rolls back at once on a failing "
        "guardrail or a primary interval below zero, advances the ramp when its step is done, ships on the last step "
        "(or without a ramp) on a ship decision, and otherwise holds; every action goes through the serving-state "
        "write with its figures in the history. --dry-run prints what --apply would do. A number instead of a key "
        f"summarises the last HOURS hours (1..{WINDOW_HOURS_MAX}) over every exposure, for exploration only."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("target", nargs="?", help="an experiment's key, or HOURS for an ad-hoc window")
        parser.add_argument("--experiment", help=f"the experiment's key or the slot (default {DEFAULT_EXPERIMENT})")
        parser.add_argument("--phase", help="the phase to summarise (default: the current one)")
        parser.add_argument("--json", action="store_true", help="print the summary as JSON")
        parser.add_argument("--apply", action="store_true", help="act on the look: hold, advance, roll back or ship")
        parser.add_argument("--dry-run", action="store_true", help="print what --apply would do, and do nothing")
        parser.add_argument(
            "--rebuild",
            action="store_true",
            help="recompute the phase's aggregates from scratch in the database (aggregation pipelines)",
        )
        parser.add_argument("--actor", help="who acts, recorded in the history (default: your login name)")
        parser.add_argument(
            "--retry-delay", type=float, default=RETRY_DELAY_SECONDS, help="seconds before retrying a failed read"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        target = options["target"]
        hours = target if target is not None and target.isdigit() else None
        key = options["experiment"] or (target if hours is None and target else DEFAULT_EXPERIMENT)
        acting = options["apply"] or options["dry_run"]
        try:
            window_hours, phase = summary_query_parse({"windowHours": hours, "phase": options["phase"]})
            if acting and window_hours is not None:
                raise ApplicationError(
                    "not_an_experiment", "--apply acts on an experiment's phase, not on an ad-hoc window."
                )
            read = partial(summary_read, key=key, hours=window_hours, phase_id=phase, rebuild=options["rebuild"])
            found = self._read(read, options["retry_delay"], key if options["apply"] else None)
            summary = experiment_summary_data(found)
            plan = self._plan(found) if acting else None
            summary["plan"] = None if plan is None else {"action": plan.action, "reason": plan.reason}
            summary["applied"] = None
            if plan is not None and options["apply"]:
                summary["applied"] = self._apply(found, plan, command_actor(options["actor"]))
        except ApplicationError as exc:
            raise CommandError(f"{exc.code}: {exc.message}") from exc
        if options["json"]:
            self.stdout.write(json.dumps(summary))
        else:
            self._table(summary)

    def _read(self, read: Callable[..., ExperimentSummary], delay: float, recording: str | None) -> ExperimentSummary:
        """The summary, read again after a database error; after the last attempt an --apply look counts as failed
        (when the database takes the record) and nothing else changes."""
        for attempt in range(1, LOOK_ATTEMPTS + 1):
            try:
                return read(now=timezone.now())
            except OperationFailure as exc:
                # The server answered but refused the read (a stage it lacks, a memory limit): asking again won't help.
                reason = (exc.details or {}).get("errmsg") or str(exc)
                error = f"the database refused the read (code {exc.code}): {reason}"[:500]
                if recording is not None:
                    self._record_failure(recording, error)
                raise CommandError(f"database_rejected: {error}") from exc
            except DATABASE_ERRORS as exc:
                error = f"{type(exc).__name__}: {exc}"[:500]
                self.stderr.write(f"look attempt {attempt} of {LOOK_ATTEMPTS} failed: {error}")
                if attempt < LOOK_ATTEMPTS:
                    time.sleep(delay * attempt)
        if recording is not None:
            self._record_failure(recording, error)
        raise CommandError(f"database_unavailable: {error}")

    def _record_failure(self, key: str, error: str) -> None:
        try:
            info = experiment_running(slot=key) if key in SLOTS else Experiment.objects.filter(key=key).first()
            if info is not None:
                look = {"at": timezone.now().isoformat(), "outcome": FAILED, "action": FAILED, "error": error}
                experiment_look_record(key=info.key, look=look, action=FAILED)
        except DATABASE_ERRORS as exc:  # the database is down: the stale-look alert tells
            self.stderr.write(f"the failed look could not be recorded either: {type(exc).__name__}")

    def _plan(self, summary: ExperimentSummary) -> Plan | None:
        """What --apply does on this phase: None for a stopped experiment (nothing left to decide)."""
        if summary.phase is None:
            raise ApplicationError(
                "not_an_experiment", "--apply acts on an experiment's phase, not on an ad-hoc window or an idle slot."
            )
        if summary.status != "running":
            return None
        if summary.phase.ended_at is not None:
            raise ApplicationError(
                "phase_changed", f"Phase {summary.phase.id} is over: --apply acts on the current phase only."
            )
        stats = summary.stats
        figures = LookFigures(
            decision=stats.decision,
            reasons=stats.reasons,
            difference=stats.difference,
            ci_lower=stats.ci_lower,
            ci_upper=stats.ci_upper,
            srm_ok=stats.srm_ok,
            guardrails=summary.guardrails,
            treatment_users=summary.treatment.exposed_users,
            hours=(summary.end - summary.start).total_seconds() / 3600,
        )
        return rollout_plan(figures, summary.ramp, summary.ramp_step)

    def _apply(self, summary: ExperimentSummary, plan: Plan, actor: str) -> dict[str, Any]:
        """Carry the plan out, then record the look; a hold changes nothing served."""
        assert summary.phase is not None
        key, phase = summary.experiment, summary.phase.id
        reason = f"experiment_summary: {plan.action} on phase {phase}: {plan.reason}"
        reasons = [result.metric for result in summary.guardrails if result.status == GUARDRAIL_FAILING]
        if plan.action in RESULTS:
            reasons = reasons or list(summary.stats.reasons)
            experiment_stop(
                key=key, result=RESULTS[plan.action], actor=actor, reason=reason, reasons=reasons, phase=phase
            )
        elif plan.action == ADVANCE:
            experiment_ramp_advance(key=key, phase=phase, actor=actor, reason=reason)
        look = {
            "at": timezone.now().isoformat(),
            "phase": phase,
            "step": summary.ramp_step,
            "outcome": "computed",
            "action": plan.action,
            "guardrails": {result.metric: result.status for result in summary.guardrails},
            "error": None,
        }
        experiment_look_record(key=key, look=look, action=plan.action)
        return {"experiment": key, "action": plan.action, "reason": reason}

    def _table(self, summary: dict[str, Any]) -> None:
        write = self.stdout.write
        window, phase = summary["window"], summary["phase"]
        if phase is None:
            write(f"Slot {summary['slot']}: {window['start']} .. {window['end']} ({window['hours']} h, every exposure)")
        else:
            write(
                f"Experiment {summary['experiment']} ({summary['status']}), phase {phase['id']}: "
                f"{window['start']} .. {window['end']}, share {phase['treatmentShare']:.0%}"
            )
        write(f"{'variant':<10} {'exposed':>9} {'converted':>10} {'rate':>8}  versions")
        for name in VARIANTS:
            v = summary["variants"][name]
            versions = ", ".join(f"{x['version']} {x['share']:.0%}" for x in v["versions"]) or "-"
            rate = _percent(v["conversionRate"])
            write(f"{name:<10} {v['exposedUsers']:>9} {v['convertedUsers']:>10} {rate:>8}  {versions}")
        stats = summary["stats"]
        write(
            f"users in both variants (left out): {summary['usersInBothVariants']}; "
            f"from earlier phases (left out): {summary['usersFromEarlierPhases']}"
        )
        write(
            f"difference {_percent(stats['difference'])}, lift {_percent(stats['relativeLift'])}, "
            f"{stats['ci']['level']:.0%} interval [{_percent(stats['ci']['lower'])}, {_percent(stats['ci']['upper'])}] "
            f"({stats['rule']}{', valid at any look' if stats['validAtAnyLook'] else ''}), "
            f"p {stats['pValue']} (alpha {stats['alpha']})"
        )
        write(
            f"SRM p {stats['srm']['pValue']} ({'ok' if stats['srm']['ok'] else 'MISMATCH'}); "
            f"minimum sample per variant {stats['minSamplePerVariant']}; power {stats['power']}"
        )
        reduction = stats["varianceReduction"]
        if stats["cupedApplied"] and reduction is not None:
            write(f"CUPED: variance of the difference reduced by {reduction:.1%}")
        for result in summary["guardrails"]:
            unit = " relative" if result["relative"] else ""
            write(
                f"guardrail {result['metric']:<14} {result['status']:<12} control {_number(result['control'])}, "
                f"treatment {_number(result['treatment'])}: worse by {_number(result['degradation'])}, at least "
                f"{_number(result['lower'])} (fails above {result['threshold']}{unit})"
            )
        for metric in summary["secondaryMetrics"]:
            write(
                f"secondary {metric['name']:<18} control {_number(metric['control'])}, treatment "
                f"{_number(metric['treatment'])}, difference {_number(metric['difference'])}, p "
                f"{_number(metric['pValue'])}, adjusted {_number(metric['adjustedPValue'])}"
            )
        write(f"decision: {summary['decision']} ({', '.join(summary['reasons'])})")
        if summary["plan"]:
            done = "applied" if summary["applied"] else "would"
            write(f"{done}: {summary['plan']['action']}: {summary['plan']['reason']}")

"""manage.py experiment_summary [KEY | HOURS]: an experiment's summary as a table or JSON; --apply acts on it."""

import json
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone

from common.commands import command_actor
from common.errors import DATABASE_ERRORS
from core.errors import ApplicationError
from core.statistics import ROLLBACK, SHIP
from core.variants import DEFAULT_EXPERIMENT, VARIANTS
from experiments.models import ExperimentResult
from experiments.selectors import summary_read
from experiments.serializers import WINDOW_HOURS_MAX, experiment_summary_data, summary_query_parse
from experiments.services import experiment_stop

RESULTS = {SHIP: ExperimentResult.SHIPPED, ROLLBACK: ExperimentResult.ROLLED_BACK}


def _percent(value: float | None) -> str:
    return "-" if value is None else f"{value:.2%}"


class Command(BaseCommand):
    help = (
        "Summarise an experiment's current phase (default: the one running on the slot): exposed and converted "
        "users per variant, the decision rule's interval and p-value, SRM and power, and the decision. --apply stops "
        "the experiment on a ship or rollback decision (shipped: its treatment version becomes control; rolled back: "
        "control stays), through the serving-state write; without it nothing changes. A number instead of a key "
        f"summarises the last HOURS hours (1..{WINDOW_HOURS_MAX}) over every exposure, for exploration only."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("target", nargs="?", help="an experiment's key, or HOURS for an ad-hoc window")
        parser.add_argument("--experiment", help=f"the experiment's key or the slot (default {DEFAULT_EXPERIMENT})")
        parser.add_argument("--phase", help="the phase to summarise (default: the current one)")
        parser.add_argument("--json", action="store_true", help="print the summary as JSON")
        parser.add_argument("--apply", action="store_true", help="stop the experiment on a ship or rollback decision")
        parser.add_argument("--actor", help="who acts, recorded in the history (default: your login name)")

    def handle(self, *args: Any, **options: Any) -> None:
        target = options["target"]
        hours = target if target is not None and target.isdigit() else None
        key = options["experiment"] or (target if hours is None and target else DEFAULT_EXPERIMENT)
        try:
            window_hours, phase = summary_query_parse({"windowHours": hours, "phase": options["phase"]})
            summary = experiment_summary_data(
                summary_read(key=key, hours=window_hours, phase_id=phase, now=timezone.now())
            )
            summary["applied"] = self._apply(summary, command_actor(options["actor"])) if options["apply"] else None
        except ApplicationError as exc:
            raise CommandError(f"{exc.code}: {exc.message}") from exc
        except DATABASE_ERRORS as exc:
            raise CommandError(f"database_unavailable: {type(exc).__name__}") from exc
        if options["json"]:
            self.stdout.write(json.dumps(summary))
        else:
            self._table(summary)

    def _apply(self, summary: dict[str, Any], actor: str) -> dict[str, Any] | None:
        """Stop the experiment when the phase's decision is ship or rollback; nothing otherwise."""
        if summary["phase"] is None:
            raise ApplicationError(
                "not_an_experiment", "--apply acts on an experiment's phase, not on an ad-hoc window or an idle slot."
            )
        result = RESULTS.get(summary["decision"])
        if result is None or summary["status"] != "running":
            return None
        stats = summary["stats"]
        reason = (
            f"experiment_summary: {summary['decision']} on phase {summary['phase']['id']} "
            f"(difference {stats['difference']}, {stats['ci']['level']:.0%} interval [{stats['ci']['lower']}, "
            f"{stats['ci']['upper']}], p {stats['pValue']}, {stats['rule']})"
        )
        info = experiment_stop(
            key=summary["experiment"],
            result=result,
            actor=actor,
            reason=reason,
            reasons=summary["reasons"],
            phase=summary["phase"]["id"],  # refused if the decision was read on another phase than the current one
        )
        return {"experiment": info.key, "result": info.result}

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
        write(f"decision: {summary['decision']} ({', '.join(summary['reasons'])})")
        if summary["applied"]:
            write(f"applied: experiment {summary['applied']['experiment']} stopped, {summary['applied']['result']}")

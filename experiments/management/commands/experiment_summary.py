"""manage.py experiment_summary HOURS: the experiment's summary as a table or JSON; --apply acts on the decision."""

import json
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone

from common.commands import command_actor
from common.errors import DATABASE_ERRORS
from core.errors import ApplicationError
from core.statistics import ROLLBACK, SHIP
from core.variants import CONTROL, DEFAULT_EXPERIMENT, TREATMENT, VARIANTS
from experiments.selectors import experiment_summary
from experiments.serializers import (
    WINDOW_HOURS_DEFAULT,
    WINDOW_HOURS_MAX,
    experiment_summary_data,
    window_hours_parse,
)
from registry.services import serving_state_switch
from registry.state import ALL


def _percent(value: float | None) -> str:
    return "-" if value is None else f"{value:.2%}"


class Command(BaseCommand):
    help = (
        "Summarise the last HOURS hours of the experiment: exposed and converted users per variant, the score test, "
        "SRM and power checks, and the decision. --apply ships (treatment version on all) or rolls back (treatment "
        "back to the control version) through the switching service; without it nothing changes."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "hours", nargs="?", help=f"window in hours, 1..{WINDOW_HOURS_MAX} (default {WINDOW_HOURS_DEFAULT})"
        )
        parser.add_argument("--experiment", default=DEFAULT_EXPERIMENT)
        parser.add_argument("--alpha", type=float, help="significance level (default EXPERIMENT_ALPHA)")
        parser.add_argument("--json", action="store_true", help="print the summary as JSON")
        parser.add_argument("--apply", action="store_true", help="act on a ship or rollback decision")

    def handle(self, *args: Any, **options: Any) -> None:
        alpha = options["alpha"]
        if alpha is not None and not 0 < alpha < 1:
            raise CommandError("--alpha must be between 0 and 1")
        try:
            hours = window_hours_parse(options["hours"])
            summary = experiment_summary_data(
                experiment_summary(experiment=options["experiment"], hours=hours, now=timezone.now(), alpha=alpha)
            )
        except ApplicationError as exc:
            raise CommandError(f"{exc.code}: {exc.message}") from exc
        except DATABASE_ERRORS as exc:
            raise CommandError(f"database_unavailable: {type(exc).__name__}") from exc
        summary["applied"] = self._apply(summary) if options["apply"] else None
        if options["json"]:
            self.stdout.write(json.dumps(summary))
        else:
            self._table(summary)

    def _apply(self, summary: dict[str, Any]) -> dict[str, Any] | None:
        serving, decision = summary["serving"], summary["decision"]
        if decision not in (SHIP, ROLLBACK) or not serving or not serving[TREATMENT]:
            return None
        stats = summary["stats"]
        reason = (
            f"experiment_summary {summary['window']['hours']}h: {decision} "
            f"(lift {stats['relativeLift']}, p {stats['pValue']}; {', '.join(summary['reasons'])})"
        )
        version, target = (serving[TREATMENT], ALL) if decision == SHIP else (serving[CONTROL], TREATMENT)
        try:
            state = serving_state_switch(version=version, target=target, actor=command_actor(None), reason=reason)
        except ApplicationError as exc:
            raise CommandError(f"apply refused ({exc.code}): {exc.message}") from exc
        return {"version": version, "target": target, "revision": state.revision}

    def _table(self, summary: dict[str, Any]) -> None:
        write = self.stdout.write
        window = summary["window"]
        write(f"Experiment {summary['experiment']}: {window['start']} .. {window['end']} ({window['hours']} h)")
        write(f"{'variant':<10} {'exposed':>9} {'converted':>10} {'rate':>8}  versions")
        for name in VARIANTS:
            v = summary["variants"][name]
            versions = ", ".join(f"{x['version']} {x['share']:.0%}" for x in v["versions"]) or "-"
            rate = _percent(v["conversionRate"])
            write(f"{name:<10} {v['exposedUsers']:>9} {v['convertedUsers']:>10} {rate:>8}  {versions}")
        stats = summary["stats"]
        write(f"users in both variants (left out): {summary['usersInBothVariants']}")
        write(
            f"difference {_percent(stats['difference'])}, lift {_percent(stats['relativeLift'])}, "
            f"{stats['ci']['level']:.0%} CI [{_percent(stats['ci']['lower'])}, {_percent(stats['ci']['upper'])}], "
            f"z {stats['z']}, p {stats['pValue']} (alpha {stats['alpha']})"
        )
        write(
            f"SRM p {stats['srm']['pValue']} ({'ok' if stats['srm']['ok'] else 'MISMATCH'}); "
            f"minimum sample per variant {stats['minSamplePerVariant']}; power {stats['power']}"
        )
        write(f"decision: {summary['decision']} ({', '.join(summary['reasons'])})")
        if summary["applied"]:
            applied = summary["applied"]
            write(f"applied: {applied['version']} on {applied['target']} (revision {applied['revision']})")

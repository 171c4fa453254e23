"""manage.py switch_model VERSION --target ...: the admin API's switch, for operators without the web admin."""

import json
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from common.commands import command_actor
from common.errors import DATABASE_ERRORS
from core.errors import ApplicationError
from core.variants import CONTROL, TREATMENT
from registry.services import serving_state_switch
from registry.state import TARGETS


class Command(BaseCommand):
    help = "Serve VERSION on a variant (control, treatment) or on both (all). The version must load and verify first."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("version")
        parser.add_argument("--target", choices=TARGETS, required=True)
        parser.add_argument("--treatment-share", type=float, help="fraction of users in treatment, 0..1")
        parser.add_argument("--reason", default="", help="why, for the history")
        parser.add_argument("--actor", help="who, for the history (default: your login name)")
        parser.add_argument("--json", action="store_true", help="print the new state as JSON")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            state = serving_state_switch(
                version=options["version"],
                target=options["target"],
                actor=command_actor(options["actor"]),
                reason=options["reason"],
                treatment_share=options["treatment_share"],
            )
        except ApplicationError as exc:
            raise CommandError(f"switch refused ({exc.code}): {exc.message}") from exc
        except DATABASE_ERRORS as exc:
            raise CommandError(f"switch failed (database_unavailable): {type(exc).__name__}") from exc
        summary = {
            "revision": state.revision,
            CONTROL: state.control_version,
            TREATMENT: state.treatment_version,
            "treatmentShare": state.treatment_share,
        }
        if options["json"]:
            self.stdout.write(json.dumps(summary))
        else:
            self.stdout.write(
                f"revision {state.revision}: control {state.control_version}, treatment {state.treatment_version} "
                f"({state.treatment_share:.0%} of users)"
            )

"""manage.py rollback --target ...: give a variant back its previous version, from the history."""

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from common.commands import command_actor
from common.errors import DATABASE_ERRORS
from core.errors import ApplicationError
from core.variants import VARIANTS
from registry.services import serving_state_rollback


class Command(BaseCommand):
    help = "Undo the latest change of a variant's version (repeat to walk further back)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--target", choices=VARIANTS, required=True)
        parser.add_argument("--reason", default="", help="why, for the history")
        parser.add_argument("--actor", help="who, for the history (default: your login name)")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            state = serving_state_rollback(
                target=options["target"], actor=command_actor(options["actor"]), reason=options["reason"]
            )
        except ApplicationError as exc:
            raise CommandError(f"rollback refused ({exc.code}): {exc.message}") from exc
        except DATABASE_ERRORS as exc:
            raise CommandError(f"rollback failed (database_unavailable): {type(exc).__name__}") from exc
        self.stdout.write(
            f"revision {state.revision}: control {state.control_version}, treatment {state.treatment_version}"
        )

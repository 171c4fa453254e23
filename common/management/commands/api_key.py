"""manage.py api_key create NAME --scope admin|traces|events | list | revoke NAME: named API keys."""

import json
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from common.commands import command_actor
from common.errors import DATABASE_ERRORS
from common.keys import SCOPES, api_key_create, api_key_list, api_key_revoke
from common.models import ApiKey
from core.errors import ApplicationError


def _row(record: ApiKey) -> dict[str, Any]:
    def moment(value: Any) -> str | None:
        return value.isoformat() if value else None

    return {
        "name": record.name,
        "scope": record.scope,
        "prefix": record.prefix,
        "createdAt": moment(record.created_at),
        "createdBy": record.created_by,
        "lastUsedAt": moment(record.last_used_at),
        "revokedAt": moment(record.revoked_at),
        "revokedBy": record.revoked_by,
    }


class Command(BaseCommand):
    help = (
        "Named API keys for X-API-Key. `create NAME --scope S` prints the key once (only its hash is stored); "
        "`list` shows every key without it; `revoke NAME` refuses the key from its next request on."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        actions = parser.add_subparsers(dest="action", required=True)
        create = actions.add_parser("create", help="create a key and print it once")
        create.add_argument("name")
        create.add_argument("--scope", choices=SCOPES, required=True)
        create.add_argument("--actor", help="who creates it (default: your login name)")
        create.add_argument("--json", action="store_true")
        listing = actions.add_parser("list", help="every key, active and revoked")
        listing.add_argument("--json", action="store_true")
        revoke = actions.add_parser("revoke", help="revoke a key at once")
        revoke.add_argument("name")
        revoke.add_argument("--actor", help="who revokes it (default: your login name)")
        revoke.add_argument("--json", action="store_true")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            getattr(self, f"_{options['action']}")(options)
        except ApplicationError as exc:
            raise CommandError(f"{exc.code}: {exc.message}") from exc
        except DATABASE_ERRORS as exc:
            raise CommandError(f"database_unavailable: {type(exc).__name__}") from exc

    def _create(self, options: dict[str, Any]) -> None:
        record, key = api_key_create(
            name=options["name"], scope=options["scope"], created_by=command_actor(options["actor"])
        )
        if options["json"]:
            self.stdout.write(json.dumps({**_row(record), "key": key}))
            return
        self.stdout.write(f"Created {record.scope} key {record.name!r}. It is shown this once; store it now:")
        self.stdout.write(key)

    def _list(self, options: dict[str, Any]) -> None:
        rows = [_row(record) for record in api_key_list()]
        if options["json"]:
            self.stdout.write(json.dumps(rows))
            return
        if not rows:
            self.stdout.write("No named keys. Create one with: manage.py api_key create NAME --scope admin")
        for row in rows:
            state = f"revoked {row['revokedAt']} by {row['revokedBy']}" if row["revokedAt"] else "active"
            used = row["lastUsedAt"] or "never"
            self.stdout.write(
                f"{row['name']:<24} {row['scope']:<7} {row['prefix']}...  created {row['createdAt']} by "
                f"{row['createdBy']}, last used {used}, {state}"
            )

    def _revoke(self, options: dict[str, Any]) -> None:
        record = api_key_revoke(name=options["name"], actor=command_actor(options["actor"]))
        if options["json"]:
            self.stdout.write(json.dumps(_row(record)))
            return
        self.stdout.write(f"Revoked {record.name!r} at {record.revoked_at:%Y-%m-%d %H:%M:%S} UTC: it now gets 401.")

"""/readyz's checks: the database check of this app, and the checks other apps register when they start.

Monitoring knows no other app: each contributes its own check from its AppConfig.ready().
"""

from collections.abc import Callable
from dataclasses import dataclass

import pymongo
from django.db import connections

from common.errors import DATABASE_ERRORS

READINESS_DB_TIMEOUT_SECONDS = 2.0


@dataclass(frozen=True)
class CheckResult:
    name: str
    ok: bool
    detail: str


Check = Callable[[], CheckResult]
_checks: dict[str, Check] = {}


def readiness_check_register(name: str, check: Check) -> None:
    """Add a check to /readyz under `name` (registering a name again replaces its check)."""
    _checks[name] = check


def database_check(*, using: str = "default") -> CheckResult:
    """Ping the database within a short deadline, so a probe never hangs on an outage."""
    try:
        with pymongo.timeout(READINESS_DB_TIMEOUT_SECONDS):
            connection = connections[using]
            connection.ensure_connection()
            connection.connection.admin.command("ping")
    except DATABASE_ERRORS as exc:
        return CheckResult(name="database", ok=False, detail=f"database unreachable: {type(exc).__name__}")
    return CheckResult(name="database", ok=True, detail="ping ok")


def readiness_checks() -> list[CheckResult]:
    """Everything that must hold before this process should receive traffic: the database, then each app's check."""
    return [database_check(), *(check() for check in _checks.values())]

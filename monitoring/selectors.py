"""Reads about the process and its dependencies, for the health and readiness endpoints."""

import time
from dataclasses import dataclass

import pymongo
from django.db import connections
from pymongo.errors import PyMongoError

# Set when this module is first imported, which happens while Django starts (monitoring's URLs load it).
_STARTED_MONOTONIC = time.monotonic()
READINESS_DB_TIMEOUT_SECONDS = 2.0


@dataclass(frozen=True)
class CheckResult:
    name: str
    ok: bool
    detail: str


def process_uptime_seconds() -> float:
    """Seconds since this worker process loaded the application."""
    return time.monotonic() - _STARTED_MONOTONIC


def database_check(*, using: str = "default") -> CheckResult:
    """Ping the database within a short deadline, so a probe never hangs on an outage."""
    try:
        with pymongo.timeout(READINESS_DB_TIMEOUT_SECONDS):
            connection = connections[using]
            connection.ensure_connection()
            connection.connection.admin.command("ping")
    except PyMongoError as exc:
        return CheckResult(name="database", ok=False, detail=f"database unreachable: {type(exc).__name__}")
    return CheckResult(name="database", ok=True, detail="ping ok")


def readiness_checks() -> list[CheckResult]:
    """Everything that must hold before this process should receive traffic."""
    return [database_check()]

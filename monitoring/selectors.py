"""Reads about the process and its dependencies, for the health and readiness endpoints."""

import time
from dataclasses import dataclass
from datetime import datetime

import pymongo
from django.db import connections

from rideease.errors import DATABASE_ERRORS

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
    except DATABASE_ERRORS as exc:
        return CheckResult(name="database", ok=False, detail=f"database unreachable: {type(exc).__name__}")
    return CheckResult(name="database", ok=True, detail="ping ok")


def serving_check() -> CheckResult:
    """A control model is loaded in this process (the serving state and its versions were read and verified)."""
    from recommendations.runtime import serving_runtime

    snapshot = serving_runtime().snapshot
    if snapshot.unavailable is not None or snapshot.control is None:
        return CheckResult(name="model", ok=False, detail=f"no model loaded: {snapshot.unavailable}")
    treatment = snapshot.treatment.version if snapshot.treatment else f"none ({snapshot.treatment_fallback})"
    detail = f"revision {snapshot.revision}: control {snapshot.control.version}, treatment {treatment}"
    return CheckResult(name="model", ok=True, detail=detail)


def readiness_checks() -> list[CheckResult]:
    """Everything that must hold before this process should receive traffic."""
    return [database_check(), serving_check()]


def last_published_at() -> datetime | None:
    """When the newest model version was registered, or None before the first one."""
    from registry.models import ModelVersion

    row = ModelVersion.objects.order_by("-created_at").values("created_at").first()
    return row["created_at"] if row else None

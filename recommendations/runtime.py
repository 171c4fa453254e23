"""This process's serving runtime and trace writer, created on first use (after gunicorn forks its workers)."""

import json
import logging
import threading
from dataclasses import asdict, replace
from datetime import datetime
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import connections
from django.utils import timezone

from common.errors import DATABASE_ERRORS
from core.files import write_atomically
from core.recommender.prepared import rankings_precompute
from core.variants import CONTROL, TREATMENT
from monitoring.metrics import PREDICTION_ERRORS, serving_metrics_set
from monitoring.readiness import CheckResult
from recommendations.models import RawEvent
from recommendations.queries import MAX_LIMIT
from recommendations.serving import ServingRuntime, ServingSnapshot
from registry.loading import LoadedModel, model_version_load, model_version_load_cached
from registry.selectors import serving_state_current
from registry.state import ServingStateInfo
from tracing.writer import TraceWriter, WriterConfig

_lock = threading.Lock()
_runtime: ServingRuntime | None = None
_writer: TraceWriter | None = None
logger = logging.getLogger(__name__)
STATE_FILE = "serving_state.json"
_on_cached_state = False
_last_saved: tuple[Path, ServingStateInfo] | None = None


def _state_file() -> Path:
    return Path(settings.MODEL_CACHE_DIR) / STATE_FILE


def _read_state() -> ServingStateInfo | None:
    """The serving state from the database; while it is down, the last one this machine read."""
    global _on_cached_state
    try:
        state = serving_state_current()
    except DATABASE_ERRORS:
        path = _state_file()
        if not path.exists():
            raise
        if not _on_cached_state:
            logger.warning("Database unavailable: using the last serving state seen, from %s", path)
            _on_cached_state = True
        return _state_from_json(json.loads(path.read_text()))
    if _on_cached_state:
        logger.info("Database reachable again: reading the serving state from it")
        _on_cached_state = False
    if state is not None:
        path = _state_file()
        if (path, state) != _last_saved:
            _state_save(path, state)
    return state


def _state_save(path: Path, state: ServingStateInfo) -> None:
    """Keep the state for a start while the database is down; written when it changed, not on every poll.

    Best effort: the state was read, so a full disk or a read-only cache must not stop this worker from serving it.
    """
    global _last_saved
    try:
        write_atomically(path, json.dumps(_state_to_json(state)).encode())
    except OSError:
        logger.exception("Could not save the serving state to %s; serving it all the same", path)
        return
    _last_saved = (path, state)


def _state_to_json(state: ServingStateInfo) -> dict[str, Any]:
    document = asdict(state)
    document["updated_at"] = state.updated_at.isoformat() if state.updated_at else None
    return document


def _state_from_json(document: dict[str, Any]) -> ServingStateInfo:
    """A saved state; one saved before the file kept when and by whom it changed reads with those unknown."""
    updated_at = document.pop("updated_at", None)
    document.setdefault("salt", settings.EXPERIMENT_SALT)  # saved before the state kept its salt
    return ServingStateInfo(**document, updated_at=datetime.fromisoformat(updated_at) if updated_at else None)


def _served(snapshot: ServingSnapshot) -> dict[str, str | None]:
    return {
        CONTROL: snapshot.control.version if snapshot.control else None,
        TREATMENT: snapshot.treatment.version if snapshot.treatment else None,
    }


def _publish_serving_metrics(old: ServingSnapshot, new: ServingSnapshot) -> None:
    serving_metrics_set(revision=new.revision, share=new.treatment_share, served=_served(new), previous=_served(old))


def _load_model(version: str) -> LoadedModel:
    try:
        loaded = model_version_load(version=version)
    except DATABASE_ERRORS:
        logger.warning("Database unavailable: loading %s from the verified local cache", version)
        loaded = model_version_load_cached(version=version)
    model = rankings_precompute(loaded.model, depth=MAX_LIMIT, max_bytes=settings.RANKINGS_PRECOMPUTE_BYTES)
    return replace(loaded, model=model)


def serving_runtime() -> ServingRuntime:
    """The runtime, loading the serving state and its models on first use."""
    global _runtime
    if _runtime is not None:  # every request asks: no lock once it exists
        return _runtime
    with _lock:
        if _runtime is None:
            _runtime = ServingRuntime(
                read_state=_read_state,
                load_model=_load_model,
                clock=timezone.now,
                refresh_seconds=settings.SERVING_REFRESH_SECONDS,
                on_swap=_publish_serving_metrics,
                on_error=lambda stage: PREDICTION_ERRORS.labels(stage=stage).inc(),
            )
            _runtime.start()
        return _runtime


def trace_writer() -> TraceWriter:
    """The writer, replaying any spool left by earlier processes as it starts."""
    global _writer
    if _writer is not None:
        return _writer
    with _lock:
        if _writer is None:
            _writer = TraceWriter(
                collections=lambda name: connections["default"].get_collection(name),  # type: ignore[attr-defined]
                config=WriterConfig(
                    spool_dir=settings.TRACE_SPOOL_DIR,
                    exposures_collection=RawEvent._meta.db_table,
                    flush_seconds=settings.TRACE_FLUSH_SECONDS,
                    spool_max_bytes=settings.TRACE_SPOOL_MAX_BYTES,
                ),
            )
            _writer.start()
        return _writer


def serving_readiness() -> CheckResult:
    """/readyz's model check: a control model is loaded here (the state and its versions read and verified)."""
    snapshot = serving_runtime().snapshot
    if snapshot.unavailable is not None or snapshot.control is None:
        return CheckResult(name="model", ok=False, detail=f"no model loaded: {snapshot.unavailable}")
    treatment = snapshot.treatment.version if snapshot.treatment else f"none ({snapshot.treatment_fallback})"
    detail = f"revision {snapshot.revision}: control {snapshot.control.version}, treatment {treatment}"
    return CheckResult(name="model", ok=True, detail=detail)


def runtime_shutdown() -> None:
    """Stop refreshing and flush every queued trace (to the database, or the spool when it is down)."""
    global _runtime, _writer
    with _lock:
        if _runtime is not None:
            _runtime.stop()
        if _writer is not None:
            _writer.close()
        _runtime, _writer = None, None

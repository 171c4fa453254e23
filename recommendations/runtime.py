"""This process's serving runtime and trace writer, created on first use (after gunicorn forks its workers)."""

import json
import logging
import os
import threading
from dataclasses import asdict, replace
from pathlib import Path

from django.conf import settings
from django.db import connections
from django.utils import timezone

from monitoring.metrics import PREDICTION_ERRORS, serving_metrics_set
from recommendations.queries import MAX_LIMIT
from recommendations.recommender import rankings_precompute
from recommendations.serving import ServingRuntime, ServingSnapshot, StateView
from registry.loading import LoadedModel, model_version_load, model_version_load_cached
from registry.selectors import serving_state_view
from rideease.errors import DATABASE_ERRORS
from tracing.writer import TraceWriter, WriterConfig

_lock = threading.Lock()
_runtime: ServingRuntime | None = None
_writer: TraceWriter | None = None
logger = logging.getLogger(__name__)
STATE_FILE = "serving_state.json"
_on_cached_state = False
_last_saved: tuple[Path, StateView] | None = None


def _state_file() -> Path:
    return Path(settings.MODEL_CACHE_DIR) / STATE_FILE


def _read_state() -> StateView | None:
    """The serving state from the database; while it is down, the last one this machine read."""
    global _on_cached_state
    try:
        state = serving_state_view()
    except DATABASE_ERRORS:
        path = _state_file()
        if not path.exists():
            raise
        if not _on_cached_state:
            logger.warning("Database unavailable: using the last serving state seen, from %s", path)
            _on_cached_state = True
        return StateView(**json.loads(path.read_text()))
    if _on_cached_state:
        logger.info("Database reachable again: reading the serving state from it")
        _on_cached_state = False
    if state is not None:
        path = _state_file()
        if (path, state) != _last_saved:
            _state_save(path, state)
    return state


def _state_save(path: Path, state: StateView) -> None:
    """Keep the state for a start while the database is down; written when it changed, not on every poll.

    Best effort: the state was read, so a full disk or a read-only cache must not stop this worker from serving it.
    """
    global _last_saved
    # Each worker writes its own temporary file: workers starting together would otherwise move each other's away.
    temporary = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary.write_text(json.dumps(asdict(state)))
        temporary.replace(path)
    except OSError:
        logger.exception("Could not save the serving state to %s; serving it all the same", path)
        return
    _last_saved = (path, state)


def _served(snapshot: ServingSnapshot) -> dict[str, str | None]:
    return {
        "control": snapshot.control.version if snapshot.control else None,
        "treatment": snapshot.treatment.version if snapshot.treatment else None,
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
                    flush_seconds=settings.TRACE_FLUSH_SECONDS,
                    spool_max_bytes=settings.TRACE_SPOOL_MAX_BYTES,
                ),
            )
            _writer.start()
        return _writer


def runtime_shutdown() -> None:
    """Stop refreshing and flush every queued trace (to the database, or the spool when it is down)."""
    global _runtime, _writer
    with _lock:
        if _runtime is not None:
            _runtime.stop()
        if _writer is not None:
            _writer.close()
        _runtime, _writer = None, None

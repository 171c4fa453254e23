"""This process's serving runtime and trace writer, created on first use (after gunicorn forks its workers)."""

import threading

from django.conf import settings
from django.db import connections
from django.utils import timezone

from recommendations.serving import ServingRuntime
from registry.loading import model_version_load
from registry.selectors import serving_state_view
from tracing.writer import TraceWriter, WriterConfig

_lock = threading.Lock()
_runtime: ServingRuntime | None = None
_writer: TraceWriter | None = None


def serving_runtime() -> ServingRuntime:
    """The runtime, loading the serving state and its models on first use."""
    global _runtime
    with _lock:
        if _runtime is None:
            _runtime = ServingRuntime(
                read_state=serving_state_view,
                load_model=lambda version: model_version_load(version=version),
                clock=timezone.now,
                refresh_seconds=settings.SERVING_REFRESH_SECONDS,
            )
            _runtime.start()
        return _runtime


def trace_writer() -> TraceWriter:
    """The writer, replaying any spool left by earlier processes as it starts."""
    global _writer
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

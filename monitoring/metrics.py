"""The service's own Prometheus metrics (names from the blueprint), correct under gunicorn's several workers.

In multiprocess mode (PROMETHEUS_MULTIPROC_DIR set by the gunicorn config) counters and histograms are summed across
workers; gauges say how they combine (`multiprocess_mode`). Every label set exists at zero from the first scrape, so
rate and ratio queries work before the first request or error. Labels never carry user ids or other unbounded values.
"""

import atexit
import os
import time
from collections.abc import Iterator

from prometheus_client import Counter, Gauge, Histogram, multiprocess
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from core.variants import VARIANTS

# The variants a request can be answered in, and "none" for one refused before a variant was assigned.
VARIANT_LABELS = (*VARIANTS, "none")
STATUSES = ("ok", "invalid", "unavailable", "error")
# treatment_scoring: the treatment model raised while scoring and control answered instead (the request still succeeds).
STAGES = ("validation", "serving", "treatment_scoring", "trace_write", "state_refresh", "model_load")
# Resolves 1..500 ms: fine steps where serving latency lives, coarse ones for the tail.
LATENCY_BUCKETS_MS = (0.5, 1, 2, 3, 5, 7.5, 10, 15, 20, 30, 50, 75, 100, 150, 200, 300, 500, 1000)
STARTED_AT_VARIABLE = "RIDEEASE_STARTED_AT"


def _mark_this_process_dead() -> None:
    """Drop this process's live gauges from the merged totals when it exits."""
    multiprocess.mark_process_dead(os.getpid())  # type: ignore[no-untyped-call]


if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
    # A command run with the server's environment must not fail because the server has not created the folder yet.
    os.makedirs(os.environ["PROMETHEUS_MULTIPROC_DIR"], exist_ok=True)
    # Nor leave its gauges behind: gunicorn's child_exit marks only workers dead, and a command's unset
    # rideease_serving_revision (0) would otherwise stay the `livemin` of the live workers for good.
    atexit.register(_mark_this_process_dead)

PREDICTION_LATENCY = Histogram(
    "rideease_prediction_latency_ms",
    "Time to answer a /recommendations request, in milliseconds.",
    ["variant"],
    buckets=LATENCY_BUCKETS_MS,
)
PREDICTION_REQUESTS = Counter(
    "rideease_prediction_requests", "Answered /recommendations requests by variant and outcome.", ["variant", "status"]
)
PREDICTION_ERRORS = Counter("rideease_prediction_errors", "Failures on the prediction path by stage.", ["stage"])
SERVING_VERSION = Gauge(
    "rideease_serving_version_info",
    "1 for the version each variant serves in some live worker, else 0.",
    ["variant", "version"],
    multiprocess_mode="livemax",
)
TREATMENT_SHARE = Gauge(
    "rideease_treatment_share", "Share of users assigned to treatment.", multiprocess_mode="livemax"
)
SERVING_REVISION = Gauge(
    "rideease_serving_revision", "Serving-state revision loaded by the workers.", multiprocess_mode="livemin"
)
TRACE_BACKLOG = Gauge(
    "rideease_trace_backlog_records",
    "Traces and exposures not yet in the database (queued in memory or spooled on disk).",
    multiprocess_mode="livemax",
)


def metrics_initialise() -> None:
    """Create every label set at zero, so series exist before the first request or error."""
    for variant in VARIANT_LABELS:
        PREDICTION_LATENCY.labels(variant=variant)
        for status in STATUSES:
            PREDICTION_REQUESTS.labels(variant=variant, status=status)
    for stage in STAGES:
        PREDICTION_ERRORS.labels(stage=stage)


def serving_metrics_set(
    *, revision: int, share: float, served: dict[str, str | None], previous: dict[str, str | None]
) -> None:
    """Publish what this worker now serves; the versions it stopped serving drop to 0."""
    for variant, version in previous.items():
        if version and served.get(variant) != version:
            SERVING_VERSION.labels(variant=variant, version=version).set(0)
    for variant, version in served.items():
        if version:
            SERVING_VERSION.labels(variant=variant, version=version).set(1)
    TREATMENT_SHARE.set(share)
    SERVING_REVISION.set(revision)


class UptimeCollector(Collector):
    """rideease_service_uptime_seconds: seconds since the server (gunicorn's master) started; resets on restart."""

    def collect(self) -> Iterator[GaugeMetricFamily]:
        started = float(os.environ.get(STARTED_AT_VARIABLE) or _PROCESS_START)
        yield GaugeMetricFamily(
            "rideease_service_uptime_seconds", "Seconds since the service started.", value=time.time() - started
        )


_PROCESS_START = time.time()
# Collectors computed at each scrape, contributed by the apps that own their data (from their AppConfig.ready()).
_scrape_collectors: list[Collector] = []


def scrape_collector_register(collector: Collector) -> None:
    """Add a collector that /metrics asks at every scrape, besides the service's own metrics."""
    if collector not in _scrape_collectors:
        _scrape_collectors.append(collector)


def scrape_collectors() -> list[Collector]:
    return list(_scrape_collectors)

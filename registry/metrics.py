"""The registry's contribution to /metrics: how fresh the newest model version is, read at each scrape."""

from collections.abc import Iterator

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from common.errors import DATABASE_ERRORS
from registry.selectors import model_version_last_published_at


class TrainingFreshnessCollector(Collector):
    """rideease_model_last_published_timestamp_seconds: when the newest version was registered (read per scrape)."""

    def collect(self) -> Iterator[GaugeMetricFamily]:
        try:
            published = model_version_last_published_at()
        except DATABASE_ERRORS:
            return  # no sample rather than a wrong one; the database alerts say why
        if published is not None:
            yield GaugeMetricFamily(
                "rideease_model_last_published_timestamp_seconds",
                "Unix time at which the newest model version was registered.",
                value=published.timestamp(),
            )

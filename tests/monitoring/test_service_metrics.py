"""The service's own metrics under gunicorn with two workers: exact counts, zero series, serving and uptime gauges."""

import re
from pathlib import Path

import pytest

from core.assignment import variant_assign
from rideease.embedded_db import embedded_db_start, embedded_db_stop, free_port
from tests.servers import gunicorn_app, http_get, prepare_served_database

pytestmark = pytest.mark.slow


def sample(metrics: str, name: str, **labels: str) -> float | None:
    """The value of one series in the text exposition, or None when absent."""
    for line in metrics.splitlines():
        if not line.startswith(name + "{") and not line.startswith(name + " "):
            continue
        found = dict(re.findall(r'(\w+)="([^"]*)"', line.split("}")[0])) if "{" in line else {}
        if all(found.get(key) == value for key, value in labels.items()):
            return float(line.rsplit(" ", 1)[1])
    return None


def test_request_counts_add_up_across_workers_and_every_series_exists_from_the_start(tmp_path: Path) -> None:
    server = embedded_db_start(port=free_port(), storage=":memory:")
    try:
        prepare_served_database(mongodb_uri=server.uri, mongodb_db="metrics", var_dir=tmp_path)
        with gunicorn_app(mongodb_uri=server.uri, mongodb_db="metrics", var_dir=tmp_path) as base:
            before = http_get(f"{base}/metrics")[1].decode()
            assert sample(before, "rideease_prediction_errors_total", stage="serving") == 0.0
            assert sample(before, "rideease_prediction_requests_total", variant="treatment", status="ok") == 0.0
            users = [f"rider-{n:06d}" for n in range(60)]
            for user in users:
                assert http_get(f"{base}/recommendations?userId={user}&limit=3")[0] == 200
            for _ in range(7):
                assert http_get(f"{base}/recommendations?limit=3")[0] == 400
            after = http_get(f"{base}/metrics")[1].decode()
    finally:
        embedded_db_stop(server)
    treated = sum(variant_assign(user, treatment_share=0.5) == "treatment" for user in users)
    assert sample(after, "rideease_prediction_requests_total", variant="treatment", status="ok") == treated
    assert sample(after, "rideease_prediction_requests_total", variant="control", status="ok") == 60 - treated
    assert sample(after, "rideease_prediction_requests_total", variant="none", status="invalid") == 7
    assert sample(after, "rideease_prediction_latency_ms_count", variant="control") == 60 - treated
    assert sample(after, "rideease_prediction_latency_ms_bucket", variant="treatment", le="500.0") == treated
    assert sample(after, "rideease_serving_version_info", variant="control", version="v1.0.0") == 1.0
    assert sample(after, "rideease_serving_version_info", variant="treatment", version="v1.1.0") == 1.0
    assert sample(after, "rideease_treatment_share") == 0.5
    uptime = sample(after, "rideease_service_uptime_seconds")
    assert uptime is not None and 0 < uptime < 600
    assert sample(after, "rideease_model_last_published_timestamp_seconds") is not None
    assert "userId" not in after and "rider-0000" not in after

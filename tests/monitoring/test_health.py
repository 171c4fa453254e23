"""/healthz, /readyz and /metrics, in-process and against gunicorn with the database really stopped."""

import json
from pathlib import Path

import pytest
from django.test import override_settings
from rest_framework.test import APIClient

from rideease import __version__
from rideease.embedded_db import embedded_db_start, embedded_db_stop, free_port
from tests.servers import gunicorn_app, http_get, prepare_served_database


@pytest.mark.django_db
def test_healthz_reports_liveness_uptime_and_version(api_client: APIClient) -> None:
    body = api_client.get("/healthz").json()
    assert body["status"] == "ok"
    assert body["version"] == __version__
    assert body["uptimeSeconds"] >= 0


@pytest.mark.django_db
def test_readyz_checks_the_database_and_the_model(serving_env: Path, api_client: APIClient) -> None:
    response = api_client.get("/readyz")
    assert response.status_code == 503
    checks = response.json()["details"]["checks"]
    assert checks["database"] == {"ok": True, "detail": "ping ok"}
    assert checks["model"]["ok"] is False


@pytest.mark.slow
def test_with_the_database_stopped_readyz_is_503_and_healthz_stays_200(tmp_path: Path) -> None:
    server = embedded_db_start(port=free_port(), storage=":memory:")
    try:
        prepare_served_database(mongodb_uri=server.uri, mongodb_db="readyz_check", var_dir=tmp_path)
        with gunicorn_app(mongodb_uri=server.uri, mongodb_db="readyz_check", var_dir=tmp_path) as base:
            assert http_get(f"{base}/readyz")[0] == 200
            embedded_db_stop(server)
            status, body = http_get(f"{base}/readyz")
            assert status == 503
            error = json.loads(body)
            assert error["error"] == "not_ready"
            assert "database unreachable" in error["message"]
            assert http_get(f"{base}/healthz")[0] == 200
            # The collectors that read the database (training freshness, experiments) each wait out its timeout.
            status, metrics = http_get(f"{base}/metrics", timeout=30)
            assert status == 200, "a scrape survives the outage, without the series read from the database"
            assert b"rideease_prediction_requests_total" in metrics
    finally:
        embedded_db_stop(server)


@pytest.mark.django_db
def test_metrics_can_require_a_bearer_token(api_client: APIClient) -> None:
    assert api_client.get("/metrics").status_code == 200
    with override_settings(METRICS_TOKEN="scrape-secret"):
        assert api_client.get("/metrics").status_code == 401
        assert api_client.get("/metrics", HTTP_AUTHORIZATION="Bearer wrong").status_code == 401
        response = api_client.get("/metrics", HTTP_AUTHORIZATION="Bearer scrape-secret")
        assert response.status_code == 200
        assert b"rideease_prediction_requests_total" in response.content

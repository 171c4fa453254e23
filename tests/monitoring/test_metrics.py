"""/metrics under gunicorn counts the requests of every worker, not just the one that answers the scrape."""

import re
from pathlib import Path

import pytest
from django.conf import settings

from tests.servers import gunicorn_app, http_get

pytestmark = pytest.mark.slow


def healthz_200_count(metrics: str) -> float:
    name = "django_http_responses_total_by_status_view_method_total"
    pattern = name + r'\{[^}]*status="200"[^}]*view="healthz"[^}]*\} (\S+)'
    match = re.search(pattern, metrics)
    return float(match.group(1)) if match else 0.0


def test_metrics_merge_all_gunicorn_workers(tmp_path: Path) -> None:
    with gunicorn_app(mongodb_uri=settings.MONGODB_URI, mongodb_db="metrics_check", var_dir=tmp_path) as base:
        before = healthz_200_count(http_get(f"{base}/metrics")[1].decode())
        for _ in range(40):
            assert http_get(f"{base}/healthz")[0] == 200
        status, body = http_get(f"{base}/metrics")
    assert status == 200
    assert healthz_200_count(body.decode()) - before == 40
    assert len(list((tmp_path / "prometheus").glob("*.db"))) >= 2  # one file set per worker

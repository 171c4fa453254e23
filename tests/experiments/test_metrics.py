"""/metrics reports each recent experiment's ramp, guardrails and automatic looks, read from its record per scrape."""

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from django.test import override_settings
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families
from pymongo.errors import ServerSelectionTimeoutError
from rest_framework.test import APIClient

from core.rollout import LOOK_ACTIONS
from experiments.models import Experiment, ExperimentResult, ExperimentStatus

pytestmark = pytest.mark.django_db
Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def experiment(key: str, **fields: Any) -> Experiment:
    values = {
        "key": key,
        "name": key,
        "owner": "alice",
        "control_version": "v1.0.0",
        "treatment_version": "v1.1.0",
        "created_at": timezone.now() - timedelta(days=20),
    }
    return Experiment.objects.create(**(values | fields))


def scrape(client: APIClient) -> Samples:
    """Every rideease_experiment_* sample of one /metrics scrape, read with Prometheus' own text parser."""
    response = client.get("/metrics")
    assert response.status_code == 200
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(response.content.decode())
        if family.name.startswith("rideease_experiment_")
        for sample in family.samples
    }


def of(samples: Samples, name: str, key: str, **labels: str) -> float | None:
    wanted = tuple(sorted({"experiment": key, "slot": "rec-engine", **labels}.items()))
    return samples.get((name, wanted))


def test_a_running_ramp_reports_its_step_share_guardrails_looks_and_decisions(api_client: APIClient) -> None:
    looked_at, started_at = datetime(2026, 12, 5, 6, 0, tzinfo=UTC), datetime(2026, 12, 2, 9, 30, tzinfo=UTC)
    experiment(
        "svd-ramp",
        status=ExperimentStatus.RUNNING,
        started_at=started_at,
        treatment_share=0.25,
        ramp=[
            {"share": 0.1, "minHours": 24, "minUsers": 1000},
            {"share": 0.25, "minHours": 24, "minUsers": 1000},
            {"share": 0.5, "minHours": 48, "minUsers": 5000},
        ],
        ramp_step=1,
        look_failures=2,
        # latency_p99 has no status yet: not failing.
        last_look={
            "at": looked_at.isoformat(),
            "guardrails": {"latency_p95": "failing", "error_rate": "ok", "fallback_rate": "insufficient"},
        },
        decisions={"hold": 3, "advance": 1},
    )
    with override_settings(EXPERIMENT_LOOK_FAILURE_LIMIT=6):
        samples = scrape(api_client)
    key = "svd-ramp"
    assert of(samples, "rideease_experiment_ramp_step", key) == 2, "the second step, counted from 1"
    assert of(samples, "rideease_experiment_ramp_steps", key) == 3
    assert of(samples, "rideease_experiment_treatment_share", key) == 0.25
    assert of(samples, "rideease_experiment_running", key) == 1
    assert of(samples, "rideease_experiment_look_failures", key) == 2
    assert of(samples, "rideease_experiment_look_failure_limit", key) == 6
    assert of(samples, "rideease_experiment_last_look_timestamp_seconds", key) == looked_at.timestamp()
    assert of(samples, "rideease_experiment_started_timestamp_seconds", key) == started_at.timestamp()
    failing = {
        metric: of(samples, "rideease_experiment_guardrail_failing", key, metric=metric)
        for metric in ("latency_p95", "latency_p99", "error_rate", "fallback_rate")
    }
    assert failing == {"latency_p95": 1, "latency_p99": 0, "error_rate": 0, "fallback_rate": 0}
    decisions = {
        action: of(samples, "rideease_experiment_decisions_total", key, action=action) for action in LOOK_ACTIONS
    }
    assert decisions == {"hold": 3, "advance": 1, "rollback": 0, "ship": 0, "failed": 0}


def test_a_recently_stopped_experiment_without_ramp_or_look_reports_zeros_and_no_look_time(
    api_client: APIClient,
) -> None:
    experiment(
        "knn-plain",
        status=ExperimentStatus.STOPPED,
        result=ExperimentResult.ROLLED_BACK,
        started_at=timezone.now() - timedelta(days=5),
        stopped_at=timezone.now() - timedelta(days=2),
        guardrails=[{"metric": "error_rate", "threshold": 0.005, "relative": False}],
    )
    samples = scrape(api_client)
    key = "knn-plain"
    assert of(samples, "rideease_experiment_ramp_step", key) == 0, "no ramp: step 0"
    assert of(samples, "rideease_experiment_ramp_steps", key) == 0
    assert of(samples, "rideease_experiment_running", key) == 0
    assert of(samples, "rideease_experiment_look_failures", key) == 0
    assert of(samples, "rideease_experiment_look_failure_limit", key) == 4, "EXPERIMENT_LOOK_FAILURE_LIMIT's default"
    assert of(samples, "rideease_experiment_last_look_timestamp_seconds", key) is None
    guardrails = {labels for name, labels in samples if name == "rideease_experiment_guardrail_failing"}
    assert guardrails == {(("experiment", key), ("metric", "error_rate"), ("slot", "rec-engine"))}, "only its own"
    decisions = [of(samples, "rideease_experiment_decisions_total", key, action=action) for action in LOOK_ACTIONS]
    assert decisions == [0] * len(LOOK_ACTIONS)


def test_drafts_and_experiments_stopped_over_a_week_ago_are_not_reported(api_client: APIClient) -> None:
    experiment("draft-one")
    experiment(
        "long-gone",
        status=ExperimentStatus.STOPPED,
        result=ExperimentResult.SHIPPED,
        started_at=timezone.now() - timedelta(days=15),
        stopped_at=timezone.now() - timedelta(days=8),
    )
    experiment("still-on", status=ExperimentStatus.RUNNING, started_at=timezone.now())
    reported = {dict(labels)["experiment"] for _, labels in scrape(api_client)}
    assert reported == {"still-on"}


def test_an_unreachable_database_leaves_the_experiment_series_out_and_the_scrape_whole(
    api_client: APIClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    experiment("still-on", status=ExperimentStatus.RUNNING, started_at=timezone.now())

    def unreachable(now: datetime) -> list[dict[str, Any]]:
        raise ServerSelectionTimeoutError("database unreachable")

    monkeypatch.setattr("experiments.metrics._reported_experiments", unreachable)
    response = api_client.get("/metrics")
    assert response.status_code == 200
    assert b"rideease_prediction_requests_total" in response.content
    assert scrape(api_client) == {}

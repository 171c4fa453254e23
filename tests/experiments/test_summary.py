"""The summary endpoint and command over real events in the database, including --apply."""

import json
from datetime import timedelta
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.utils import timezone
from rest_framework.test import APIClient

from experiments.models import Experiment
from experiments.services import experiment_create, experiment_start
from recommendations.events import EventInput
from recommendations.services import raw_event_store_many
from registry.models import ServingState, ServingStateChange

pytestmark = pytest.mark.django_db


def plant(
    users: int, rate_control: float, rate_treatment: float, *, control: str, treatment: str, experiment: str = ""
) -> None:
    """Half the users see control, half treatment, 10 minutes ago; a share of each books a shown item."""
    now = timezone.now()
    events = []
    for n in range(users):
        variant, version, rate = (
            ("control", control, rate_control) if n % 2 == 0 else ("treatment", treatment, rate_treatment)
        )
        user = f"exp-user-{n:05d}"
        payload = {"requestId": f"req-{n}", "variant": variant, "modelVersion": version, "items": ["a", "b"]}
        if experiment:
            payload |= {"experiment": experiment, "phase": 1}
        events.append(EventInput("recommend", user, now - timedelta(minutes=10), None, payload))
        if (n // 2) < rate * (users // 2):
            events.append(EventInput("book", user, now - timedelta(minutes=5), "a"))
    raw_event_store_many(events=events)


def test_the_summary_reports_counts_statistics_and_a_decision(served: None, api_client: APIClient) -> None:
    plant(400, 0.30, 0.30, control="v1.0.0", treatment="v1.1.0")
    body = api_client.get("/experiments/rec-engine/summary", {"windowHours": 1}).json()
    assert body["window"]["hours"] == 1
    control, treatment = body["variants"]["control"], body["variants"]["treatment"]
    assert (control["exposedUsers"], control["convertedUsers"], control["conversionRate"]) == (200, 60, 0.3)
    assert treatment["versions"] == [{"version": "v1.1.0", "exposures": 200, "share": 1.0}]
    stats = body["stats"]
    assert stats["difference"] == 0.0 and stats["pValue"] == pytest.approx(1.0)
    assert stats["ci"]["level"] == 0.95 and stats["ci"]["method"].startswith("confidence sequence")
    assert stats["rule"] == "sequential" and stats["validAtAnyLook"] is True
    assert stats["srm"]["ok"] is True
    assert body["decision"] == "keep-running"
    assert "insufficient_sample" in body["reasons"] and "not_significant" in body["reasons"]


@pytest.mark.parametrize("hours", ["0", "721", "abc", "1.5", "-3"])
def test_the_window_is_validated(serving_env: Path, api_client: APIClient, hours: str) -> None:
    response = api_client.get("/experiments/rec-engine/summary", {"windowHours": hours})
    assert (response.status_code, response.json()["error"]) == (400, "validation_error")


def test_an_unknown_experiment_is_a_404(serving_env: Path, api_client: APIClient) -> None:
    response = api_client.get("/experiments/nope/summary")
    assert (response.status_code, response.json()["error"]) == (404, "experiment_not_found")


def running_experiment(key: str = "svd-test") -> str:
    """A running experiment on the served versions, its phase moved to an hour ago."""
    experiment_create(
        fields={"key": key, "name": key, "control_version": "v1.0.0", "treatment_version": "v1.1.0"}, actor="t"
    )
    experiment_start(key=key, actor="t")
    record = Experiment.objects.get(key=key)
    record.phases[0]["startedAt"] = (timezone.now() - timedelta(hours=1)).isoformat()
    Experiment.objects.filter(key=key).update(phases=record.phases)
    return key


def test_apply_ships_a_clear_winner_and_records_why(served: None) -> None:
    key = running_experiment()
    plant(400, 0.30, 0.60, control="v1.0.0", treatment="v1.1.0", experiment=key)
    out = StringIO()
    call_command("experiment_summary", key, "--json", "--apply", "--actor", "cron", stdout=out)
    summary = json.loads(out.getvalue())
    assert summary["decision"] == "ship"
    assert (summary["applied"]["experiment"], summary["applied"]["action"]) == (key, "ship")
    state = ServingState.objects.get()
    assert (state.control_version, state.treatment_share, state.running_experiment) == ("v1.1.0", 0.0, None)
    change = ServingStateChange.objects.get(revision=state.revision)
    assert (change.actor, change.action) == ("cron", "experiment_shipped")
    assert change.reason.startswith("experiment_summary: ship on phase 1")
    record = Experiment.objects.get(key=key)
    assert (record.result, record.result_reasons) == ("shipped", ["insufficient_sample", "significant_improvement"])


def test_apply_rolls_back_a_clear_loser_and_without_apply_nothing_changes(served: None) -> None:
    key = running_experiment()
    plant(400, 0.60, 0.30, control="v1.0.0", treatment="v1.1.0", experiment=key)
    out = StringIO()
    call_command("experiment_summary", stdout=out)  # the running experiment, by default
    assert "decision: rollback" in out.getvalue() and f"Experiment {key} (running), phase 1" in out.getvalue()
    assert Experiment.objects.get(key=key).status == "running"
    call_command("experiment_summary", "--apply", stdout=StringIO())
    state = ServingState.objects.get()
    assert (state.control_version, state.treatment_share) == ("v1.0.0", 0.0)
    assert Experiment.objects.get(key=key).result == "rolled_back"


def test_apply_refuses_an_ad_hoc_window(served: None) -> None:
    with pytest.raises(CommandError, match="not_an_experiment"):
        call_command("experiment_summary", "24", "--apply", stdout=StringIO())


def test_bad_command_arguments_are_clear_errors(serving_env: Path) -> None:
    with pytest.raises(CommandError, match="windowHours must be"):
        call_command("experiment_summary", "0", stdout=StringIO())
    with pytest.raises(CommandError, match="phase must be an integer"):
        call_command("experiment_summary", "--phase", "0", stdout=StringIO())
    with pytest.raises(CommandError, match="experiment_not_found"):
        call_command("experiment_summary", "no-such-experiment", stdout=StringIO())


def test_the_admin_shows_the_summary_with_a_chart(served: None, staff_client: Any) -> None:
    plant(400, 0.30, 0.45, control="v1.0.0", treatment="v1.1.0")
    page = staff_client.get("/admin/ui/experiment-summary/?windowHours=2")
    assert page.status_code == 200
    html = page.content.decode()
    assert '<svg id="conversion-chart"' in html
    assert "control: 30.00%" in html and "treatment: 45.00%" in html
    assert html.count("<rect") == 2
    assert APIClient().get("/admin/ui/experiment-summary/").status_code == 302  # staff login required


@pytest.mark.parametrize("hours", ["abc", "0", "721"])
def test_the_admin_says_when_the_window_is_invalid_instead_of_showing_another(
    serving_env: Path, staff_client: Any, hours: str
) -> None:
    page = staff_client.get(f"/admin/ui/experiment-summary/?windowHours={hours}")
    assert page.status_code == 400
    html = page.content.decode()
    assert "windowHours must be an integer from 1 to 720." in html
    assert '<svg id="conversion-chart"' not in html

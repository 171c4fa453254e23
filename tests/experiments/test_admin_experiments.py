"""Experiments in the web admin: create and edit drafts, start and stop with a confirmation, the phase summary with
its cumulative chart; every write through the API's services with the staff user as the actor."""

import re
from datetime import datetime, timedelta
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.test import Client
from django.utils import timezone
from rest_framework.test import APIClient

from core.errors import ApplicationError
from experiments.chart import cumulative_geometry
from experiments.models import Experiment
from recommendations.events import EventInput
from recommendations.services import raw_event_store_many
from registry.models import ServingState, ServingStateChange

KEY = "svd-vs-knn"
BASE = "/admin/ui/experiments/experiment/"
ADD = f"{BASE}add/"


def draft_form(**overrides: Any) -> dict[str, Any]:
    form = {
        "key": KEY,
        "name": "SVD against item-kNN",
        "hypothesis": "SVD finds better rides",
        "control_version": "v1.0.0",
        "treatment_version": "v1.1.0",
        "treatment_share": "0.5",
        "salt": "",
        "rule": "sequential",
        "alpha": "0.05",
        "relative_mde": "0.1",
        "power": "0.8",
        "n_star": "5000",
        "planned_days": "14",
        "cuped": "on",
        # As the add form shows them: the default guardrails, no secondary metric, no ramp.
        "guardrails": "latency_p95 0.2 relative\nlatency_p99 0.3 relative\nerror_rate 0.005 absolute\n"
        "fallback_rate 0.02 absolute",
        "secondary_metrics_1": "",
        "adjustment": "holm",
        "ramp": "",
    }
    return form | overrides


def page(key: str, action: str) -> str:
    return f"{BASE}{key}/{action}/"


def create(client: Client, **overrides: Any) -> None:
    response = client.post(ADD, draft_form(**overrides))
    assert response.status_code == 302, response.content.decode()


def start(client: Client, key: str = KEY) -> None:
    response = client.post(page(key, "start"), {"confirm": "yes", "reason": "weekly test"})
    assert response.status_code == 302
    assert Experiment.objects.get(key=key).status == "running"


def text(response: Any) -> str:
    return str(response.content.decode())


def backdate(key: str, started: datetime) -> None:
    """Move the first phase's start back, so the planted days fall inside it."""
    record = Experiment.objects.get(key=key)
    phases = [{**record.phases[0], "startedAt": started.isoformat()}, *record.phases[1:]]
    Experiment.objects.filter(key=key).update(started_at=started, phases=phases)


def plant_days(key: str, started: datetime, days: int, *, users: int = 60) -> None:
    """Each day of the phase, `users` new users per variant see two items an hour after the day begins; treatment
    users book a shown item a bit more often (30% against 20%), a few minutes later."""
    events = []
    for day in range(days):
        at = started + timedelta(days=day, hours=1)
        for variant, rate in (("control", 0.2), ("treatment", 0.3)):
            for n in range(users):
                user = f"{variant}-{day}-{n}"
                payload = {
                    "requestId": f"r-{user}",
                    "variant": variant,
                    "modelVersion": "v1.0.0" if variant == "control" else "v1.1.0",
                    "items": ["a", "b"],
                    "experiment": key,
                    "phase": 1,
                }
                events.append(EventInput("recommend", user, at, None, payload))
                if n < rate * users:
                    events.append(EventInput("book", user, at + timedelta(minutes=3), "a"))
    raw_event_store_many(events=events)


def test_the_admin_home_lists_experiments_and_the_list_links_the_ad_hoc_window(staff_client: Client) -> None:
    home = text(staff_client.get("/admin/ui/"))
    assert "Experiments" in home and f'href="{BASE}"' in home
    listing = text(staff_client.get(BASE))
    assert 'href="/admin/ui/experiment-summary/"' in listing and f'href="{ADD}"' in listing


def test_a_draft_is_created_and_edited_through_the_forms_with_the_staff_user_as_owner(
    served: None, staff_client: Client
) -> None:
    assert "Decision rule" in text(staff_client.get(ADD))
    create(staff_client, treatment_share="0.2")
    record = Experiment.objects.get(key=KEY)
    assert (record.owner, record.status, record.salt, record.treatment_share) == ("ops", "draft", KEY, 0.2)
    assert record.primary_metric["name"] == "conversion"  # set by experiment_create, as through the API
    listing = text(staff_client.get(BASE))
    assert KEY in listing and page(KEY, "summary") in listing
    assert "1 experiment" in text(staff_client.get(BASE, {"q": "item-knn", "status__exact": "draft"}))
    assert "0 experiments" in text(staff_client.get(BASE, {"q": "nothing-like-it"}))
    assert "0 experiments" in text(staff_client.get(BASE, {"status__exact": "running"}))

    change = f"{BASE}{record.pk}/change/"
    form = text(staff_client.get(change))
    assert page(KEY, "start") in form and page(KEY, "summary") in form
    edited = staff_client.post(change, draft_form(treatment_share="0.3", name="renamed") | {"key": "other"})
    assert edited.status_code == 302
    record = Experiment.objects.get(pk=record.pk)
    assert (record.key, record.name, record.treatment_share) == (KEY, "renamed", 0.3)  # the key stays


def test_bad_input_and_refusals_are_form_errors_not_500s(
    served: None, staff_client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    bad = staff_client.post(ADD, draft_form(key="Bad Key", alpha="0.9", treatment_share="1"))
    assert bad.status_code == 200
    assert "Lower-case letters, digits and -" in text(bad)
    assert "The treatment share must be from 0.001 to 0.999" in text(bad)
    slot = staff_client.post(ADD, draft_form(key="rec-engine"))
    assert "names the serving slot" in text(slot)
    create(staff_client)
    taken = staff_client.post(ADD, draft_form(name="again"))
    assert taken.status_code == 200 and "already exists" in text(taken)

    # What only the service knows (here: a key taken meanwhile) shows on the form too.
    def refuse(**kwargs: Any) -> Any:
        raise ApplicationError("experiment_exists", "An experiment with key 'late' exists.", status=409)

    monkeypatch.setattr("experiments.admin.experiment_create", refuse)
    late = staff_client.post(ADD, draft_form(key="late"))
    assert late.status_code == 200
    assert "An experiment with key &#x27;late&#x27; exists. (experiment_exists)" in text(late)
    assert not Experiment.objects.filter(key="late").exists()


def test_start_asks_for_confirmation_then_serves_the_experiment(served: None, staff_client: Client) -> None:
    create(staff_client, treatment_share="0.1")
    confirm = staff_client.get(page(KEY, "start"))
    assert confirm.status_code == 200
    assert "Serve control v1.0.0 and treatment v1.1.0 to 10% of users" in text(confirm)
    assert 'id="confirm-action"' in text(confirm) and 'name="reason"' in text(confirm)
    assert staff_client.post(page(KEY, "start"), {"reason": "not confirmed"}).status_code == 200
    assert Experiment.objects.get(key=KEY).status == "draft"  # nothing happens before confirming

    done = staff_client.post(page(KEY, "start"), {"confirm": "yes", "reason": "weekly test"}, follow=True)
    assert done.redirect_chain == [(page(KEY, "summary"), 302)]
    assert "Experiment svd-vs-knn started: phase 1 serves control v1.0.0 and treatment v1.1.0" in text(done)
    state = ServingState.objects.get()
    assert (state.running_experiment, state.phase, state.treatment_share, state.salt) == (KEY, 1, 0.1, KEY)
    change = ServingStateChange.objects.order_by("-revision").first()
    assert change is not None
    assert (change.action, change.actor, change.reason) == ("experiment_start", "ops", "weekly test")

    # Running: the record is read-only here.
    pk = Experiment.objects.get(key=KEY).pk
    view = text(staff_client.get(f"{BASE}{pk}/change/"))
    assert 'name="_save"' not in view and page(KEY, "stop") in view and page(KEY, "start") not in view
    assert staff_client.post(f"{BASE}{pk}/change/", draft_form(name="x")).status_code == 403


def test_the_summary_page_draws_the_cumulative_chart_with_its_band_and_the_decision(
    served: None, staff_client: Client, api_client: APIClient
) -> None:
    create(staff_client)
    start(staff_client)
    started = timezone.now() - timedelta(days=3, hours=12)
    backdate(KEY, started)
    plant_days(KEY, started, 4)
    response = staff_client.get(page(KEY, "summary"))
    assert response.status_code == 200
    html = text(response)
    api = api_client.get(f"/experiments/{KEY}/summary").json()
    assert [p["day"] for p in api["cumulative"]] == [1, 2, 3, 4]
    assert f'<strong id="decision">{api["decision"]}</strong>' in html
    assert ", ".join(api["reasons"]) in html
    assert '<svg id="cumulative-chart"' in html and 'id="zero-line"' in html
    band = re.findall(r'<polygon class="band" points="([^"]+)"', html)
    assert len(band) == 1 and len(band[0].split()) == 8  # upper and lower bound of each of the 4 days
    line = re.findall(r'<polyline class="difference" points="([^"]+)"', html)
    assert len(line) == 1 and len(line[0].split()) == 4
    assert html.count('class="day-point"') == 4
    assert all(f">day {day}</text>" in html for day in (1, 2, 3, 4))
    assert f'<strong id="p-value">{api["stats"]["pValue"]:.5f}</strong>' in html
    assert 'id="rule">sequential<' in html and '<span id="valid-at-any-look">valid at any look</span>' in html
    assert "240</td><td>240</td>" in html  # the last day: 4 x 60 users per variant


def test_a_draft_a_phase_without_users_and_a_bad_phase_are_said_on_the_page(served: None, staff_client: Client) -> None:
    create(staff_client, rule="group_sequential")
    draft = text(staff_client.get(page(KEY, "summary")))
    assert 'id="not-started"' in draft and "Not started yet" in draft and 'id="cumulative-chart"' not in draft
    assert page(KEY, "start") in draft

    start(staff_client)
    empty = text(staff_client.get(page(KEY, "summary")))
    assert 'id="no-users"' in empty and 'id="chart-empty"' in empty and "<polygon" not in empty
    assert '<strong id="decision">keep-running</strong>' in empty
    assert 'id="rule">group_sequential<' in empty and "NOT valid at any look" in empty
    bad = staff_client.get(page(KEY, "summary"), {"phase": "abc"})
    assert bad.status_code == 400 and "phase must be an integer &gt;= 1." in text(bad)
    missing = staff_client.get(page(KEY, "summary"), {"phase": "5"})
    assert missing.status_code == 404 and "has no phase 5" in text(missing)
    assert staff_client.get(page("nope", "summary")).status_code == 404


def test_stopping_with_shipped_serves_the_treatment_as_control(served: None, staff_client: Client) -> None:
    create(staff_client)
    start(staff_client)
    confirm = text(staff_client.get(page(KEY, "stop")))
    assert all(f'<option value="{r}">' in confirm for r in ("shipped", "rolled_back", "inconclusive", "abandoned"))
    done = staff_client.post(
        page(KEY, "stop"), {"confirm": "yes", "result": "shipped", "reason": "clear win"}, follow=True
    )
    assert done.redirect_chain == [(page(KEY, "summary"), 302)]
    assert "Experiment svd-vs-knn stopped: shipped. Serving now: control v1.1.0, treatment share 0." in text(done)
    state = ServingState.objects.get()
    assert (state.control_version, state.treatment_share, state.running_experiment) == ("v1.1.0", 0.0, None)
    record = Experiment.objects.get(key=KEY)
    assert (record.status, record.result, record.stopped_by, record.stop_reason) == (
        "stopped",
        "shipped",
        "ops",
        "clear win",
    )
    assert 'id="result">shipped<' in text(done)


def test_refused_actions_show_the_services_message_not_a_500(served: None, staff_client: Client) -> None:
    create(staff_client)
    # A draft can only be abandoned: that is all the page offers, and the service refuses anything else.
    offered = text(staff_client.get(page(KEY, "stop")))
    assert '<option value="abandoned">' in offered and '<option value="shipped">' not in offered
    shipped = staff_client.post(page(KEY, "stop"), {"confirm": "yes", "result": "shipped"}, follow=True)
    assert "Not stopped (experiment_not_running): Experiment svd-vs-knn is a draft: it can only be abandoned." in text(
        shipped
    )
    unknown = staff_client.post(page(KEY, "stop"), {"confirm": "yes", "result": "won"}, follow=True)
    assert "Not stopped (validation_error): result must be one of" in text(unknown)
    too_long = staff_client.post(page(KEY, "start"), {"confirm": "yes", "reason": "x" * 501}, follow=True)
    assert "Not started (validation_error): reason must be a string of at most 500 characters." in text(too_long)
    assert Experiment.objects.get(key=KEY).status == "draft"

    staff_client.post(page(KEY, "stop"), {"confirm": "yes", "result": "abandoned", "reason": "wrong versions"})
    assert Experiment.objects.get(key=KEY).result == "abandoned"
    refused = staff_client.post(page(KEY, "start"), {"confirm": "yes", "reason": "again"}, follow=True)
    assert refused.status_code == 200
    assert "Not started (experiment_not_draft): Experiment svd-vs-knn is stopped." in text(refused)
    again = staff_client.get(page(KEY, "start"), follow=True)
    assert "Only a draft can start; experiment svd-vs-knn is stopped." in text(again)
    assert "is already stopped (abandoned)" in text(staff_client.get(page(KEY, "stop"), follow=True))
    assert "Stopped before it ever started" in text(refused)
    assert staff_client.post(page("nope", "start"), {"confirm": "yes"}).status_code == 404


def test_nothing_is_deleted_from_the_admin(served: None, staff_client: Client) -> None:
    create(staff_client)
    pk = Experiment.objects.get(key=KEY).pk
    assert staff_client.post(f"{BASE}{pk}/delete/", {"post": "yes"}).status_code == 403
    assert "delete_selected" not in text(staff_client.get(BASE))
    assert Experiment.objects.filter(key=KEY).exists()


def test_users_who_are_not_staff_are_sent_to_the_login_page(served: None, staff_client: Client) -> None:
    create(staff_client)
    rider = get_user_model().objects.create_user(username="rider", password="rider-pass-0123")
    signed_in = Client()
    signed_in.force_login(rider)
    for client in (Client(), signed_in):
        for url in (BASE, ADD, page(KEY, "summary"), page(KEY, "start"), page(KEY, "stop")):
            response = client.get(url)
            assert response.status_code == 302 and response["Location"].startswith("/admin/ui/login/"), url
        response = client.post(page(KEY, "start"), {"confirm": "yes", "reason": "sneaky"})
        assert response.status_code == 302 and response["Location"].startswith("/admin/ui/login/")
    assert Experiment.objects.get(key=KEY).status == "draft"


def test_the_chart_geometry_breaks_at_missing_values_and_widens_a_lone_day() -> None:
    def day(n: int, difference: float | None, lower: float | None, upper: float | None) -> dict[str, Any]:
        return {"day": n, "difference": difference, "ciLower": lower, "ciUpper": upper}

    chart = cumulative_geometry(
        [day(1, None, None, None), day(2, 0.02, -0.01, 0.05), day(3, 0.03, 0.0, 0.06), day(4, 0.01, None, None)]
    )
    assert len(chart.bands) == 1 and len(chart.bands[0].split()) == 4  # days 2 and 3 only
    assert len(chart.lines) == 1 and len(chart.lines[0].split()) == 3  # days 2 to 4
    assert [p.day for p in chart.points] == [2, 3, 4] and [d.text for d in chart.days][0] == "day 1"
    assert chart.top < chart.points[1].y < chart.zero_y < chart.bottom  # a positive difference is above zero
    xs = [p.x for p in chart.points]
    assert xs == sorted(xs) and xs[-1] == chart.right

    lone = cumulative_geometry([day(1, 0.1, 0.05, 0.15)])
    corners = [tuple(map(float, c.split(","))) for c in lone.bands[0].split()]
    assert len(corners) == 4 and corners[1][0] - corners[0][0] == 8.0  # a visible width for one day
    empty = cumulative_geometry([day(1, None, None, None)])
    assert empty.empty and not empty.bands and not empty.lines and empty.zero_y == (empty.top + empty.bottom) / 2
    many = cumulative_geometry([day(n, 0.0, -0.01, 0.01) for n in range(1, 61)])
    assert len(many.days) <= 15 and many.days[-1].text == "day 60"

"""An experiment's rollout settings (guardrails, secondary metrics, adjustment, CUPED, ramp) and its look record,
through the API and the web admin: what is kept, what is refused and how, what a start serves, what the pages show."""

import re
from typing import Any

import pytest
from django.test import Client
from rest_framework.test import APIClient

from experiments.models import Experiment
from registry.models import ServingState
from tests.experiments.test_admin_experiments import ADD, BASE, draft_form, page
from tests.experiments.test_experiment_records import KEY, admin, create

pytestmark = pytest.mark.django_db
RAMP = [
    {"share": 0.05, "minHours": 24, "minUsers": 1000},
    {"share": 0.25, "minHours": 12.5, "minUsers": 5000},
    {"share": 0.5, "minHours": 48, "minUsers": 20000},
]
GUARDRAILS = [
    {"metric": "latency_p95", "threshold": 0.1, "relative": True},
    {"metric": "error_rate", "threshold": 0.002, "relative": False},
]
DEFAULT_GUARDRAILS = [
    {"metric": "latency_p95", "threshold": 0.2, "relative": True},
    {"metric": "latency_p99", "threshold": 0.3, "relative": True},
    {"metric": "error_rate", "threshold": 0.005, "relative": False},
    {"metric": "fallback_rate", "threshold": 0.02, "relative": False},
]
ROLLOUT = {
    "guardrails": GUARDRAILS,
    "secondaryMetrics": ["bookings_per_user", "event:share_ride"],
    "adjustment": "bh",
    "cuped": False,
    "ramp": RAMP,
}


def rollout_of(body: dict[str, Any]) -> dict[str, Any]:
    return {name: body[name] for name in ROLLOUT}


def refused_field(response: Any) -> list[str]:
    """The fields a 400 names (a JSON error body, never a 500)."""
    assert response.status_code == 400, (response.status_code, response.content)
    body = response.json()
    assert body["error"] == "validation_error" and body["message"]
    return list(body["details"]["fields"])


def test_rollout_settings_round_trip_through_the_api_and_default_when_left_out(
    served: None, api_client: APIClient
) -> None:
    created = create(api_client, **ROLLOUT)
    assert created.status_code == 201, created.json()
    assert rollout_of(created.json()) == ROLLOUT
    read = api_client.get(f"/experiments/{KEY}").json()
    assert rollout_of(read) == ROLLOUT
    assert (read["rampStep"], read["lookFailures"], read["lastLook"], read["decisions"]) == (0, 0, {}, {})

    plain = create(api_client, key="plain").json()
    assert rollout_of(plain) == {
        "guardrails": DEFAULT_GUARDRAILS,
        "secondaryMetrics": [],
        "adjustment": "holm",
        "cuped": True,
        "ramp": [],
    }
    listed = {e["key"]: e for e in api_client.get("/experiments").json()["experiments"]}
    assert listed[KEY]["ramp"] == RAMP and listed["plain"]["rampStep"] == 0

    # A draft changes them; [] turns guardrails and the ramp off.
    changed = admin(api_client, "patch", f"/experiments/{KEY}", {"guardrails": [], "ramp": [], "cuped": True})
    assert changed.status_code == 200, changed.json()
    assert (changed.json()["guardrails"], changed.json()["ramp"], changed.json()["cuped"]) == ([], [], True)


INVALID = [
    ("ramp", [RAMP[1], RAMP[0]]),  # falling shares
    ("ramp", [{"share": 1.0, "minHours": 1, "minUsers": 1}]),  # everyone on treatment
    ("ramp", [{"share": (n + 1) / 100, "minHours": 1, "minUsers": 1} for n in range(11)]),  # 11 steps
    ("ramp", [{"share": 0.1, "minHours": 1}]),  # a step without minUsers
    ("ramp", [{"share": 0.1, "minHours": 1, "minUsers": 1.5}]),
    ("ramp", "fast"),
    ("ramp", None),
    ("guardrails", [{"metric": "cpu", "threshold": 0.1, "relative": True}]),
    ("guardrails", [GUARDRAILS[0], GUARDRAILS[0]]),
    ("guardrails", [{"metric": "error_rate", "threshold": "high", "relative": False}]),
    ("secondaryMetrics", ["bookings_per_user", "bookings_per_user"]),
    ("secondaryMetrics", ["event:Share Ride"]),
    ("secondaryMetrics", ["revenue"]),
    ("secondaryMetrics", [1]),
    ("adjustment", "bonferroni"),
    ("cuped", "maybe"),
]


def test_invalid_rollout_settings_are_a_400_naming_the_api_field(served: None, api_client: APIClient) -> None:
    for field, value in INVALID:
        assert refused_field(create(api_client, **{field: value})) == [field], (field, value)
    assert not Experiment.objects.exists()
    # The same rules for a draft's change.
    create(api_client)
    for field, value in INVALID:
        assert refused_field(admin(api_client, "patch", f"/experiments/{KEY}", {field: value})) == [field], value
    assert rollout_of(api_client.get(f"/experiments/{KEY}").json())["guardrails"] == DEFAULT_GUARDRAILS


def test_errors_name_every_field_as_the_api_does(served: None, api_client: APIClient) -> None:
    bad = create(api_client, treatmentShare=1.0, relativeMde=50, ramp=[RAMP[1], RAMP[0]])
    assert sorted(refused_field(bad)) == ["ramp", "relativeMde", "treatmentShare"]
    assert "Step shares rise" in bad.json()["details"]["fields"]["ramp"]


def test_a_start_serves_the_first_ramp_step_and_a_running_experiment_keeps_its_settings(
    served: None, api_client: APIClient
) -> None:
    create(api_client, treatmentShare=0.5, ramp=RAMP, guardrails=GUARDRAILS)
    started = admin(api_client, "post", f"/experiments/{KEY}/start", {"reason": "canary"})
    assert started.status_code == 200, started.json()
    body = started.json()
    assert (body["treatmentShare"], body["rampStep"], body["phases"][0]["treatmentShare"]) == (0.05, 0, 0.05)
    state = ServingState.objects.get()
    assert (state.running_experiment, state.treatment_share) == (KEY, 0.05)

    for field, value in [("ramp", RAMP[:1]), ("guardrails", []), ("secondaryMetrics", ["plays_per_user"])]:
        refused = admin(api_client, "patch", f"/experiments/{KEY}", {field: value})
        assert refused_field(refused) == [field]
        message = refused.json()["message"]
        assert message.startswith("A running experiment can change only") and "treatmentShare" in message, message
        assert "treatment_share" not in message
    assert rollout_of(api_client.get(f"/experiments/{KEY}").json())["ramp"] == RAMP


RAMP_LINES = "0.05 24 1000\n0.25, 12.5, 5000\n\n0.5 48 20000\n"


def test_the_admin_form_creates_a_draft_with_a_ramp_and_the_page_shows_the_steps(
    served: None, staff_client: Client
) -> None:
    form = staff_client.get(ADD).content.decode()
    assert 'name="ramp"' in form and 'name="guardrails"' in form and 'name="secondary_metrics_0"' in form
    assert "latency_p95 0.2 relative" in form  # the default guardrails, one per line
    assert "One step per line" in form and 'name="adjustment"' in form and 'name="cuped"' in form

    guardrails = "latency_p95 0.1 relative\nerror_rate 0.002 absolute"
    created = staff_client.post(
        ADD,
        draft_form(
            ramp=RAMP_LINES,
            guardrails=guardrails,
            secondary_metrics_0=["bookings_per_user"],
            secondary_metrics_1="share_ride, event:search",
            adjustment="bh",
            cuped="",
        ),
    )
    assert created.status_code == 302, created.content.decode()
    record = Experiment.objects.get(key=KEY)
    assert (record.ramp, record.guardrails) == (RAMP, GUARDRAILS)
    assert record.secondary_metrics == ["bookings_per_user", "event:share_ride", "event:search"]
    assert (record.adjustment, record.cuped) == ("bh", False)

    # The edit form shows them as entered, and an unchanged post changes nothing.
    change = f"{BASE}{record.pk}/change/"
    edit = staff_client.get(change).content.decode()
    assert "0.05 24 1000\n0.25 12.5 5000\n0.5 48 20000" in edit
    assert 'value="share_ride, search"' in edit
    assert re.search(r'value="bookings_per_user"[^>]* checked', edit)
    assert not re.search(r'value="plays_per_user"[^>]* checked', edit)
    draft = staff_client.get(page(KEY, "summary")).content.decode()
    assert "<td>3</td><td>0.5</td><td>48</td>" in draft and "the start serves it" in draft
    assert "relative 0.1: fails when more than 10% above control" in draft
    assert 'id="secondary-metrics">bookings_per_user, event:share_ride, event:search<' in draft
    assert "No automatic look yet" in draft and "none yet" in draft

    confirm = staff_client.get(page(KEY, "start")).content.decode()
    assert "to 5% of users" in confirm and "take it on to 25%, 50%, one step at a time" in confirm
    staff_client.post(page(KEY, "start"), {"confirm": "yes", "reason": "canary"})
    assert ServingState.objects.get().treatment_share == 0.05
    running = staff_client.get(page(KEY, "summary")).content.decode()
    current = running.split('class="current-step"')
    assert len(current) == 2 and current[1].startswith("><td>1</td><td>0.05</td>")
    assert "<strong>serving now</strong>" in running and ">next<" in running


def test_the_admin_form_says_what_is_wrong_with_a_ramp_or_guardrails(served: None, staff_client: Client) -> None:
    unreadable = staff_client.post(ADD, draft_form(ramp="0.05 24\n"))
    assert unreadable.status_code == 200
    assert "Line 1 (0.05 24): write a share, minimum hours and minimum users" in unreadable.content.decode()
    falling = staff_client.post(ADD, draft_form(ramp="0.5 1 1\n0.1 1 1"))
    assert "Step shares rise" in falling.content.decode()  # the model's own rule, as in the API
    unknown = staff_client.post(ADD, draft_form(guardrails="cpu 0.1 relative"))
    assert "metric must be one of latency_p95" in unknown.content.decode()
    kind = staff_client.post(ADD, draft_form(guardrails="error_rate 0.1 somewhat"))
    assert "write a metric, a threshold and relative or absolute" in kind.content.decode()
    twice = staff_client.post(ADD, draft_form(secondary_metrics_0=["plays_per_user"], secondary_metrics_1="go go"))
    assert "distinct metric names" in twice.content.decode()
    assert not Experiment.objects.exists()


def test_the_page_shows_the_last_look_its_guardrails_and_the_decisions(served: None, staff_client: Client) -> None:
    staff_client.post(ADD, draft_form(ramp=RAMP_LINES))
    staff_client.post(page(KEY, "start"), {"confirm": "yes", "reason": "canary"})
    look = {
        "at": "2026-12-06T10:00:00+00:00",
        "phase": 2,
        "step": 1,
        "outcome": "failed",
        "action": None,
        "guardrails": {"latency_p95": "ok", "error_rate": "insufficient"},
        "error": "database unreachable",
    }
    Experiment.objects.filter(key=KEY).update(
        ramp_step=1, last_look=look, look_failures=2, decisions={"ramp": 1, "keep-running": 3}
    )
    html = staff_client.get(page(KEY, "summary")).content.decode()
    assert 'id="look-outcome">failed<' in html and 'id="look-action">none<' in html
    assert "ramp step 2" in html and "guardrails latency_p95 ok, error_rate insufficient" in html
    assert "Error: database unreachable" in html and "Failed looks in a row: 2." in html
    assert "Decisions taken: keep-running 3, ramp 1." in html
    assert html.split('class="current-step"')[1].startswith("><td>2</td><td>0.25</td>")
    assert "<td>insufficient</td>" in html  # the guardrail table's status column
    api = staff_client.get(f"/experiments/{KEY}").json()
    assert (api["lastLook"], api["lookFailures"], api["rampStep"]) == (look, 2, 1)

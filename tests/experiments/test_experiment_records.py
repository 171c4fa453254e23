"""Experiments as records: create, start, phases, stop, through the API, with real exposures from /recommendations."""

import json
import shutil
import time
from datetime import timedelta
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.utils import timezone
from rest_framework.test import APIClient

from core.assignment import variant_assign
from experiments.models import Experiment
from recommendations.events import EventInput
from recommendations.models import RawEvent
from recommendations.runtime import serving_runtime
from recommendations.services import raw_event_store_many
from registry.models import ServingState, ServingStateChange
from tests.conftest import ADMIN_KEY

pytestmark = pytest.mark.django_db
KEY = "svd-vs-knn"


def admin(client: APIClient, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
    call = getattr(client, method)
    return call(path, body or {}, format="json", HTTP_X_API_KEY=ADMIN_KEY, HTTP_X_ACTOR="alice")


def create(client: APIClient, key: str = KEY, **fields: Any) -> Any:
    body = {"key": key, "name": "SVD against item-kNN", "controlVersion": "v1.0.0", "treatmentVersion": "v1.1.0"}
    return admin(client, "post", "/experiments", body | fields)


def serve(client: APIClient, users: range, prefix: str = "rider") -> None:
    """Ask /recommendations for each user, then wait until every exposure is in the database."""
    serving_runtime().refresh()
    before = RawEvent.objects.filter(type="recommend").count()
    for n in users:
        assert client.get("/recommendations", {"userId": f"{prefix}-{n}", "limit": 3}).status_code == 200
    deadline = time.monotonic() + 5
    while RawEvent.objects.filter(type="recommend").count() < before + len(users):
        assert time.monotonic() < deadline, "exposures not written in time"
        time.sleep(0.05)


def test_an_experiment_is_created_started_tagged_phased_and_shipped(served: None, api_client: APIClient) -> None:
    created = create(api_client, treatmentShare=0.1, hypothesis="SVD finds better rides")
    assert created.status_code == 201, created.json()
    assert created.json() | {"createdAt": None} == created.json() | {
        "createdAt": None,
        "status": "draft",
        "owner": "alice",
        "salt": KEY,
        "rule": "sequential",
        "phases": [],
    }
    started = admin(api_client, "post", f"/experiments/{KEY}/start", {"reason": "weekly test"})
    assert started.status_code == 200, started.json()
    assert [p["treatmentShare"] for p in started.json()["phases"]] == [0.1]
    state = ServingState.objects.get()
    assert (state.running_experiment, state.phase, state.salt, state.treatment_share) == (KEY, 1, KEY, 0.1)

    serve(api_client, range(40))
    exposures = list(RawEvent.objects.filter(type="recommend"))
    assert {(e.payload["experiment"], e.payload["phase"]) for e in exposures} == {(KEY, 1)}
    # Assignment uses the experiment's salt.
    assert all(e.payload["variant"] == variant_assign(e.user_id, treatment_share=0.1, salt=KEY) for e in exposures)

    ramped = admin(api_client, "patch", f"/experiments/{KEY}", {"treatmentShare": 0.5, "reason": "ramp"})
    assert ramped.status_code == 200, ramped.json()
    phases = ramped.json()["phases"]
    assert [(p["id"], p["treatmentShare"]) for p in phases] == [(1, 0.1), (2, 0.5)]
    again = admin(api_client, "patch", f"/experiments/{KEY}", {"treatmentShare": 0.5, "reason": "ramp"})
    assert again.json()["phases"] == phases, "the same ramp sent twice starts no phase"
    assert phases[0]["endedAt"] == phases[1]["startedAt"]
    serve(api_client, range(20, 60))  # 20 returning users from phase 1, 20 new ones

    summary = api_client.get(f"/experiments/{KEY}/summary").json()
    assert summary["phase"]["id"] == 2 and summary["treatmentShare"] == 0.5
    assert summary["usersFromEarlierPhases"] == 20
    exposed = summary["variants"]["control"]["exposedUsers"] + summary["variants"]["treatment"]["exposedUsers"]
    assert exposed == 20
    assert summary["stats"]["rule"] == "sequential" and summary["stats"]["validAtAnyLook"] is True
    # The slot's summary reads the running experiment.
    assert api_client.get("/experiments/rec-engine/summary").json()["phase"]["id"] == 2

    stopped = admin(api_client, "post", f"/experiments/{KEY}/stop", {"result": "shipped", "reason": "clear win"})
    assert stopped.status_code == 200, stopped.json()
    assert (stopped.json()["status"], stopped.json()["result"], stopped.json()["stoppedBy"]) == (
        "stopped",
        "shipped",
        "alice",
    )
    state = ServingState.objects.get()
    assert (state.control_version, state.treatment_share, state.running_experiment) == ("v1.1.0", 0.0, None)
    actions = list(ServingStateChange.objects.order_by("revision").values_list("action", "actor"))
    assert actions[-3:] == [
        ("experiment_start", "alice"),
        ("experiment_phase", "alice"),
        ("experiment_shipped", "alice"),
    ]


def backdate(key: str, starts: list[int]) -> None:
    """Move the experiment's phases to start `starts` minutes ago (each ending where the next starts)."""
    record = Experiment.objects.get(key=key)
    now = timezone.now()
    times = [now - timedelta(minutes=m) for m in starts]
    for phase, start, end in zip(record.phases, times, [*times[1:], None], strict=True):
        phase["startedAt"] = start.isoformat()
        if phase["endedAt"] is not None or end is not None:
            phase["endedAt"] = end.isoformat() if end else phase["endedAt"]
    Experiment.objects.filter(key=key).update(phases=record.phases, started_at=times[0])


def plant_phase(key: str, phase: int, users: dict[str, tuple[int, int]], *, prefix: str, minutes_ago: int = 30) -> None:
    """Tagged exposures for `users` {variant: (exposed, converted)} of one phase, and their bookings."""
    now = timezone.now()
    events = []
    for variant, (exposed, converted) in users.items():
        for n in range(exposed):
            user = f"{prefix}-{variant}-{n}"
            payload = {"requestId": f"r-{user}", "variant": variant, "modelVersion": "v", "items": ["a", "b"]}
            at = now - timedelta(minutes=minutes_ago)
            events.append(EventInput("recommend", user, at, None, payload | {"experiment": key, "phase": phase}))
            if n < converted:
                events.append(EventInput("book", user, at + timedelta(minutes=2), "a"))
    raw_event_store_many(events=events)


def test_a_60_40_split_at_half_share_is_flagged_and_never_ships(served: None, api_client: APIClient) -> None:
    create(api_client, treatmentShare=0.5)
    admin(api_client, "post", f"/experiments/{KEY}/start")
    backdate(KEY, [60])
    plant_phase(KEY, 1, {"control": (1200, 120), "treatment": (800, 200)}, prefix="srm")
    summary = api_client.get(f"/experiments/{KEY}/summary").json()
    assert summary["stats"]["srm"]["ok"] is False
    assert summary["stats"]["ci"]["lower"] > 0  # a large lift, yet:
    assert summary["decision"] == "keep-running" and "srm_detected" in summary["reasons"]
    out = StringIO()
    call_command("experiment_summary", KEY, "--json", "--apply", stdout=out)
    applied = json.loads(out.getvalue())["applied"]
    assert applied["action"] == "hold" and "srm_detected" in applied["reason"]
    assert Experiment.objects.get(key=KEY).status == "running"


def test_a_share_change_from_10_to_50_percent_is_a_new_phase_not_a_mismatch(
    served: None, api_client: APIClient
) -> None:
    create(api_client, treatmentShare=0.1)
    admin(api_client, "post", f"/experiments/{KEY}/start")
    plant_phase(KEY, 1, {"control": (900, 90), "treatment": (100, 10)}, prefix="p1", minutes_ago=50)
    admin(api_client, "patch", f"/experiments/{KEY}", {"treatmentShare": 0.5})
    backdate(KEY, [60, 30])
    # Phase 2: 500/500 new users; 250 phase-1 users come back.
    plant_phase(KEY, 2, {"control": (500, 50), "treatment": (500, 50)}, prefix="p2", minutes_ago=10)
    plant_phase(KEY, 2, {"control": (150, 0), "treatment": (100, 0)}, prefix="p1", minutes_ago=5)
    assert RawEvent.objects.filter(type="recommend", user_id__startswith="p1-").count() == 1250
    summary = api_client.get(f"/experiments/{KEY}/summary").json()
    assert summary["phase"]["id"] == 2 and summary["treatmentShare"] == 0.5
    assert (summary["variants"]["control"]["exposedUsers"], summary["variants"]["treatment"]["exposedUsers"]) == (
        500,
        500,
    )
    assert summary["usersFromEarlierPhases"] == 250
    assert summary["stats"]["srm"]["ok"] is True
    # The ad-hoc window adds both phases together under today's share: there the split looks wrong.
    window = api_client.get(f"/experiments/{KEY}/summary", {"windowHours": 2}).json()
    assert window["phase"] is None and window["stats"]["srm"]["ok"] is False
    # Phase 1 read on its own, with its own share, is fine too.
    first = api_client.get(f"/experiments/{KEY}/summary", {"phase": 1}).json()
    assert (first["phase"]["id"], first["treatmentShare"], first["stats"]["srm"]["ok"]) == (1, 0.1, True)


def test_a_plain_switch_of_the_treatment_stops_the_experiment_and_its_summary_keeps_one_version(
    served: None, api_client: APIClient
) -> None:
    create(api_client)
    admin(api_client, "post", f"/experiments/{KEY}/start")
    serve(api_client, range(30))
    # A control switch is a new phase; a treatment switch stops the experiment.
    admin(api_client, "post", "/admin/switch-model", {"version": "v1.0.0", "target": "treatment", "reason": "x"})
    record = Experiment.objects.get(key=KEY)
    assert (record.status, record.result, record.result_reasons) == ("stopped", "abandoned", ["treatment_changed"])
    assert record.stopped_by == "alice" and record.phases[-1]["endedAt"] is not None
    assert ServingState.objects.get().running_experiment is None
    serve(api_client, range(30, 60))  # served after the stop: no longer tagged
    untagged = RawEvent.objects.filter(type="recommend", user_id__in=[f"rider-{n}" for n in range(30, 60)])
    assert all("experiment" not in e.payload for e in untagged)
    summary = api_client.get(f"/experiments/{KEY}/summary").json()
    assert summary["status"] == "stopped"
    versions = {v["version"] for v in summary["variants"]["treatment"]["versions"]}
    assert versions <= {"v1.1.0"}
    assert summary["variants"]["control"]["exposedUsers"] + summary["variants"]["treatment"]["exposedUsers"] == 30


def test_a_control_switch_while_running_starts_a_new_phase(served: None, api_client: APIClient) -> None:
    create(api_client)
    admin(api_client, "post", f"/experiments/{KEY}/start")
    response = admin(api_client, "post", "/admin/switch-model", {"version": "v1.1.0", "target": "control"})
    assert response.status_code == 200
    record = Experiment.objects.get(key=KEY)
    assert record.status == "running"
    assert [(p["id"], p["controlVersion"]) for p in record.phases] == [(1, "v1.0.0"), (2, "v1.1.0")]
    assert (ServingState.objects.get().phase, record.phases[1]["actor"]) == (2, "alice")


def test_writes_need_the_admin_key_and_bad_input_is_a_clear_error(served: None, api_client: APIClient) -> None:
    body = {"key": KEY, "name": "n", "controlVersion": "v1.0.0", "treatmentVersion": "v1.1.0"}
    assert api_client.post("/experiments", body, format="json").status_code == 401
    bad = create(api_client, key="Bad Key", alpha=0.9, treatmentShare=1.0)
    assert bad.status_code == 400
    assert set(bad.json()["details"]["fields"]) == {"key", "alpha", "treatmentShare"}
    assert create(api_client, extra=1).json()["details"]["fields"] == ["extra"]
    assert create(api_client).status_code == 201
    assert create(api_client).status_code == 409
    assert admin(api_client, "post", f"/experiments/{KEY}/stop", {"result": "won"}).status_code == 400
    assert admin(api_client, "post", f"/experiments/{KEY}/stop", {"result": "shipped"}).status_code == 409
    assert admin(api_client, "post", "/experiments/nope/start").status_code == 404
    # A second experiment cannot run on the same slot.
    admin(api_client, "post", f"/experiments/{KEY}/start")
    create(api_client, key="second")
    refused = admin(api_client, "post", "/experiments/second/start")
    assert (refused.status_code, refused.json()["error"]) == (409, "experiment_conflict")
    assert api_client.get("/experiments", {"status": "running"}).json()["experiments"][0]["key"] == KEY
    assert api_client.get("/experiments", {"status": "nope"}).status_code == 400


def test_a_treatment_change_through_the_experiment_is_a_new_phase_and_phases_never_mix_versions(
    served: None, api_client: APIClient
) -> None:
    create(api_client)
    admin(api_client, "post", f"/experiments/{KEY}/start")
    serve(api_client, range(40))
    changed = admin(api_client, "patch", f"/experiments/{KEY}", {"treatmentVersion": "v1.0.0", "reason": "retrained"})
    assert changed.status_code == 200, changed.json()
    assert [p["treatmentVersion"] for p in changed.json()["phases"]] == ["v1.1.0", "v1.0.0"]
    assert Experiment.objects.get(key=KEY).status == "running"
    serve(api_client, range(40, 80))

    def treatment_versions(phase: int) -> set[str]:
        summary = api_client.get(f"/experiments/{KEY}/summary", {"phase": phase}).json()
        assert summary["phase"]["id"] == phase
        return {v["version"] for v in summary["variants"]["treatment"]["versions"]}

    assert treatment_versions(1) == {"v1.1.0"}
    assert treatment_versions(2) == {"v1.0.0"}
    assert api_client.get(f"/experiments/{KEY}/summary", {"phase": 3}).status_code == 404


def test_apply_refuses_a_decision_read_on_a_phase_that_is_over(served: None, api_client: APIClient) -> None:
    create(api_client)
    admin(api_client, "post", f"/experiments/{KEY}/start")
    backdate(KEY, [60])
    plant_phase(KEY, 1, {"control": (1500, 150), "treatment": (1500, 400)}, prefix="win")
    admin(api_client, "patch", f"/experiments/{KEY}", {"treatmentVersion": "v1.0.0"})
    with pytest.raises(CommandError, match="phase_changed"):
        call_command("experiment_summary", KEY, "--phase", "1", "--apply", stdout=StringIO())
    assert Experiment.objects.get(key=KEY).status == "running"
    assert ServingState.objects.get().treatment_version == "v1.0.0"
    stale = admin(api_client, "post", f"/experiments/{KEY}/stop", {"result": "shipped", "phase": 1})
    assert (stale.status_code, stale.json()["error"]) == (409, "phase_changed")


def test_a_plain_switch_that_empties_an_arm_stops_the_experiment(served: None, api_client: APIClient) -> None:
    create(api_client)
    admin(api_client, "post", f"/experiments/{KEY}/start")
    admin(api_client, "post", "/admin/switch-model", {"version": "v1.0.0", "target": "control", "treatmentShare": 0})
    record = Experiment.objects.get(key=KEY)
    assert (record.status, record.result_reasons) == ("stopped", ["share_closed"])


def test_a_stop_does_not_need_the_treatment_files_that_it_stops_serving(
    served: None, serving_env: Path, api_client: APIClient
) -> None:
    create(api_client)
    admin(api_client, "post", f"/experiments/{KEY}/start")
    for folder in ("registry", "cache"):
        shutil.rmtree(serving_env / folder / "v1.1.0", ignore_errors=True)
    stopped = admin(api_client, "post", f"/experiments/{KEY}/stop", {"result": "rolled_back"})
    assert stopped.status_code == 200, stopped.json()
    assert ServingState.objects.get().treatment_share == 0.0


def test_edge_inputs_are_clear_errors_or_no_ops(served: None, api_client: APIClient) -> None:
    tiny = create(api_client, treatmentShare=1e-310)
    assert (tiny.status_code, list(tiny.json()["details"]["fields"])) == (400, ["treatmentShare"])
    create(api_client, salt="")
    assert admin(api_client, "patch", f"/experiments/{KEY}", {}).status_code == 200  # nothing to change
    emptied = admin(api_client, "patch", f"/experiments/{KEY}", {"salt": ""}).json()
    assert emptied["salt"] == KEY
    admin(api_client, "post", f"/experiments/{KEY}/start")
    both = api_client.get(f"/experiments/{KEY}/summary", {"phase": 1, "windowHours": 2})
    assert (both.status_code, both.json()["error"]) == (400, "validation_error")

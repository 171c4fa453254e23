"""The admin API: key checks, listing, switching, rollback, history, and racing switches."""

import shutil
import threading
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connections
from django.test import override_settings
from rest_framework.test import APIClient

from registry.models import ServingState, ServingStateChange
from tests.conftest import ADMIN_KEY

pytestmark = pytest.mark.django_db
ENDPOINTS = [
    ("get", "/admin/models"),
    ("post", "/admin/switch-model"),
    ("post", "/admin/rollback"),
    ("get", "/admin/serving-history"),
]


def call(client: APIClient, method: str, path: str, body: dict[str, Any] | None = None, **headers: str) -> Any:
    if method == "get":
        return client.get(path, **headers)
    return client.post(path, body or {}, format="json", **headers)


def state() -> tuple[str, str | None, float, int]:
    row = ServingState.objects.get()
    return row.control_version, row.treatment_version, row.treatment_share, row.revision


@pytest.mark.parametrize(("method", "path"), ENDPOINTS)
def test_without_a_configured_key_the_admin_api_is_disabled(serving_env: Path, method: str, path: str) -> None:
    with override_settings(MODEL_ADMIN_API_KEY=""):
        response = call(APIClient(), method, path, HTTP_X_API_KEY="anything")
    assert response.status_code == 503
    assert response.json()["error"] == "admin_api_disabled"


@pytest.mark.parametrize(("method", "path"), ENDPOINTS)
def test_a_missing_or_wrong_key_is_a_401_that_never_echoes_the_key(serving_env: Path, method: str, path: str) -> None:
    assert call(APIClient(), method, path).status_code == 401
    response = call(APIClient(), method, path, HTTP_X_API_KEY=ADMIN_KEY + "x")
    assert response.status_code == 401
    assert ADMIN_KEY not in response.content.decode()


def test_keys_are_compared_in_constant_time(serving_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import common.keys

    seen: list[tuple[bytes, bytes]] = []
    real = common.keys.hmac.compare_digest

    def spy(a: bytes, b: bytes) -> bool:
        seen.append((a, b))
        return real(a, b)

    monkeypatch.setattr(common.keys.hmac, "compare_digest", spy)
    APIClient().get("/admin/models", HTTP_X_API_KEY="guess")
    assert seen == [(b"guess", ADMIN_KEY.encode())]


def test_models_are_listed_newest_first_in_pages_with_the_serving_state(versions: Path, admin: APIClient) -> None:
    first = admin.get("/admin/models", {"limit": 2}).json()
    assert [m["version"] for m in first["models"]] == ["v1.2.0", "v1.1.0"]
    assert first["nextCursor"] == "v1.1.0"
    assert first["serving"]["control"] == "v1.0.0" and first["serving"]["treatment"] == "v1.1.0"
    second = admin.get("/admin/models", {"limit": 2, "cursor": first["nextCursor"]}).json()
    assert [m["version"] for m in second["models"]] == ["v1.0.0"]
    assert second["nextCursor"] is None
    listed = first["models"][0]
    assert {"status", "algorithm", "metrics", "dataSnapshotId", "pipelineGitSha", "artifactUri"} <= set(listed)
    assert "userIds" not in listed and "itemIds" not in listed
    assert admin.get("/admin/models", {"limit": 0}).status_code == 400
    assert admin.get("/admin/models", {"cursor": "latest"}).status_code == 400


@pytest.mark.parametrize(
    ("target", "expected"),
    [("control", ("v1.2.0", "v1.1.0")), ("treatment", ("v1.0.0", "v1.2.0")), ("all", ("v1.2.0", "v1.2.0"))],
)
def test_each_target_moves_what_it_names(
    versions: Path, admin: APIClient, target: str, expected: tuple[str, str]
) -> None:
    response = admin.post(
        "/admin/switch-model",
        {"version": "v1.2.0", "target": target, "reason": "canary looks good"},
        format="json",
        HTTP_X_ACTOR="alice",
    )
    assert response.status_code == 200
    serving = response.json()["serving"]
    assert (serving["control"], serving["treatment"], serving["revision"]) == (*expected, 3)
    change = ServingStateChange.objects.get(revision=3)
    assert (change.actor, change.action, change.target, change.reason) == (
        "alice",
        "switch",
        target,
        "canary looks good",
    )
    assert change.before["control"] == "v1.0.0" and change.after["control"] == expected[0]


def test_the_treatment_share_can_be_staged(versions: Path, admin: APIClient) -> None:
    body = {"version": "v1.2.0", "target": "treatment", "treatmentShare": 0.1}
    assert admin.post("/admin/switch-model", body, format="json").json()["serving"]["treatmentShare"] == 0.1


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"version": "v9.9.9", "target": "control"}, 404, "version_not_found"),
        ({"version": "v1.2.0", "target": "everything"}, 400, "invalid_target"),
        ({"version": "v1.2.0", "target": "treatment", "treatmentShare": 1.5}, 400, "invalid_share"),
        ({"version": "v1.2.0", "target": "treatment", "treatmentShare": "half"}, 400, "validation_error"),
        ({"version": "v1.2.0"}, 400, "validation_error"),
        ({"version": "v1.2.0", "target": "control", "force": True}, 400, "validation_error"),
    ],
)
def test_refused_switches_change_nothing(
    versions: Path, admin: APIClient, body: dict[str, Any], status: int, code: str
) -> None:
    before = state()
    response = admin.post("/admin/switch-model", body, format="json")
    assert (response.status_code, response.json()["error"]) == (status, code)
    assert state() == before
    assert ServingStateChange.objects.count() == 2


def test_a_version_whose_artifacts_fail_verification_is_refused(versions: Path, admin: APIClient) -> None:
    shutil.rmtree(versions / "cache", ignore_errors=True)
    arrays = versions / "registry" / "v1.2.0" / "arrays.npz"
    data = bytearray(arrays.read_bytes())
    data[len(data) // 2] ^= 0xFF
    arrays.write_bytes(bytes(data))
    before = state()
    response = admin.post("/admin/switch-model", {"version": "v1.2.0", "target": "treatment"}, format="json")
    assert (response.status_code, response.json()["error"]) == (409, "artifact_corrupt")
    assert state() == before


def test_rollback_restores_the_previous_version_from_the_history(versions: Path, admin: APIClient) -> None:
    admin.post("/admin/switch-model", {"version": "v1.2.0", "target": "treatment"}, format="json")
    response = admin.post("/admin/rollback", {"target": "treatment", "reason": "error rate up"}, format="json")
    assert response.status_code == 200
    assert response.json()["serving"]["treatment"] == "v1.1.0"
    # The treatment's first version replaced nothing: rolling back again leaves control serving everyone.
    assert admin.post("/admin/rollback", {"target": "treatment"}, format="json").json()["serving"]["treatment"] is None
    change = ServingStateChange.objects.order_by("-revision").first()
    assert change is not None and (change.action, change.after["treatment"]) == ("rollback", None)


def test_control_cannot_be_rolled_back_to_nothing(versions: Path, admin: APIClient) -> None:
    response = admin.post("/admin/rollback", {"target": "control"}, format="json")
    assert (response.status_code, response.json()["error"]) == (409, "nothing_to_roll_back")


def test_the_history_lists_every_change_newest_first_in_pages(versions: Path, admin: APIClient) -> None:
    admin.post("/admin/switch-model", {"version": "v1.2.0", "target": "all", "reason": "ship"}, format="json")
    page = admin.get("/admin/serving-history", {"limit": 2}).json()
    assert [c["revision"] for c in page["changes"]] == [3, 2]
    assert page["changes"][0]["from"]["treatment"] == "v1.1.0"
    assert page["changes"][0]["to"] == {
        "control": "v1.2.0",
        "treatment": "v1.2.0",
        "treatmentShare": 0.5,
        "salt": "rec-engine",
        "experiment": None,
        "phase": None,
    }
    rest = admin.get("/admin/serving-history", {"limit": 2, "cursor": page["nextCursor"]}).json()
    assert [c["revision"] for c in rest["changes"]] == [1]
    assert rest["nextCursor"] is None


def test_racing_switches_lose_nothing_and_leave_a_consistent_state(versions: Path) -> None:
    outcomes: list[int] = []
    barrier = threading.Barrier(8)

    def switch(n: int) -> None:
        client = APIClient()
        client.credentials(HTTP_X_API_KEY=ADMIN_KEY)
        barrier.wait()
        try:
            body = {"version": ["v1.0.0", "v1.1.0", "v1.2.0"][n % 3], "target": ["control", "treatment"][n % 2]}
            outcomes.append(client.post("/admin/switch-model", body, format="json").status_code)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=switch, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert set(outcomes) <= {200, 409}
    changes = list(ServingStateChange.objects.order_by("revision"))
    # Every accepted switch appended exactly one record; revisions have no gap and no duplicate.
    assert [c.revision for c in changes] == list(range(1, 3 + outcomes.count(200)))
    last = changes[-1].after
    assert state()[:3] == (last["control"], last["treatment"], last["treatmentShare"])
    for earlier, later in zip(changes, changes[1:], strict=False):
        assert later.before == earlier.after


def test_operators_can_switch_and_roll_back_from_the_command_line(versions: Path) -> None:
    out = StringIO()
    call_command(
        "switch_model", "v1.2.0", "--target", "treatment", "--reason", "try svd v2", "--actor", "bob", stdout=out
    )
    assert out.getvalue().strip() == "revision 3: control v1.0.0, treatment v1.2.0 (50% of users)"
    change = ServingStateChange.objects.get(revision=3)
    assert (change.actor, change.reason) == ("bob", "try svd v2")
    out = StringIO()
    call_command("rollback", "--target", "treatment", stdout=out)
    assert out.getvalue().strip() == "revision 4: control v1.0.0, treatment v1.1.0"
    with pytest.raises(CommandError, match=r"switch refused \(version_not_found\)"):
        call_command("switch_model", "v7.0.0", "--target", "control", stdout=StringIO())


def test_one_reason_rule_for_the_api_and_the_commands(versions: Path, admin: APIClient) -> None:
    too_long = "x" * 501
    body = {"version": "v1.2.0", "target": "treatment", "reason": too_long}
    response = admin.post("/admin/switch-model", body, format="json")
    assert (response.status_code, response.json()["error"]) == (400, "validation_error")
    rollback = admin.post("/admin/rollback", {"target": "treatment", "reason": too_long}, format="json")
    assert (rollback.status_code, rollback.json()["error"]) == (400, "validation_error")
    with pytest.raises(CommandError, match="reason must be a string of at most 500 characters"):
        call_command("switch_model", "v1.2.0", "--target", "treatment", "--reason", too_long, stdout=StringIO())
    with pytest.raises(CommandError, match="reason must be a string of at most 500 characters"):
        call_command("rollback", "--target", "treatment", "--reason", too_long, stdout=StringIO())
    assert ServingStateChange.objects.count() == 2
    accepted = admin.post("/admin/switch-model", {**body, "reason": "x" * 500}, format="json")
    assert accepted.status_code == 200

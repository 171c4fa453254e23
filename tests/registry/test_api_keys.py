"""Named API keys: created once and stored hashed, scoped, revocable, and named as the actor of what they change."""

import hashlib
import json
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import Client, override_settings
from rest_framework.test import APIClient

from common.models import ApiKey
from registry.models import ServingStateChange

pytestmark = pytest.mark.django_db


def api_key(*args: str) -> str:
    out = StringIO()
    call_command("api_key", *args, stdout=out, stderr=StringIO())
    return out.getvalue()


def create(name: str, scope: str) -> str:
    return str(json.loads(api_key("create", name, "--scope", scope, "--json"))["key"])


def client(key: str) -> APIClient:
    keyed = APIClient()
    keyed.credentials(HTTP_X_API_KEY=key)
    return keyed


def switch(key: str, **headers: str) -> int:
    body = {"version": "v1.2.0", "target": "treatment", "reason": "canary"}
    return int(client(key).post("/admin/switch-model", body, format="json", **headers).status_code)


def test_a_key_is_printed_once_and_stored_only_as_its_hash(serving_env: Path) -> None:
    text = api_key("create", "ci-deploy", "--scope", "admin", "--actor", "alice")
    key = text.strip().splitlines()[-1]
    assert key.startswith("rk_") and len(key) > 40
    record = ApiKey.objects.get(name="ci-deploy")
    assert record.key_hash == hashlib.sha256(key.encode()).hexdigest()
    assert key not in json.dumps(list(ApiKey.objects.values()), default=str)
    listing = api_key("list")
    assert "ci-deploy" in listing and "admin" in listing and "alice" in listing and "never" in listing
    assert key not in listing and key not in api_key("list", "--json")


def test_a_switch_through_a_named_key_is_recorded_under_its_name_in_the_api_and_the_web_admin(
    versions: Path, staff_client: Client
) -> None:
    key = create("ci-deploy", "admin")
    assert switch(key) == 200
    assert switch(key, HTTP_X_ACTOR="alice") == 200
    assert list(ServingStateChange.objects.order_by("revision").values_list("actor", flat=True))[-2:] == [
        "ci-deploy",
        "alice via ci-deploy",
    ]
    history = client(key).get("/admin/serving-history").json()
    assert [change["actor"] for change in history["changes"][:2]] == ["alice via ci-deploy", "ci-deploy"]
    page = staff_client.get("/admin/ui/registry/servingstatechange/").content.decode()
    assert "alice via ci-deploy" in page
    assert ApiKey.objects.get(name="ci-deploy").last_used_at is not None


def test_a_revoked_key_gets_401_at_once(versions: Path) -> None:
    key = create("laptop", "admin")
    assert switch(key) == 200
    assert "Revoked 'laptop'" in api_key("revoke", "laptop")
    response = client(key).get("/admin/models")
    assert response.status_code == 401
    assert response.json()["error"] == "authentication_failed"
    assert "revoked" in api_key("list")


def test_a_key_reaches_only_what_its_scope_allows(serving_env: Path) -> None:
    traces = create("support", "traces")
    assert client(traces).get("/traces/no-such-request").status_code == 404
    refused = client(traces).get("/admin/models")
    assert refused.status_code == 403
    assert "scope traces" in refused.json()["message"]
    events = create("ride-app", "events")
    assert client(events).get("/traces/no-such-request").status_code == 403
    view = {"type": "view", "userId": "u1", "itemId": "dest-1", "ts": "2026-01-01T08:00:00Z"}
    assert APIClient().post("/events", view, format="json").status_code == 201  # events need no key by default
    with override_settings(EVENTS_REQUIRE_API_KEY=True):
        assert APIClient().post("/events", view, format="json").status_code == 401
        assert client(traces).post("/events", view, format="json").status_code == 403
        assert client(events).post("/events", {**view, "userId": "u2"}, format="json").status_code == 201


def test_without_any_key_the_answer_says_how_to_create_one(serving_env: Path) -> None:
    with override_settings(MODEL_ADMIN_API_KEY=""):
        response = client("rk_whatever").get("/admin/models")
        assert response.status_code == 503
        assert "manage.py api_key create NAME --scope admin" in response.json()["message"]
        key = create("first", "admin")
        assert client(key).get("/admin/models").status_code == 200  # no restart needed


def test_bad_names_scopes_and_duplicates_are_refused(serving_env: Path) -> None:
    create("ops", "admin")
    for args, message in [
        (("create", "ops", "--scope", "admin"), "key_exists"),
        (("create", "Bad Name", "--scope", "admin"), "lowercase letters"),
        (("create", "env", "--scope", "admin"), "MODEL_ADMIN_API_KEY"),
        (("revoke", "nobody"), "No key named 'nobody'"),
    ]:
        with pytest.raises(CommandError, match=message):
            api_key(*args)


def test_the_first_local_run_creates_an_admin_key_once(serving_env: Path) -> None:
    with override_settings(MODEL_ADMIN_API_KEY=""):
        out = StringIO()
        call_command("bootstrap", "--no-demo", "--local-admin-key", stdout=out, stderr=StringIO())
        printed = [line for line in out.getvalue().splitlines() if line.startswith("API key: created admin key")]
        assert len(printed) == 1
        key = printed[0].rsplit(" ", 1)[-1]
        assert client(key).get("/admin/models").status_code == 200
        again = StringIO()
        call_command("bootstrap", "--no-demo", "--local-admin-key", stdout=again, stderr=StringIO())
        assert "API key: an admin key exists" in again.getvalue()
        assert ApiKey.objects.count() == 1


def test_the_web_admin_creates_a_key_shown_once_and_revokes_it(serving_env: Path, staff_client: Client) -> None:
    response = staff_client.post("/admin/ui/common/apikey/add/", {"name": "grafana", "scope": "traces"}, follow=True)
    page = response.content.decode()
    assert "Created traces key &#x27;grafana&#x27;" in page
    key = page.split("store it now: ")[1].split("<")[0].strip()
    assert ApiKey.objects.get(name="grafana").key_hash == hashlib.sha256(key.encode()).hexdigest()
    listing = staff_client.get("/admin/ui/common/apikey/").content.decode()
    assert "grafana" in listing and key not in listing
    record = ApiKey.objects.get(name="grafana")
    staff_client.post(
        "/admin/ui/common/apikey/", {"action": "revoke", "_selected_action": [str(record.pk)]}, follow=True
    )
    assert ApiKey.objects.get(name="grafana").revoked_by == "ops"
    assert client(key).get("/traces/x").status_code == 401

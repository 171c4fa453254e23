"""The Django admin: every collection is listed for staff, read-only where it is evidence, closed to anonymous users."""

from datetime import UTC, datetime
from pathlib import Path

import pytest
from django.test import Client

from recommendations.models import RawEvent
from registry.models import ModelVersion, ServingState, ServingStateChange
from tracing.models import PredictionTrace

pytestmark = pytest.mark.django_db
NOW = datetime(2026, 11, 26, tzinfo=UTC)
CHANGELISTS = [
    "/admin/ui/recommendations/rawevent/",
    "/admin/ui/registry/modelversion/",
    "/admin/ui/registry/servingstate/",
    "/admin/ui/registry/servingstatechange/",
    "/admin/ui/tracing/predictiontrace/",
]


@pytest.fixture
def one_of_each() -> None:
    RawEvent.objects.create(type="view", user_id="u1", item_id="dest-1", ts=NOW, received_at=NOW)
    ModelVersion.objects.create(
        model_name="rec-engine",
        version="v1.0.0",
        version_key=1_000_000_000_000,
        algorithm="popularity",
        data_snapshot_id="snap-1",
        pipeline_git_sha="abc123",
        container_image_digest="sha256:00",
        artifact_uri="file:///tmp/v1.0.0",
        trained_at=NOW,
        created_at=NOW,
    )
    ServingState.objects.create(control_version="v1.0.0", updated_at=NOW, updated_by="ops")
    ServingStateChange.objects.create(revision=1, changed_at=NOW, actor="ops", action="switch", target="control")
    PredictionTrace.objects.create(
        request_id="req-1",
        user_id="u1",
        variant="control",
        model_version="v1.0.0",
        artifact_sha256="0" * 64,
        serving_revision=1,
        data_snapshot_id="snap-1",
        pipeline_git_sha="abc123",
        container_image_digest="sha256:00",
        latency_ms=1.5,
        created_at=NOW,
    )


@pytest.mark.parametrize("url", CHANGELISTS)
def test_staff_see_each_changelist_with_its_rows(staff_client: Client, one_of_each: None, url: str) -> None:
    response = staff_client.get(url)
    assert response.status_code == 200
    assert "1 " in response.content.decode()  # "1 raw event", "1 model version", ...


@pytest.mark.parametrize("url", CHANGELISTS)
def test_anonymous_users_are_sent_to_the_login_page(url: str) -> None:
    response = Client().get(url)
    assert response.status_code == 302
    assert response["Location"].startswith("/admin/ui/login/")


@pytest.mark.parametrize("url", CHANGELISTS)
def test_nothing_can_be_added_through_the_admin(staff_client: Client, url: str) -> None:
    assert staff_client.get(f"{url}add/").status_code == 403


def test_history_records_open_read_only(staff_client: Client, one_of_each: None) -> None:
    change = ServingStateChange.objects.get()
    response = staff_client.get(f"/admin/ui/registry/servingstatechange/{change.pk}/change/")
    assert response.status_code == 200
    page = response.content.decode()
    assert 'name="_save"' not in page
    assert staff_client.post(f"/admin/ui/registry/servingstatechange/{change.pk}/delete/").status_code == 403
    assert ServingStateChange.objects.count() == 1


def test_the_version_list_shows_metrics_and_who_serves_what(staff_client: Client, versions: Path) -> None:
    page = staff_client.get("/admin/ui/registry/modelversion/").content.decode().lower()
    for text in ("v1.0.0", "v1.1.0", "v1.2.0", "ndcg@10 (95% interval)", "recall@10", "map@10", "coverage@10"):
        assert text in page
    for text in ("popularity ndcg@10 (without seen)", "vs the stronger baseline", "control", "treatment"):
        assert text in page
    gate = ModelVersion.objects.get(version="v1.0.0").metrics["gate"]
    verdict = "better" if gate["passes"] else "not better"
    assert f"{verdict}: {gate['difference']} {gate['interval']} vs {gate['baseline']}".lower() in page


def test_serving_from_the_admin_confirms_with_a_reason_then_switches(staff_client: Client, versions: Path) -> None:
    pk = ModelVersion.objects.get(version="v1.2.0").pk
    form = {"action": "serve_as_treatment", "_selected_action": [str(pk)]}
    confirm = staff_client.post("/admin/ui/registry/modelversion/", form)
    assert confirm.status_code == 200
    assert "Serve v1.2.0 on the treatment variant" in confirm.content.decode()
    assert ServingState.objects.get().treatment_version == "v1.1.0"  # nothing changes before confirming
    done = staff_client.post("/admin/ui/registry/modelversion/", {**form, "confirm": "yes", "reason": "canary"})
    assert done.status_code == 302
    assert ServingState.objects.get().treatment_version == "v1.2.0"
    change = ServingStateChange.objects.get(revision=3)
    assert (change.actor, change.reason, change.target) == ("ops", "canary", "treatment")


def test_rollback_from_the_serving_state_page(staff_client: Client, versions: Path) -> None:
    pk = ServingState.objects.get().pk
    form = {"action": "rollback_treatment", "_selected_action": [str(pk)], "confirm": "yes", "reason": "bad"}
    assert staff_client.post("/admin/ui/registry/servingstate/", form).status_code == 302
    assert ServingState.objects.get().treatment_version is None
    assert ServingStateChange.objects.get(revision=3).action == "rollback"


def test_a_reason_over_the_limit_is_refused_on_the_page_not_cut_short(staff_client: Client, versions: Path) -> None:
    pk = ModelVersion.objects.get(version="v1.2.0").pk
    form = {"action": "serve_as_treatment", "_selected_action": [str(pk)], "confirm": "yes", "reason": "x" * 501}
    page = staff_client.post("/admin/ui/registry/modelversion/", form, follow=True).content.decode()
    assert "reason must be a string of at most 500 characters" in page
    assert ServingState.objects.get().treatment_version == "v1.1.0"
    assert ServingStateChange.objects.count() == 2

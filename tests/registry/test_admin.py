"""The Django admin: every collection is listed for staff, read-only where it is evidence, closed to anonymous users."""

from datetime import UTC, datetime

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

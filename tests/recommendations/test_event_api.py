"""POST /events: single events, batches, partial batches and the limits, against the real database."""

import json
from typing import Any

import pytest
from django.test import override_settings
from rest_framework.test import APIClient

from recommendations.models import RawEvent

pytestmark = pytest.mark.django_db


def post(client: APIClient, body: Any) -> Any:
    return client.post("/events", data=json.dumps(body), content_type="application/json")


def view(user: str = "u1", item: str = "dest-1") -> dict[str, str]:
    return {"type": "view", "userId": user, "itemId": item, "ts": "2026-01-01T08:00:00Z"}


def test_one_event_is_stored_with_the_blueprint_field_names(api_client: APIClient) -> None:
    response = post(api_client, {**view(), "payload": {"screen": "home"}})
    assert response.status_code == 201
    assert response.json() == {"stored": 1, "duplicates": 0, "rejected": []}
    event = RawEvent.objects.get()
    assert (event.type, event.user_id, event.item_id, event.payload) == ("view", "u1", "dest-1", {"screen": "home"})
    assert event.ts.isoformat() == "2026-01-01T08:00:00+00:00"


def test_a_batch_is_stored_in_full(api_client: APIClient) -> None:
    response = post(api_client, [view(user=f"u{n}") for n in range(50)])
    assert response.status_code == 201
    assert response.json()["stored"] == 50
    assert RawEvent.objects.count() == 50


def test_a_retried_batch_is_stored_once_and_the_answer_says_so(api_client: APIClient) -> None:
    batch = [view(user=f"u{n}") for n in range(5)] + [view(user="u0")]  # the same event twice is two events
    assert post(api_client, batch).json()["stored"] == 6
    retried = post(api_client, batch)
    assert retried.status_code == 201
    assert (retried.json()["stored"], retried.json()["duplicates"]) == (0, 6)
    assert RawEvent.objects.count() == 6


def test_an_event_id_is_stored_once_across_batches(api_client: APIClient) -> None:
    assert (
        post(api_client, [{**view(), "eventId": "ride-1"}, {**view(user="u2"), "eventId": "ride-2"}]).status_code == 201
    )
    again = post(api_client, [{**view(user="u9"), "eventId": "ride-2"}, {**view(user="u3"), "eventId": "ride-3"}])
    assert (again.json()["stored"], again.json()["duplicates"]) == (1, 1)
    assert sorted(RawEvent.objects.values_list("event_id", flat=True)) == ["ride-1", "ride-2", "ride-3"]
    refused = post(api_client, {**view(), "eventId": ""})
    assert refused.status_code == 400
    assert refused.json()["details"]["rejected"][0]["errors"]["eventId"] == "must not be empty"


def test_events_without_a_time_sent_apart_are_two_events(api_client: APIClient) -> None:
    untimed = {"type": "view", "userId": "u1", "itemId": "dest-1"}
    post(api_client, untimed)
    post(api_client, untimed)
    assert RawEvent.objects.count() == 2


def test_a_partly_bad_batch_stores_the_valid_events_and_reports_each_bad_one(api_client: APIClient) -> None:
    response = post(api_client, [view(), {"type": "view", "userId": ""}, view(user="u2"), "nonsense"])
    assert response.status_code == 200
    body = response.json()
    assert body["stored"] == 2
    assert [item["index"] for item in body["rejected"]] == [1, 3]
    assert body["rejected"][0]["errors"]["userId"] == "must not be empty"
    assert RawEvent.objects.count() == 2


def test_an_invalid_single_event_is_a_400_with_the_error_body_and_stores_nothing(api_client: APIClient) -> None:
    response = post(api_client, {"type": "like", "userId": "u1"})
    assert response.status_code == 400
    body = response.json()
    assert body["error"] == "validation_error"
    assert "type" in body["details"]["rejected"][0]["errors"]
    assert RawEvent.objects.count() == 0


def test_an_empty_batch_is_refused(api_client: APIClient) -> None:
    response = post(api_client, [])
    assert response.status_code == 400
    assert response.json()["error"] == "validation_error"


@override_settings(EVENT_MAX_BATCH=10)
def test_a_batch_over_the_limit_is_refused_whole(api_client: APIClient) -> None:
    response = post(api_client, [view() for _ in range(11)])
    assert response.status_code == 400
    assert response.json()["error"] == "batch_too_large"
    assert response.json()["details"] == {"batchSize": 11, "limit": 10}
    assert RawEvent.objects.count() == 0


def test_the_default_batch_limit_is_one_thousand(api_client: APIClient) -> None:
    assert post(api_client, [view() for _ in range(1001)]).json()["error"] == "batch_too_large"
    response = post(api_client, [view(user=f"u{n}") for n in range(1000)])
    assert response.status_code == 201
    assert RawEvent.objects.count() == 1000

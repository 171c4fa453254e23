"""One JSON error body for every API error: no HTML, no traceback, no 500 on bad input."""

from typing import Any

import pytest
from django.test import Client, override_settings

pytestmark = pytest.mark.django_db


def assert_error_body(response: Any, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status
    assert response["Content-Type"].startswith("application/json")
    body: dict[str, Any] = response.json()
    assert set(body) == {"error", "message", "details"}
    assert body["error"] == code
    assert body["message"]
    return body


def test_malformed_json_is_a_400_malformed_json() -> None:
    response = Client().post("/events", data='{"type": "view",', content_type="application/json")
    body = assert_error_body(response, 400, "malformed_json")
    assert "Traceback" not in body["message"]


def test_a_json_value_of_the_wrong_type_is_a_400() -> None:
    response = Client().post("/events", data="42", content_type="application/json")
    assert_error_body(response, 400, "validation_error")


def test_a_non_json_content_type_is_a_415() -> None:
    response = Client().post("/events", data="type=view", content_type="application/x-www-form-urlencoded")
    assert_error_body(response, 415, "unsupported_media_type")


def test_an_unknown_route_is_a_json_404() -> None:
    assert_error_body(Client().get("/no/such/thing"), 404, "not_found")
    assert_error_body(Client().post("/recommendationz", data={}), 404, "not_found")


def test_a_wrong_method_is_a_405() -> None:
    assert_error_body(Client().get("/events"), 405, "method_not_allowed")


@override_settings(DATA_UPLOAD_MAX_MEMORY_SIZE=1024)
def test_a_body_over_the_size_limit_is_a_413_before_parsing() -> None:
    response = Client().post("/events", data='{"pad": "' + "x" * 2000 + '"}', content_type="application/json")
    body = assert_error_body(response, 413, "payload_too_large")
    assert body["details"] == {"limitBytes": 1024}


def test_an_unexpected_exception_is_a_500_with_the_error_body_and_no_traceback(monkeypatch: Any) -> None:
    def explode(**kwargs: Any) -> None:
        raise RuntimeError("secret internal detail")

    monkeypatch.setattr("recommendations.apis.raw_event_ingest", explode)
    response = Client(raise_request_exception=False).post(
        "/events", data='{"type": "view", "userId": "u", "itemId": "i"}', content_type="application/json"
    )
    body = assert_error_body(response, 500, "internal_error")
    assert "secret internal detail" not in response.content.decode()
    assert body["details"] == {}

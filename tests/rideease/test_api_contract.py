"""The API contract: the committed schema is the code's, every route is in it, the docs work offline, limits hold."""

import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from django.conf import settings
from django.core.cache import cache
from django.core.management import call_command
from django.test import Client, override_settings
from django.urls import URLPattern, URLResolver, get_resolver

from tests.conftest import ADMIN_KEY
from tests.servers import BASE_DIR

COMMITTED = BASE_DIR / "docs" / "openapi.yaml"
# Not part of the API: the web admin, the schema and docs pages themselves, static files.
NOT_API = ("admin/ui/", "api/", "static/")


def api_routes(patterns: list[Any], prefix: str = "") -> set[str]:
    """Every routed path of the project, with converters written as OpenAPI parameters ({name})."""
    routes: set[str] = set()
    for pattern in patterns:
        route = prefix + str(pattern.pattern)
        if isinstance(pattern, URLResolver):
            routes |= api_routes(pattern.url_patterns, route)
        elif isinstance(pattern, URLPattern):
            routes.add("/" + re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", route))
    return {route for route in routes if not route.lstrip("/").startswith(NOT_API)}


def test_the_committed_schema_is_what_the_code_generates(tmp_path: Path) -> None:
    generated = tmp_path / "openapi.yaml"
    call_command("spectacular", "--file", str(generated), "--validate", "--fail-on-warn")
    assert generated.read_text() == COMMITTED.read_text(), "run `make schema` and commit docs/openapi.yaml"


def test_every_api_route_is_in_the_schema_with_the_error_body_and_the_admin_key() -> None:
    schema = yaml.safe_load(COMMITTED.read_text())
    assert set(schema["paths"]) == api_routes(get_resolver().url_patterns)
    admin_key = {"type": "apiKey", "in": "header", "name": "X-API-Key"}
    assert schema["components"]["securitySchemes"]["AdminApiKey"] == admin_key
    for path, operations in schema["paths"].items():
        for method, operation in operations.items():
            # The admin API and traces need the key; experiments only for writes.
            secured = path.startswith(("/admin/", "/traces/")) or (path.startswith("/experiments") and method != "get")
            assert (operation.get("security") == [{"AdminApiKey": []}]) == secured, f"{method} {path}"
            errors = {status: answer for status, answer in operation["responses"].items() if status >= "400"}
            assert errors or path in ("/healthz",), f"{method} {path} documents no error"
            for status, answer in errors.items():
                refs = [media["schema"].get("$ref") for media in answer["content"].values()]
                assert refs == ["#/components/schemas/Error"], f"{method} {path} {status}"


def test_the_docs_page_loads_every_asset_from_this_service() -> None:
    client = Client()
    response = client.get("/api/docs/")
    assert response.status_code == 200
    html = response.content.decode()
    assets = re.findall(r'(?:src|href)="([^"]+)"', html)
    assert assets, "the page loads no script"
    assert not [url for url in assets if url.startswith(("http:", "https:", "//"))], "the page needs the internet"
    for url in assets:
        assert client.get(url).status_code == 200, url
    assert "/api/schema/" in html


def test_the_schema_is_served_as_yaml_and_as_json() -> None:
    client = Client()
    as_yaml = client.get("/api/schema/")
    as_json = client.get("/api/schema/?format=json")
    assert as_yaml.status_code == as_json.status_code == 200
    assert yaml.safe_load(as_yaml.content) == as_json.json() == yaml.safe_load(COMMITTED.read_text())


@pytest.mark.django_db
@override_settings(DATA_UPLOAD_MAX_MEMORY_SIZE=2048, MODEL_ADMIN_API_KEY=ADMIN_KEY)
@pytest.mark.parametrize("path", ["/events", "/recommendations", "/admin/switch-model", "/admin/rollback"])
def test_every_body_over_the_limit_is_a_413_before_anything_reads_it(path: str) -> None:
    body = '{"userId": "' + "x" * 4096 + '"}'
    response = Client().post(path, data=body, content_type="application/json", HTTP_X_API_KEY=ADMIN_KEY)
    assert response.status_code == 413
    assert response.json()["error"] == "payload_too_large"
    assert response.json()["details"] == {"limitBytes": 2048}


def post_event(client: Client, address: str) -> Any:
    event = '{"type": "view", "userId": "u", "itemId": "i"}'
    return client.post("/events", data=event, content_type="application/json", REMOTE_ADDR=address)


@pytest.mark.django_db
def test_rate_limits_are_off_by_default_and_when_set_answer_429_with_retry_after_per_client() -> None:
    client = Client()
    cache.clear()
    assert {post_event(client, "10.0.0.1").status_code for _ in range(12)} == {201}
    rates = {"events": "3/minute", "recommendations": None}
    with override_settings(REST_FRAMEWORK={**settings.REST_FRAMEWORK, "DEFAULT_THROTTLE_RATES": rates}):
        cache.clear()
        answers = [post_event(client, "10.0.0.1") for _ in range(4)]
        assert [answer.status_code for answer in answers] == [201, 201, 201, 429]
        assert answers[-1].json()["error"] == "rate_limited"
        assert 0 < int(answers[-1]["Retry-After"]) <= 60
        assert post_event(client, "10.0.0.2").status_code == 201, "another client has its own allowance"
    cache.clear()

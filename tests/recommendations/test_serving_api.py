"""/recommendations: validation, sticky variants, fallbacks, traces and exposures, request ids, /traces."""

import shutil
import time
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.core.cache import cache
from django.core.management import call_command
from django.test import RequestFactory, override_settings
from prometheus_client import REGISTRY
from rest_framework.test import APIClient

from core.assignment import variant_assign
from recommendations.apis import _query_parameters
from recommendations.models import RawEvent
from recommendations.runtime import serving_runtime
from tests.conftest import ADMIN_KEY
from tracing.models import PredictionTrace

pytestmark = pytest.mark.django_db


def wait_until(check: Any, timeout: float = 3.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.05)
    raise AssertionError("condition not met in time")


def train(*args: str) -> None:
    call_command("train", "--lookback-days", "20", *args, stdout=StringIO(), stderr=StringIO())


@pytest.fixture
def two_variants(serving_env: Path) -> Path:
    args = ["--users", "300", "--items", "60", "--days", "20", "--events", "6000", "--seed", "5"]
    call_command("seed_demo", *args, stdout=StringIO(), stderr=StringIO())
    train("--promote", "control")
    train("--algorithm", "svd", "--promote", "treatment")
    return serving_env


def written(request_id: str) -> tuple[PredictionTrace, dict[str, Any]]:
    """The trace and the exposure's payload of one answer, once the background writer has inserted both."""
    exposures = RawEvent.objects.filter(type="recommend", payload__requestId=request_id)
    wait_until(lambda: PredictionTrace.objects.filter(request_id=request_id).exists() and exposures.exists())
    return PredictionTrace.objects.get(request_id=request_id), exposures.get().payload


def prediction_errors(stage: str) -> float:
    return REGISTRY.get_sample_value("rideease_prediction_errors_total", {"stage": stage}) or 0.0


def prediction_count(variant: str, status: str) -> float:
    labels = {"variant": variant, "status": status}
    return REGISTRY.get_sample_value("rideease_prediction_requests_total", labels) or 0.0


def users_in(variant: str, count: int = 3) -> list[str]:
    users = [f"rider-{n:06d}" for n in range(300)]
    return [user for user in users if variant_assign(user, treatment_share=0.5) == variant][:count]


def test_get_and_post_give_the_same_answer(two_variants: Path, api_client: APIClient) -> None:
    user = users_in("control")[0]
    got = api_client.get("/recommendations", {"userId": user, "limit": 5})
    posted = api_client.post("/recommendations", {"userId": user, "limit": 5}, format="json")
    assert got.status_code == posted.status_code == 200
    for body in (got.json(), posted.json()):
        assert set(body) == {
            "requestId",
            "userId",
            "variant",
            "modelVersion",
            "dataSnapshotId",
            "recommendations",
            "servedAt",
        }
    assert got.json()["recommendations"] == posted.json()["recommendations"]
    assert len(got.json()["recommendations"]) == 5
    assert got["X-Request-ID"] == got.json()["requestId"]
    assert got.json()["requestId"] != posted.json()["requestId"]


def test_each_variant_is_served_by_its_own_version(two_variants: Path, api_client: APIClient) -> None:
    for variant, version in (("control", "v1.0.0"), ("treatment", "v1.1.0")):
        for user in users_in(variant):
            body = api_client.get("/recommendations", {"userId": user}).json()
            assert (body["variant"], body["modelVersion"]) == (variant, version)
            assert len(body["recommendations"]) == 10


def test_unknown_riders_are_served_too(two_variants: Path, api_client: APIClient) -> None:
    response = api_client.get("/recommendations", {"userId": "brand-new-rider", "limit": 3})
    assert response.status_code == 200
    assert len(response.json()["recommendations"]) == 3


@pytest.mark.parametrize(
    "params",
    [
        {},
        {"userId": ""},
        {"userId": "   "},
        {"userId": "u" * 129},
        {"userId": "u1", "limit": "0"},
        {"userId": "u1", "limit": "101"},
        {"userId": "u1", "limit": "ten"},
        {"userId": "u1", "limit": "1.5"},
        {"userId": "u1", "colour": "red"},
    ],
)
def test_bad_query_parameters_are_a_400(serving_env: Path, api_client: APIClient, params: dict[str, str]) -> None:
    response = api_client.get("/recommendations", params)
    assert response.status_code == 400
    assert response.json()["error"] == "validation_error"


def test_query_strings_are_read_as_django_reads_them(two_variants: Path, api_client: APIClient) -> None:
    answer = api_client.get("/recommendations?userId=caf%C3%A9+%26+co&limit=2&limit=3")
    assert answer.status_code == 200
    assert (answer.json()["userId"], len(answer.json()["recommendations"])) == ("café & co", 3), "the last value wins"
    crowded = api_client.get("/recommendations?userId=u1&" + "&".join(f"x{n}=1" for n in range(1000)))
    assert (crowded.status_code, crowded.json()["error"]) == (400, "validation_error")


@pytest.mark.parametrize(
    "query",
    ["", "userId=u1&limit=2", "userId=u1&&limit=2&limit=3&", "userId&limit=", "userId=a=b", "=x&userId=%41+b", "a+b=c"],
)
def test_query_parameters_match_djangos_own_reading(query: str) -> None:
    request = RequestFactory().get(f"/recommendations?{query}")
    assert _query_parameters(request) == request.GET.dict()


@pytest.mark.parametrize(
    "body",
    [
        {"userId": 42},
        {"userId": True},
        {"userId": ["u"]},
        {"userId": "u1", "limit": True},
        {"userId": "u1", "limit": -1},
    ],
)
def test_bad_json_bodies_are_a_400(serving_env: Path, api_client: APIClient, body: dict[str, object]) -> None:
    response = api_client.post("/recommendations", body, format="json")
    assert response.status_code == 400
    assert response.json()["error"] == "validation_error"


@pytest.mark.parametrize(
    ("content_type", "data", "status", "code"),
    [
        ("application/json", '{"userId": "u1",', 400, "malformed_json"),
        ("application/json", '{"userId": "u1", "limit": NaN}', 400, "malformed_json"),
        ("application/json", b'{"userId": "\xff"}', 400, "malformed_json"),
        ("application/json", '["u1", 10]', 400, "validation_error"),
        ("application/json", "", 400, "validation_error"),
        ("text/plain", "userId=u1", 415, "unsupported_media_type"),
        ("application/x-www-form-urlencoded", "userId=u1", 415, "unsupported_media_type"),
    ],
)
def test_bodies_that_are_not_one_json_object_get_the_error_body(
    serving_env: Path, api_client: APIClient, content_type: str, data: str | bytes, status: int, code: str
) -> None:
    response = api_client.post("/recommendations", data, content_type=content_type)
    assert (response.status_code, response["Content-Type"]) == (status, "application/json")
    body = response.json()
    assert (set(body), body["error"]) == ({"error", "message", "details"}, code)


@pytest.mark.parametrize("method", ["put", "patch", "delete", "head", "options"])
def test_other_methods_are_a_405_naming_the_allowed_ones(serving_env: Path, api_client: APIClient, method: str) -> None:
    response = getattr(api_client, method)("/recommendations")
    assert response.status_code == 405
    assert response["Allow"] == "GET, POST"
    if method != "head":
        assert response.json()["error"] == "method_not_allowed"


def test_an_unexpected_failure_is_a_500_with_the_error_body_and_counted(
    two_variants: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def explode(**kwargs: Any) -> None:
        raise RuntimeError("secret internal detail")

    monkeypatch.setattr("recommendations.apis.recommendation_serve", explode)
    before = prediction_count("none", "error")
    response = APIClient(raise_request_exception=False).get("/recommendations", {"userId": "rider-000001"})
    assert response.status_code == 500
    assert response.json() == {"error": "internal_error", "message": "An unexpected error occurred.", "details": {}}
    assert prediction_count("none", "error") == before + 1


def test_a_rate_limit_answers_429_with_retry_after_per_client(serving_env: Path) -> None:
    client = APIClient()
    cache.clear()
    rates = {"events": None, "recommendations": "2/minute"}
    with override_settings(REST_FRAMEWORK={**settings.REST_FRAMEWORK, "DEFAULT_THROTTLE_RATES": rates}):
        answers = [client.get("/recommendations", {"userId": "u1"}, REMOTE_ADDR="10.0.0.1") for _ in range(3)]
        assert [answer.status_code for answer in answers] == [503, 503, 429]
        assert answers[-1].json()["error"] == "rate_limited"
        assert 0 < int(answers[-1]["Retry-After"]) <= 60
        other = client.get("/recommendations", {"userId": "u1"}, REMOTE_ADDR="10.0.0.2")
        assert other.status_code == 503, "another client has its own allowance"
    cache.clear()


@pytest.mark.parametrize(("variant", "version"), [("control", "v1.0.0"), ("treatment", "v1.1.0")])
def test_a_served_request_leaves_a_complete_trace_and_one_exposure(
    two_variants: Path, api_client: APIClient, variant: str, version: str
) -> None:
    user = users_in(variant)[0]
    body = api_client.post("/recommendations", {"userId": user, "limit": 4}, format="json").json()
    wait_until(lambda: PredictionTrace.objects.filter(request_id=body["requestId"]).exists(), timeout=1.0)
    trace = PredictionTrace.objects.get(request_id=body["requestId"])
    assert (trace.user_id, trace.variant, trace.model_version) == (user, variant, version)
    assert trace.serving_revision == 2
    assert len(trace.artifact_sha256) == 64
    assert trace.data_snapshot_id == body["dataSnapshotId"]
    assert trace.pipeline_git_sha and trace.container_image_digest
    assert trace.recommendations == body["recommendations"]
    assert trace.metadata == {"limit": 4}
    assert trace.fallback_reason is None
    assert trace.latency_ms > 0
    # The writer inserts traces and exposures in two inserts: the exposure may land a moment after the trace.
    exposures = RawEvent.objects.filter(type="recommend", payload__requestId=body["requestId"])
    wait_until(exposures.exists, timeout=1.0)
    exposure = exposures.get()
    # No `fallback` key: the variant's own model answered a rider it knows.
    assert exposure.payload == {
        "requestId": body["requestId"],
        "variant": variant,
        "modelVersion": version,
        "items": [item["itemId"] for item in body["recommendations"]],
        "latencyMs": trace.latency_ms,
    }


def test_a_client_request_id_is_used_once_and_refused_after(two_variants: Path, api_client: APIClient) -> None:
    user = users_in("control")[0]
    first = api_client.get("/recommendations", {"userId": user}, HTTP_X_REQUEST_ID="checkout-42")
    assert first.status_code == 200 and first.json()["requestId"] == "checkout-42"
    again = api_client.get("/recommendations", {"userId": "someone-else"}, HTTP_X_REQUEST_ID="checkout-42")
    assert again.status_code == 409
    assert again.json()["error"] == "request_id_in_use"
    wait_until(lambda: PredictionTrace.objects.filter(request_id="checkout-42").exists())
    later = api_client.get("/recommendations", {"userId": "someone-else"}, HTTP_X_REQUEST_ID="checkout-42")
    assert later.status_code == 409
    assert PredictionTrace.objects.get(request_id="checkout-42").user_id == user


@pytest.mark.parametrize("header", ["", "has space", "x" * 129, "-leading-dash", "semi;colon"])
def test_malformed_request_ids_are_refused(serving_env: Path, api_client: APIClient, header: str) -> None:
    response = api_client.get("/recommendations", {"userId": "u1"}, HTTP_X_REQUEST_ID=header)
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_request_id"


def test_without_a_serving_state_recommendations_and_readyz_are_503(serving_env: Path, api_client: APIClient) -> None:
    response = api_client.get("/recommendations", {"userId": "u1"})
    assert response.status_code == 503
    assert response.json()["error"] == "serving_unavailable"
    ready = api_client.get("/readyz")
    assert ready.status_code == 503
    assert "no model loaded: no serving state" in ready.json()["message"]


def test_an_unset_treatment_falls_back_to_control_and_the_trace_says_so(
    serving_env: Path, api_client: APIClient
) -> None:
    args = ["--users", "300", "--items", "60", "--days", "20", "--events", "4000"]
    call_command("seed_demo", *args, stdout=StringIO(), stderr=StringIO())
    train("--promote", "control")
    body = api_client.get("/recommendations", {"userId": users_in("treatment")[0]}).json()
    assert (body["variant"], body["modelVersion"]) == ("treatment", "v1.0.0")
    wait_until(lambda: PredictionTrace.objects.filter(request_id=body["requestId"]).exists())
    assert PredictionTrace.objects.get(request_id=body["requestId"]).fallback_reason == "treatment_unset"


def test_an_unloadable_treatment_falls_back_to_control(two_variants: Path, api_client: APIClient) -> None:
    # Gone from the store and from this machine's verified cache (the switch's check cached it).
    shutil.rmtree(two_variants / "registry" / "v1.1.0")
    shutil.rmtree(two_variants / "cache" / "v1.1.0")
    body = api_client.get("/recommendations", {"userId": users_in("treatment")[0]}).json()
    assert body["modelVersion"] == "v1.0.0"
    wait_until(lambda: PredictionTrace.objects.filter(request_id=body["requestId"]).exists())
    assert PredictionTrace.objects.get(request_id=body["requestId"]).fallback_reason == "treatment_unloadable"
    assert (
        api_client.get("/readyz").json()["checks"]["model"]["detail"].endswith("treatment none (treatment_unloadable)")
    )


@pytest.mark.parametrize("variant", ["control", "treatment"])
def test_an_unknown_riders_answer_and_exposure_say_cold_start(
    two_variants: Path, api_client: APIClient, variant: str
) -> None:
    strangers = (f"new-rider-{n}" for n in range(1000))
    user = next(rider for rider in strangers if variant_assign(rider, treatment_share=0.5) == variant)
    body = api_client.get("/recommendations", {"userId": user, "limit": 3}).json()
    trace, payload = written(body["requestId"])
    assert (payload["variant"], payload["modelVersion"]) == (variant, body["modelVersion"])
    assert payload["fallback"] == trace.fallback_reason == "cold_start"
    assert payload["latencyMs"] >= 0
    assert payload["latencyMs"] == trace.latency_ms, "the exposure and the trace record one latency"


def test_a_treatment_model_that_raises_is_answered_by_control_and_recorded_as_a_model_error(
    two_variants: Path, api_client: APIClient, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def explode(user_id: str, k: int) -> list[tuple[str, float]]:
        raise FloatingPointError("a broken treatment model")

    treatment = serving_runtime().snapshot.treatment
    assert treatment is not None and treatment.version == "v1.1.0"
    monkeypatch.setattr(treatment.model, "recommend", explode)
    errors_before, ok_before = prediction_errors("treatment_scoring"), prediction_count("treatment", "ok")
    user = users_in("treatment")[0]
    response = api_client.get("/recommendations", {"userId": user, "limit": 4})
    assert response.status_code == 200
    body = response.json()
    assert (body["variant"], body["modelVersion"], len(body["recommendations"])) == ("treatment", "v1.0.0", 4)
    control_answer = api_client.get("/recommendations", {"userId": users_in("control")[0]}).json()
    assert control_answer["modelVersion"] == "v1.0.0"
    trace, payload = written(body["requestId"])
    assert (payload["variant"], payload["modelVersion"], payload["fallback"]) == ("treatment", "v1.0.0", "model_error")
    assert trace.fallback_reason == "model_error"
    assert payload["latencyMs"] == trace.latency_ms
    assert prediction_errors("treatment_scoring") == errors_before + 1, "counted once, for the one failed scoring"
    assert prediction_count("treatment", "ok") == ok_before + 1, "and still an answered request"
    warnings = [record for record in caplog.records if "failed to score" in record.getMessage()]
    assert len(warnings) == 1 and warnings[0].levelname == "WARNING"
    assert "v1.1.0" in warnings[0].getMessage()


def test_a_control_model_that_raises_is_still_a_500(
    two_variants: Path, api_client: APIClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    def explode(user_id: str, k: int) -> list[tuple[str, float]]:
        raise FloatingPointError("a broken control model")

    control = serving_runtime().snapshot.control
    assert control is not None
    monkeypatch.setattr(control.model, "recommend", explode)
    before = prediction_count("none", "error")
    response = APIClient(raise_request_exception=False).get("/recommendations", {"userId": users_in("control")[0]})
    assert (response.status_code, response.json()["error"]) == (500, "internal_error")
    assert prediction_count("none", "error") == before + 1


def test_a_control_version_that_cannot_be_loaded_is_a_503_and_readyz_says_why(
    two_variants: Path, api_client: APIClient
) -> None:
    # A serving state exists, but this worker cannot load its control version: nothing is servable.
    shutil.rmtree(two_variants / "registry" / "v1.0.0")
    shutil.rmtree(two_variants / "cache" / "v1.0.0")
    for variant in ("control", "treatment"):
        response = api_client.get("/recommendations", {"userId": users_in(variant)[0]})
        assert response.status_code == 503
        assert response.json()["error"] == "serving_unavailable"
    ready = api_client.get("/readyz")
    assert ready.status_code == 503
    assert "control version v1.0.0 cannot be loaded" in ready.json()["message"]


def test_traces_need_the_admin_key(two_variants: Path, api_client: APIClient) -> None:
    request_id = api_client.get("/recommendations", {"userId": users_in("control")[0]}).json()["requestId"]
    wait_until(lambda: PredictionTrace.objects.filter(request_id=request_id).exists())
    assert api_client.get(f"/traces/{request_id}").status_code == 401
    assert api_client.get(f"/traces/{request_id}", HTTP_X_API_KEY="wrong").status_code == 401
    response = api_client.get(f"/traces/{request_id}", HTTP_X_API_KEY=ADMIN_KEY)
    assert response.status_code == 200
    lineage = response.json()
    assert lineage["requestId"] == request_id
    assert lineage["model"]["version"] == "v1.0.0"
    assert set(lineage["model"]) >= {"trainingWindow", "dataSnapshotId", "pipelineGitSha", "metrics", "artifactUri"}
    listed = api_client.get("/admin/models", HTTP_X_API_KEY=ADMIN_KEY).json()["models"]
    assert lineage["model"] == next(row for row in listed if row["version"] == "v1.0.0"), "one record, one shape"
    missing = api_client.get("/traces/no-such-request", HTTP_X_API_KEY=ADMIN_KEY)
    assert (missing.status_code, missing.json()["error"]) == (404, "trace_not_found")
    assert ADMIN_KEY not in response.content.decode()


def test_traces_are_disabled_without_a_configured_key(serving_env: Path, api_client: APIClient) -> None:
    with override_settings(MODEL_ADMIN_API_KEY=""):
        response = api_client.get("/traces/anything", HTTP_X_API_KEY="")
    assert response.status_code == 503
    assert response.json()["error"] == "admin_api_disabled"

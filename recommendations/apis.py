"""HTTP API for events and recommendations."""

import math
import re
import time
from typing import Any
from urllib.parse import parse_qsl

import orjson
from django.conf import settings
from django.core.handlers.wsgi import get_bytes_from_wsgi
from django.http import HttpRequest, HttpResponse
from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from common.auth import EventsApiKey
from common.errors import DATABASE_ERRORS, error_response, unexpected_error_response
from common.schema import error_responses
from common.throttling import ClientRateThrottle
from core.errors import ApplicationError
from core.metrics import MODEL_ERROR
from monitoring.metrics import PREDICTION_ERRORS, PREDICTION_LATENCY, PREDICTION_REQUESTS, VARIANT_LABELS
from recommendations.queries import recommendation_query_parse
from recommendations.runtime import serving_runtime, trace_writer
from recommendations.selectors import request_id_in_use
from recommendations.serializers import (
    EVENTS_REQUEST,
    EventIngestOutputSerializer,
    RecommendationInputSerializer,
    RecommendationOutputSerializer,
)
from recommendations.services import prediction_records, raw_event_ingest, recommendation_serve, rounded
from tracing.request_ids import request_id_new

REQUEST_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$")
REQUEST_ID_HEADER = OpenApiParameter(
    "X-Request-ID",
    OpenApiTypes.STR,
    OpenApiParameter.HEADER,
    description="Your own id for this request (1-128 of letters, digits and . _ : -, starting with a letter or "
    "digit); 409 if another request already used it. Without it, the service makes one.",
    pattern=REQUEST_ID.pattern,
)
RECOMMENDATION_RESPONSES = {
    200: OpenApiResponse(
        RecommendationOutputSerializer,
        description="The recommendations; X-Request-ID carries the request id (the trace's key).",
    ),
    **error_responses(400, 409, 429, 503),
}


class EventIngestApi(APIView):
    """POST /events: one event (a JSON object) or a batch (a JSON array of up to EVENT_MAX_BATCH events).

    Valid events are stored even when others in the batch are rejected; the answer says how many were stored, how many
    were already stored (same eventId: a retry), and per rejected event its index and why. 201 when no event was
    rejected, 200 when some were, 400 when all were.
    """

    permission_classes = [EventsApiKey]
    throttle_classes = [ClientRateThrottle]
    throttle_scope = "events"

    @extend_schema(
        operation_id="events_ingest",
        summary="Store one event or a batch",
        request=EVENTS_REQUEST,
        responses={
            201: OpenApiResponse(
                EventIngestOutputSerializer, description="Every event is stored (now, or before: `duplicates`)."
            ),
            200: OpenApiResponse(EventIngestOutputSerializer, description="Some were stored; `rejected` says why not."),
            # 401, 403 and 503 only when EVENTS_REQUIRE_API_KEY is on.
            **error_responses(400, 401, 403, 413, 415, 429, 503),
        },
        tags=["events"],
    )
    def post(self, request: Request) -> Response:
        body = request.data
        raws = body if isinstance(body, list) else [body]
        if not raws:
            raise ApplicationError("validation_error", "The batch is empty.", details={"batchSize": 0})
        limit = settings.EVENT_MAX_BATCH
        if len(raws) > limit:
            raise ApplicationError(
                "batch_too_large",
                f"A batch holds at most {limit} events; this one has {len(raws)}.",
                details={"batchSize": len(raws), "limit": limit},
            )
        result = raw_event_ingest(raws=raws)
        body = EventIngestOutputSerializer(result).data
        if len(result.rejected) == len(raws):
            message = "The event is invalid." if len(raws) == 1 else "No event in the batch is valid."
            raise ApplicationError("validation_error", message, details=body)
        return Response(body, status=201 if not result.rejected else 200)


class RecommendationApi(APIView):
    """GET /recommendations?userId=..&limit=.. and POST /recommendations {userId, limit}: the same answer."""

    throttle_scope = "recommendations"
    METHODS = ("GET", "POST")

    # The hot path, so `dispatch` answers on Django's own request instead of running DRF's request cycle: its
    # Request wrapper, authentication, permission and negotiation steps and response rendering cost as much CPU as
    # scoring and tracing the answer. DRF still documents the endpoint from `get` and `post`, and every error leaves
    # as the project's JSON error body like everywhere else.
    def dispatch(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        started = time.perf_counter()
        try:
            throttle = ClientRateThrottle()
            if not throttle.allow_request(request, self):  # type: ignore[arg-type]  # reads only META
                raise _throttled(throttle.wait())
            if request.method not in self.METHODS:
                allow = {"Allow": ", ".join(self.METHODS)}
                message = f'Method "{request.method}" not allowed.'
                raise ApplicationError("method_not_allowed", message, status=405, headers=allow)
            handler = self.get if request.method == "GET" else self.post
            response, variant = handler(request, started=started)
        except ApplicationError as exc:
            PREDICTION_REQUESTS.labels(variant="none", status=_failure_status(exc.status)).inc()
            PREDICTION_ERRORS.labels(stage="validation" if exc.status < 500 else "serving").inc()
            return error_response(exc)
        except Exception:
            PREDICTION_REQUESTS.labels(variant="none", status="error").inc()
            PREDICTION_ERRORS.labels(stage="serving").inc()
            return unexpected_error_response(type(self).__name__)
        _SERVED[variant].inc()
        _LATENCY[variant].observe((time.perf_counter() - started) * 1000)
        return response

    @extend_schema(
        operation_id="recommendations_get",
        summary="Recommend items to a rider (query parameters)",
        parameters=[RecommendationInputSerializer, REQUEST_ID_HEADER],
        responses=RECOMMENDATION_RESPONSES,
        tags=["recommendations"],
    )
    def get(self, request: HttpRequest, *, started: float) -> tuple[HttpResponse, str]:
        return _answer(request, _query_parameters(request), from_query=True, started=started)

    @extend_schema(
        operation_id="recommendations_post",
        summary="Recommend items to a rider (JSON body)",
        request=RecommendationInputSerializer,
        parameters=[REQUEST_ID_HEADER],
        responses={**RECOMMENDATION_RESPONSES, **error_responses(413, 415)},
        tags=["recommendations"],
    )
    def post(self, request: HttpRequest, *, started: float) -> tuple[HttpResponse, str]:
        return _answer(request, _json_object(request), from_query=False, started=started)


# Resolved once: the label lookup is a measurable share of a request's cost.
_SERVED = {variant: PREDICTION_REQUESTS.labels(variant=variant, status="ok") for variant in VARIANT_LABELS}
_LATENCY = {variant: PREDICTION_LATENCY.labels(variant=variant) for variant in VARIANT_LABELS}
_TREATMENT_SCORING_ERRORS = PREDICTION_ERRORS.labels(stage="treatment_scoring")


def _failure_status(status: int) -> str:
    return "unavailable" if status == 503 else "invalid" if status < 500 else "error"


def _throttled(wait: float | None) -> ApplicationError:
    """The 429 of a client over its rate limit, worded as DRF words it for /events."""
    if wait is None:
        return ApplicationError("rate_limited", "Request was throttled.", status=429)
    seconds = math.ceil(wait)
    message = f"Request was throttled. Expected available in {seconds} seconds."
    return ApplicationError("rate_limited", message, status=429, headers={"Retry-After": str(seconds)})


def _query_parameters(request: HttpRequest) -> dict[str, str]:
    """The query string as {name: last value}, as `request.GET.dict()` gives it without building a QueryDict."""
    text = request.META.get("QUERY_STRING", "")
    if not text.isascii():  # WSGI hands over the raw bytes as latin-1: read them as Django does
        raw = get_bytes_from_wsgi(request.META, "QUERY_STRING", "")
        try:
            text = raw.decode()
        except UnicodeDecodeError:
            text = raw.decode("iso-8859-1")  # as Django reads a query string some client did not percent-encode
    most = settings.DATA_UPLOAD_MAX_NUMBER_FIELDS
    if most is not None and text.count("&") >= most:  # as parse_qsl counts its fields
        raise ApplicationError("validation_error", "The query string has too many parameters.")
    if "%" in text or "+" in text:
        return dict(parse_qsl(text, keep_blank_values=True))
    # Nothing to decode, as in almost every request: split it as parse_qsl does, without its decoding passes.
    pairs = (pair.partition("=") for pair in text.split("&") if pair)
    return {name: value for name, _, value in pairs}


def _json_object(request: HttpRequest) -> dict[str, Any]:
    """The JSON object in the body: 415 for another media type, 400 for anything but a JSON object."""
    body = request.body
    if not body:
        return {}  # as DRF reads it: no data, so the fields are missing
    if request.content_type != "application/json":
        given = request.META.get("CONTENT_TYPE", "")
        raise ApplicationError("unsupported_media_type", f'Unsupported media type "{given}" in request.', status=415)
    try:
        data = orjson.loads(body)  # strict: UTF-8 only, no NaN or Infinity
    except orjson.JSONDecodeError as exc:
        raise ApplicationError("malformed_json", f"The request body is not valid JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise ApplicationError("validation_error", "The body must be a JSON object {userId, limit}.")
    return data


def _answer(request: HttpRequest, raw: dict[str, Any], *, from_query: bool, started: float) -> tuple[HttpResponse, str]:
    query = recommendation_query_parse(raw, from_query=from_query)
    if isinstance(query, dict):
        raise ApplicationError("validation_error", "The request is invalid.", details={"fields": query})
    request_id, metadata = _request_id(request)
    metadata["limit"] = query.limit
    served = recommendation_serve(
        user_id=query.user_id,
        limit=query.limit,
        request_id=request_id,
        snapshot=serving_runtime().snapshot,
        now=timezone.now(),
    )
    if served.fallback_reason == MODEL_ERROR:  # answered all the same, by control: counted, not a failed request
        _TREATMENT_SCORING_ERRORS.inc()
    recommendations = [{"itemId": item, "score": rounded(score, 6)} for item, score in served.items]
    body = {
        "requestId": served.request_id,
        "userId": served.user_id,
        "variant": served.variant,
        "modelVersion": served.model.version,
        "dataSnapshotId": served.model.data_snapshot_id,
        "recommendations": recommendations,
        "servedAt": served.served_at,  # orjson writes it as isoformat() does, without a Python call
    }
    latency_ms = (time.perf_counter() - started) * 1000
    trace_writer().submit(
        *prediction_records(served, recommendations=recommendations, latency_ms=latency_ms, metadata=metadata)
    )
    response = HttpResponse(orjson.dumps(body), content_type="application/json")
    response["X-Request-ID"] = served.request_id
    if "clientRequestId" in metadata:
        response["X-Client-Request-ID"] = metadata["clientRequestId"]
    return response, served.variant


def _request_id(request: HttpRequest) -> tuple[str, dict[str, Any]]:
    """The client's X-Request-ID when valid and unused; a fresh one when it cannot be checked."""
    given = request.META.get("HTTP_X_REQUEST_ID")
    if given is None:
        return request_id_new(), {}
    if not REQUEST_ID.match(given):
        raise ApplicationError(
            "invalid_request_id",
            "X-Request-ID must be 1-128 characters of letters, digits and . _ : - (starting with a letter or digit).",
        )
    try:
        in_use = request_id_in_use(request_id=given)
    except DATABASE_ERRORS:
        # Cannot tell whether it is taken: never risk merging two requests under one id.
        return request_id_new(), {"clientRequestId": given, "requestIdReplaced": "database unavailable to check it"}
    if in_use:
        raise ApplicationError(
            "request_id_in_use", f"X-Request-ID {given} was already used by another request.", status=409
        )
    return given, {}

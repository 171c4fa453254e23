"""HTTP API for user events."""

import os
import re
import time
from typing import Any

from django.conf import settings
from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from monitoring.metrics import PREDICTION_ERRORS, PREDICTION_LATENCY, PREDICTION_REQUESTS
from recommendations.queries import recommendation_query_parse
from recommendations.runtime import serving_runtime, trace_writer
from recommendations.serializers import (
    EVENTS_REQUEST,
    EventIngestOutputSerializer,
    RecommendationInputSerializer,
    RecommendationOutputSerializer,
)
from recommendations.services import prediction_records, raw_event_ingest, recommendation_serve
from rideease.errors import DATABASE_ERRORS, ApplicationError
from rideease.negotiation import SingleRepresentation
from rideease.schema import error_responses
from rideease.throttling import ClientRateThrottle
from tracing.selectors import request_id_in_use

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

    Valid events are stored even when others in the batch are rejected; the answer says how many were stored and,
    per rejected event, its index and why. 201 when all were stored, 200 when some were, 400 when none were.
    """

    throttle_classes = [ClientRateThrottle]
    throttle_scope = "events"

    @extend_schema(
        operation_id="events_ingest",
        summary="Store one event or a batch",
        request=EVENTS_REQUEST,
        responses={
            201: OpenApiResponse(EventIngestOutputSerializer, description="Every event was stored."),
            200: OpenApiResponse(EventIngestOutputSerializer, description="Some were stored; `rejected` says why not."),
            **error_responses(400, 413, 415, 429),
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
        rejected = [rejection.as_dict() for rejection in result.rejected]
        if result.stored == 0:
            message = "The event is invalid." if len(raws) == 1 else "No event in the batch is valid."
            raise ApplicationError("validation_error", message, details={"stored": 0, "rejected": rejected})
        status = 201 if not rejected else 200
        return Response({"stored": result.stored, "rejected": rejected}, status=status)


class RecommendationApi(APIView):
    """GET /recommendations?userId=..&limit=.. and POST /recommendations {userId, limit}: the same answer."""

    content_negotiation_class = SingleRepresentation
    throttle_classes = [ClientRateThrottle]
    throttle_scope = "recommendations"

    @extend_schema(
        operation_id="recommendations_get",
        summary="Recommend items to a rider (query parameters)",
        parameters=[RecommendationInputSerializer, REQUEST_ID_HEADER],
        responses=RECOMMENDATION_RESPONSES,
        tags=["recommendations"],
    )
    def get(self, request: Request) -> Response:
        return self._serve(request, request.query_params.dict(), from_query=True)

    @extend_schema(
        operation_id="recommendations_post",
        summary="Recommend items to a rider (JSON body)",
        request=RecommendationInputSerializer,
        parameters=[REQUEST_ID_HEADER],
        responses={**RECOMMENDATION_RESPONSES, **error_responses(413, 415)},
        tags=["recommendations"],
    )
    def post(self, request: Request) -> Response:
        if not isinstance(request.data, dict):
            raise ApplicationError("validation_error", "The body must be a JSON object {userId, limit}.")
        return self._serve(request, request.data, from_query=False)

    def _serve(self, request: Request, raw: dict[str, Any], *, from_query: bool) -> Response:
        started = time.perf_counter()
        try:
            response, variant = self._answer(request, raw, from_query=from_query, started=started)
        except ApplicationError as exc:
            status = "unavailable" if exc.status == 503 else "invalid" if exc.status < 500 else "error"
            PREDICTION_REQUESTS.labels(variant="none", status=status).inc()
            if status != "invalid":
                PREDICTION_ERRORS.labels(stage="serving").inc()
            else:
                PREDICTION_ERRORS.labels(stage="validation").inc()
            raise
        except Exception:
            PREDICTION_REQUESTS.labels(variant="none", status="error").inc()
            PREDICTION_ERRORS.labels(stage="serving").inc()
            raise
        PREDICTION_REQUESTS.labels(variant=variant, status="ok").inc()
        PREDICTION_LATENCY.labels(variant=variant).observe((time.perf_counter() - started) * 1000)
        return response

    def _answer(
        self, request: Request, raw: dict[str, Any], *, from_query: bool, started: float
    ) -> tuple[Response, str]:
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
            salt=settings.EXPERIMENT_SALT,
            now=timezone.now(),
        )
        body = {
            "requestId": served.request_id,
            "userId": served.user_id,
            "variant": served.variant,
            "modelVersion": served.model.version,
            "dataSnapshotId": served.model.data_snapshot_id,
            "recommendations": [{"itemId": item, "score": round(score, 6)} for item, score in served.items],
            "servedAt": served.served_at.isoformat(),
        }
        latency_ms = (time.perf_counter() - started) * 1000
        trace_writer().submit(*prediction_records(served, latency_ms=latency_ms, metadata=metadata))
        response = Response(body)
        response["X-Request-ID"] = served.request_id
        if "clientRequestId" in metadata:
            response["X-Client-Request-ID"] = metadata["clientRequestId"]
        return response, served.variant


def _fresh_request_id() -> str:
    """128 random bits in hex, like a uuid4's, for a quarter of its cost on the hot path."""
    return os.urandom(16).hex()


def _request_id(request: Request) -> tuple[str, dict[str, Any]]:
    """The client's X-Request-ID when valid and unused; a fresh one when it cannot be checked."""
    given = request.META.get("HTTP_X_REQUEST_ID")
    if given is None:
        return _fresh_request_id(), {}
    if not REQUEST_ID.match(given):
        raise ApplicationError(
            "invalid_request_id",
            "X-Request-ID must be 1-128 characters of letters, digits and . _ : - (starting with a letter or digit).",
        )
    try:
        in_use = request_id_in_use(request_id=given)
    except DATABASE_ERRORS:
        # Cannot tell whether it is taken: never risk merging two requests under one id.
        return _fresh_request_id(), {"clientRequestId": given, "requestIdReplaced": "database unavailable to check it"}
    if in_use:
        raise ApplicationError(
            "request_id_in_use", f"X-Request-ID {given} was already used by another request.", status=409
        )
    return given, {}

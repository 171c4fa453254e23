"""HTTP API for user events."""

from django.conf import settings
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from recommendations.services import raw_event_ingest
from rideease.errors import ApplicationError


class EventIngestApi(APIView):
    """POST /events: one event (a JSON object) or a batch (a JSON array of up to EVENT_MAX_BATCH events).

    Valid events are stored even when others in the batch are rejected; the answer says how many were stored and,
    per rejected event, its index and why. 201 when all were stored, 200 when some were, 400 when none were.
    """

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

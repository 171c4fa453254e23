"""HTTP API for prediction traces (admin key required: traces hold user ids)."""

from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from rideease.auth import AdminApiKey
from rideease.errors import ApplicationError
from tracing.selectors import prediction_trace_lineage


class TraceDetailApi(APIView):
    """GET /traces/<requestId>: the trace and the lineage of the model version that served it."""

    permission_classes = [AdminApiKey]

    def get(self, request: Request, request_id: str) -> Response:
        trace = prediction_trace_lineage(request_id=request_id)
        if trace is None:
            raise ApplicationError("trace_not_found", f"No trace for request {request_id}.", status=404)
        return Response(trace)

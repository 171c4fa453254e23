"""HTTP API for prediction traces (admin key required: traces hold user ids)."""

from drf_spectacular.utils import extend_schema
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from common.auth import TracesApiKey
from common.schema import admin_error_responses
from core.errors import ApplicationError
from tracing.selectors import prediction_trace_lineage
from tracing.serializers import TraceSerializer


class TraceDetailApi(APIView):
    """GET /traces/<requestId>: the trace and the lineage of the model version that served it."""

    permission_classes = [TracesApiKey]

    @extend_schema(
        operation_id="trace_detail",
        summary="The provenance of one served prediction",
        responses={200: TraceSerializer, **admin_error_responses(404)},
        tags=["traces"],
    )
    def get(self, request: Request, request_id: str) -> Response:
        trace = prediction_trace_lineage(request_id=request_id)
        if trace is None:
            raise ApplicationError("trace_not_found", f"No trace for request {request_id}.", status=404)
        return Response(TraceSerializer(trace).data)

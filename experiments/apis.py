"""HTTP API for experiment summaries."""

from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from experiments.selectors import EXPERIMENTS, experiment_summary
from experiments.serializers import ExperimentSummarySerializer, SummaryQuerySerializer
from rideease.errors import ApplicationError
from rideease.schema import error_responses


class ExperimentSummaryApi(APIView):
    """GET /experiments/<name>/summary?windowHours=24 (1..720): counts, statistics, decision and reasons."""

    @extend_schema(
        operation_id="experiment_summary",
        summary="Exposed and converted users per variant, the statistics and the decision",
        parameters=[
            OpenApiParameter("experiment", OpenApiTypes.STR, OpenApiParameter.PATH, enum=EXPERIMENTS),
            SummaryQuerySerializer,
        ],
        responses={200: ExperimentSummarySerializer, **error_responses(400, 404)},
        tags=["experiments"],
    )
    def get(self, request: Request, experiment: str) -> Response:
        raw = request.query_params.get("windowHours", "24")
        if not raw.isascii() or not raw.isdigit():
            raise ApplicationError("validation_error", "windowHours must be an integer from 1 to 720.")
        return Response(experiment_summary(experiment=experiment, hours=int(raw), now=timezone.now()))

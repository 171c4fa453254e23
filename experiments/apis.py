"""HTTP API for experiment summaries."""

from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from common.schema import error_responses
from experiments.selectors import EXPERIMENTS, experiment_summary
from experiments.serializers import (
    ExperimentSummarySerializer,
    SummaryQuerySerializer,
    experiment_summary_data,
    window_hours_parse,
)


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
        hours = window_hours_parse(request.query_params.get("windowHours"))
        summary = experiment_summary(experiment=experiment, hours=hours, now=timezone.now())
        return Response(experiment_summary_data(summary))

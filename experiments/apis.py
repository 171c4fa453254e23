"""HTTP API for experiment summaries."""

from django.utils import timezone
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from experiments.selectors import experiment_summary
from rideease.errors import ApplicationError


class ExperimentSummaryApi(APIView):
    """GET /experiments/<name>/summary?windowHours=24 (1..720): counts, statistics, decision and reasons."""

    def get(self, request: Request, experiment: str) -> Response:
        raw = request.query_params.get("windowHours", "24")
        if not raw.isascii() or not raw.isdigit():
            raise ApplicationError("validation_error", "windowHours must be an integer from 1 to 720.")
        return Response(experiment_summary(experiment=experiment, hours=int(raw), now=timezone.now()))

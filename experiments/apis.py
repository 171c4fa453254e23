"""HTTP API for experiments: records (reads open, writes with the admin key) and their summaries."""

from django.conf import settings
from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from common.auth import AdminApiKeyForWrites, request_actor
from common.schema import ACTOR_HEADER, admin_error_responses, error_responses
from common.serializers import api_field_names, body_parse
from core.errors import ApplicationError
from experiments.models import ExperimentStatus
from experiments.selectors import experiment_get, experiment_list, summary_read
from experiments.serializers import (
    ExperimentChangeSerializer,
    ExperimentCreateSerializer,
    ExperimentListSerializer,
    ExperimentSerializer,
    ExperimentStartSerializer,
    ExperimentStopSerializer,
    ExperimentSummarySerializer,
    SummaryQuerySerializer,
    experiment_data,
    experiment_summary_data,
    summary_query_parse,
)
from experiments.services import experiment_change, experiment_create, experiment_start, experiment_stop

KEY = OpenApiParameter("key", OpenApiTypes.STR, OpenApiParameter.PATH, description="The experiment's key.")
STATUS = OpenApiParameter(
    "status", OpenApiTypes.STR, OpenApiParameter.QUERY, enum=list(ExperimentStatus.values), required=False
)


class ExperimentListApi(APIView):
    """GET /experiments?status=: every experiment, newest first. POST /experiments: a new draft (admin key)."""

    permission_classes = [AdminApiKeyForWrites]

    @extend_schema(
        operation_id="experiments_list",
        summary="Experiments, newest first",
        parameters=[STATUS],
        responses={200: ExperimentListSerializer, **error_responses(400)},
        tags=["experiments"],
    )
    def get(self, request: Request) -> Response:
        status = request.query_params.get("status")
        if status is not None and status not in ExperimentStatus.values:
            raise ApplicationError("validation_error", f"status must be one of {', '.join(ExperimentStatus.values)}.")
        return Response(ExperimentListSerializer({"experiments": experiment_list(status=status)}).data)

    @extend_schema(
        operation_id="experiments_create",
        summary="Create a draft experiment",
        request=ExperimentCreateSerializer,
        parameters=[ACTOR_HEADER],
        responses={201: ExperimentSerializer, **admin_error_responses(400, 409, 413, 415)},
        tags=["experiments"],
    )
    def post(self, request: Request) -> Response:
        fields = body_parse(ExperimentCreateSerializer, request.data)
        with api_field_names(ExperimentCreateSerializer):
            info = experiment_create(fields=fields, actor=request_actor(request))
        return Response(experiment_data(info), status=201)


class ExperimentDetailApi(APIView):
    """GET /experiments/<key>; PATCH: edit a draft, or change a running one's versions, share or salt (new phase).

    Errors name the fields as the API does (treatmentShare, secondaryMetrics), whichever rule refused them.
    """

    permission_classes = [AdminApiKeyForWrites]

    @extend_schema(
        operation_id="experiments_get",
        summary="One experiment with its phases",
        parameters=[KEY],
        responses={200: ExperimentSerializer, **error_responses(404)},
        tags=["experiments"],
    )
    def get(self, request: Request, key: str) -> Response:
        return Response(experiment_data(experiment_get(key=key)))

    @extend_schema(
        operation_id="experiments_change",
        summary="Edit a draft, or start a running experiment's next phase",
        request=ExperimentChangeSerializer,
        parameters=[KEY, ACTOR_HEADER],
        responses={200: ExperimentSerializer, **admin_error_responses(400, 404, 409, 413, 415)},
        tags=["experiments"],
    )
    def patch(self, request: Request, key: str) -> Response:
        changes = body_parse(ExperimentChangeSerializer, request.data, partial=True)
        reason = changes.pop("reason", "")
        with api_field_names(ExperimentChangeSerializer):
            info = experiment_change(key=key, changes=changes, actor=request_actor(request), reason=reason)
        return Response(experiment_data(info))


class ExperimentStartApi(APIView):
    """POST /experiments/<key>/start {reason?}: serve its versions and share; exposures carry its key and phase."""

    permission_classes = [AdminApiKeyForWrites]

    @extend_schema(
        operation_id="experiments_start",
        summary="Start a draft experiment",
        request=ExperimentStartSerializer,
        parameters=[KEY, ACTOR_HEADER],
        responses={200: ExperimentSerializer, **admin_error_responses(400, 404, 409, 413, 415)},
        tags=["experiments"],
    )
    def post(self, request: Request, key: str) -> Response:
        body = body_parse(ExperimentStartSerializer, request.data)
        return Response(experiment_data(experiment_start(key=key, actor=request_actor(request), **body)))


class ExperimentStopApi(APIView):
    """POST /experiments/<key>/stop {result, reason?}: ship, roll back, or end it inconclusive or abandoned."""

    permission_classes = [AdminApiKeyForWrites]

    @extend_schema(
        operation_id="experiments_stop",
        summary="Stop an experiment with its result",
        request=ExperimentStopSerializer,
        parameters=[KEY, ACTOR_HEADER],
        responses={200: ExperimentSerializer, **admin_error_responses(400, 404, 409, 413, 415)},
        tags=["experiments"],
    )
    def post(self, request: Request, key: str) -> Response:
        body = body_parse(ExperimentStopSerializer, request.data)
        return Response(experiment_data(experiment_stop(key=key, actor=request_actor(request), **body)))


class ExperimentSummaryApi(APIView):
    """GET /experiments/<key>/summary?phase=&windowHours=: counts, statistics, decision and reasons.

    An experiment's key reads its current phase (or `phase`); the slot's name (rec-engine) reads the experiment
    running on it, or the last 24 hours when none runs; `windowHours` reads an ad-hoc window of hours on the slot.
    """

    @extend_schema(
        operation_id="experiment_summary",
        summary="Exposed and converted users per variant, the statistics and the decision",
        parameters=[
            OpenApiParameter("key", OpenApiTypes.STR, OpenApiParameter.PATH, description="An experiment or a slot."),
            SummaryQuerySerializer,
        ],
        responses={200: ExperimentSummarySerializer, **error_responses(400, 404, 409, 503)},
        tags=["experiments"],
    )
    def get(self, request: Request, key: str) -> Response:
        hours, phase = summary_query_parse(request.query_params)
        return Response(
            experiment_summary_data(
                summary_read(
                    key=key,
                    hours=hours,
                    phase_id=phase,
                    now=timezone.now(),
                    budget_seconds=settings.EXPERIMENT_SUMMARY_BUDGET_SECONDS,
                )
            )
        )

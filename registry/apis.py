"""The admin API: model versions, switching, rollback and the serving history (X-API-Key required)."""

from typing import Any

from drf_spectacular.utils import extend_schema
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from common.auth import AdminApiKey, request_actor
from common.schema import ACTOR_HEADER, admin_error_responses
from common.serializers import query_parse
from core.errors import ApplicationError
from registry.selectors import model_version_page, serving_history_page, serving_state_current
from registry.serializers import (
    ModelListOutputSerializer,
    PageQuerySerializer,
    RollbackInputSerializer,
    ServingHistoryOutputSerializer,
    ServingOutputSerializer,
    SwitchInputSerializer,
)
from registry.services import serving_state_rollback, serving_state_switch
from registry.versions import version_key


def _page_limit(request: Request) -> int:
    limit: int = query_parse(PageQuerySerializer, request.query_params)["limit"]
    return limit


def _body(request: Request, allowed: set[str]) -> dict[str, Any]:
    if not isinstance(request.data, dict):
        raise ApplicationError("validation_error", "The body must be a JSON object.")
    unknown = set(request.data) - allowed
    if unknown:
        raise ApplicationError("validation_error", "Unknown fields.", details={"fields": sorted(unknown)})
    return dict(request.data)


class AdminModelListApi(APIView):
    """GET /admin/models?limit=&cursor=: versions newest first, and the current serving state."""

    permission_classes = [AdminApiKey]

    @extend_schema(
        operation_id="admin_models_list",
        summary="Model versions, newest first, and the serving state",
        parameters=[PageQuerySerializer],
        responses={200: ModelListOutputSerializer, **admin_error_responses(400)},
        tags=["admin"],
    )
    def get(self, request: Request) -> Response:
        cursor = request.query_params.get("cursor")
        if cursor is not None:
            try:
                version_key(cursor)
            except ValueError as exc:
                raise ApplicationError("validation_error", f"cursor: {exc}") from exc
        models, next_cursor = model_version_page(limit=_page_limit(request), after=cursor)
        page = {"models": models, "nextCursor": next_cursor, "serving": serving_state_current()}
        return Response(ModelListOutputSerializer(page).data)


class AdminSwitchModelApi(APIView):
    """POST /admin/switch-model {version, target, treatmentShare?, reason?}."""

    permission_classes = [AdminApiKey]

    @extend_schema(
        operation_id="admin_switch_model",
        summary="Serve a version in a variant (or both), optionally with a new treatment share",
        request=SwitchInputSerializer,
        parameters=[ACTOR_HEADER],
        responses={200: ServingOutputSerializer, **admin_error_responses(400, 404, 409, 413, 415)},
        tags=["admin"],
    )
    def post(self, request: Request) -> Response:
        body = _body(request, {"version", "target", "treatmentShare", "reason"})
        version, target, share = body.get("version"), body.get("target"), body.get("treatmentShare")
        if not isinstance(version, str) or not isinstance(target, str):
            raise ApplicationError("validation_error", "version and target are required strings.")
        if share is not None and (isinstance(share, bool) or not isinstance(share, int | float)):
            raise ApplicationError("validation_error", "treatmentShare must be a number between 0 and 1.")
        state = serving_state_switch(
            version=version,
            target=target,
            actor=request_actor(request),
            reason=body.get("reason", ""),
            treatment_share=float(share) if share is not None else None,
        )
        return Response(ServingOutputSerializer({"serving": state}).data)


class AdminRollbackApi(APIView):
    """POST /admin/rollback {target, reason?}: the variant's previous version, from the history."""

    permission_classes = [AdminApiKey]

    @extend_schema(
        operation_id="admin_rollback",
        summary="Put a variant back on its previous version",
        request=RollbackInputSerializer,
        parameters=[ACTOR_HEADER],
        responses={200: ServingOutputSerializer, **admin_error_responses(400, 409, 413, 415)},
        tags=["admin"],
    )
    def post(self, request: Request) -> Response:
        body = _body(request, {"target", "reason"})
        target = body.get("target")
        if not isinstance(target, str):
            raise ApplicationError("validation_error", "target is required: control or treatment.")
        state = serving_state_rollback(target=target, actor=request_actor(request), reason=body.get("reason", ""))
        return Response(ServingOutputSerializer({"serving": state}).data)


class AdminServingHistoryApi(APIView):
    """GET /admin/serving-history?limit=&cursor=: the append-only change log, newest first."""

    permission_classes = [AdminApiKey]

    @extend_schema(
        operation_id="admin_serving_history",
        summary="The serving state's change log, newest first",
        parameters=[PageQuerySerializer],
        responses={200: ServingHistoryOutputSerializer, **admin_error_responses(400)},
        tags=["admin"],
    )
    def get(self, request: Request) -> Response:
        cursor = request.query_params.get("cursor")
        if cursor is not None and not cursor.isdigit():
            raise ApplicationError("validation_error", "cursor must be a revision number.")
        changes, next_cursor = serving_history_page(
            limit=_page_limit(request), before=int(cursor) if cursor is not None else None
        )
        return Response(ServingHistoryOutputSerializer({"changes": changes, "nextCursor": next_cursor}).data)

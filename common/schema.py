"""OpenAPI pieces every app shares: the error body, the admin key and the standard error answers."""

from typing import Any

from drf_spectacular.openapi import AutoSchema
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse
from rest_framework import serializers

from common.auth import ACTOR, AdminApiKey, AdminApiKeyForWrites, EventsApiKey

ACTOR_HELP = "Who asks (X-Actor header): an operator's name or a pipeline's id; recorded in the history."
ACTOR_HEADER = OpenApiParameter(
    "X-Actor", OpenApiTypes.STR, OpenApiParameter.HEADER, description=ACTOR_HELP, pattern=ACTOR.pattern
)

_MEANINGS = {
    400: "The input is invalid; `details` says which field and why.",
    401: "The X-API-Key header is missing, wrong or revoked.",
    403: "The key's scope does not reach this endpoint.",
    404: "No such object.",
    409: "Conflicts with the current state; re-read it and retry.",
    413: "The request body is larger than MAX_REQUEST_BODY_BYTES.",
    415: "The body is not application/json.",
    429: "Too many requests from this client (only when RATE_LIMIT_* is set); see Retry-After.",
    503: "Unavailable: see `message` (no servable model, admin API disabled, database down).",
}


class ErrorSerializer(serializers.Serializer):
    """The one error body of the API."""

    error = serializers.CharField(help_text="Machine-readable code, e.g. validation_error or serving_unavailable.")
    message = serializers.CharField(help_text="What went wrong, for people.")
    details = serializers.DictField(help_text="Structured context, e.g. the invalid fields.")


class ProjectAutoSchema(AutoSchema):
    """Security read from the code: the admin key wherever the AdminApiKey permission guards a view.

    A view may state its own with `openapi_security`. The schemes are declared in SPECTACULAR_SETTINGS.
    """

    def get_auth(self) -> list[dict[str, list[str]]]:
        stated: list[dict[str, list[str]]] | None = getattr(self.view, "openapi_security", None)
        if stated is not None:
            return stated
        guards = [guard for guard in self.view.permission_classes if isinstance(guard, type)]
        if any(issubclass(guard, EventsApiKey) for guard in guards):
            return [{"AdminApiKey": []}, {}]  # only when EVENTS_REQUIRE_API_KEY is on
        if any(issubclass(guard, AdminApiKeyForWrites) for guard in guards):
            return [] if self.method in ("GET", "HEAD", "OPTIONS") else [{"AdminApiKey": []}]
        if any(issubclass(guard, AdminApiKey) for guard in guards):
            return [{"AdminApiKey": []}]
        return []


def error_responses(*statuses: int) -> dict[int, OpenApiResponse]:
    """The error answers an operation documents, each with the error body."""
    return {status: OpenApiResponse(ErrorSerializer, description=_MEANINGS[status]) for status in statuses}


def admin_error_responses(*statuses: int) -> dict[int, OpenApiResponse]:
    """Errors of a keyed operation: its own plus 401 (wrong key), 403 (key of another scope), 503 (no key at all)."""
    return error_responses(*sorted({*statuses, 401, 403, 503}))


def closed_request_bodies(result: dict[str, Any], generator: Any, request: Any, public: bool) -> dict[str, Any]:
    """Schema hook: request bodies admit no extra fields, as the views refuse unknown fields with 400."""
    for name, schema in result.get("components", {}).get("schemas", {}).items():
        if name.endswith("Request") and schema.get("type") == "object":
            schema["additionalProperties"] = False
    return result

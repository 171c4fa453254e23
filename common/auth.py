"""The admin API key: required on /admin/* and /traces/*, compared in constant time, never logged or echoed."""

import hmac
import re
from typing import Any

from django.conf import settings
from rest_framework.permissions import SAFE_METHODS, BasePermission
from rest_framework.request import Request

from core.errors import ApplicationError

HEADER = "HTTP_X_API_KEY"


class AdminApiKey(BasePermission):
    """Allow a request whose X-API-Key equals MODEL_ADMIN_API_KEY; 503 when no key is configured, else 401."""

    def has_permission(self, request: Request, view: Any) -> bool:
        configured: str = settings.MODEL_ADMIN_API_KEY
        if not configured:
            raise ApplicationError(
                "admin_api_disabled", "admin API disabled: set MODEL_ADMIN_API_KEY to enable it.", status=503
            )
        given = request.META.get(HEADER, "")
        # compare_digest takes as long wherever the first difference is: the key cannot be guessed byte by byte.
        if not hmac.compare_digest(given.encode(), configured.encode()):
            raise ApplicationError("authentication_failed", "A valid X-API-Key header is required.", status=401)
        return True


class AdminApiKeyForWrites(AdminApiKey):
    """Reads are open; writes need the admin key."""

    def has_permission(self, request: Request, view: Any) -> bool:
        return request.method in SAFE_METHODS or super().has_permission(request, view)


ACTOR = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 ._@:-]{0,149}$")


def request_actor(request: Request) -> str:
    """Who asked: the X-Actor header when given (an operator's name, a pipeline's id), else "admin-api"."""
    given = request.META.get("HTTP_X_ACTOR")
    if given is None:
        return "admin-api"
    if not ACTOR.match(given):
        raise ApplicationError("validation_error", "X-Actor must be 1-150 letters, digits, spaces and . _ @ : -.")
    return str(given)

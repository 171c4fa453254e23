"""The admin API key: required on /admin/* and /traces/*, compared in constant time, never logged or echoed."""

import hmac
from typing import Any

from django.conf import settings
from rest_framework.permissions import BasePermission
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

"""API keys on requests: /admin/*, experiment changes and /traces/* need a key of the right scope; /events needs one
only when EVENTS_REQUIRE_API_KEY is on. Keys are never logged or echoed."""

import re
from typing import Any

from django.conf import settings
from rest_framework.permissions import SAFE_METHODS, BasePermission
from rest_framework.request import Request

from common.keys import ENV_KEY_NAME, KeyIdentity, api_key_identify, api_keys_configured, scope_allows
from common.models import KeyScope
from core.errors import ApplicationError

HEADER = "HTTP_X_API_KEY"


def request_identify(request: Request, needed: str) -> KeyIdentity:
    """The key on the request, if it may reach what `needed` guards; kept as `request.auth` for the actor.

    401 without a valid key, 403 with a key of another scope, 503 when no key exists at all.
    """
    given = request.META.get(HEADER, "")
    identity = api_key_identify(given) if given else None
    if identity is None:
        if not api_keys_configured():
            raise ApplicationError(
                "admin_api_disabled",
                "No API key is configured: create one with `manage.py api_key create NAME --scope admin` "
                "(or set MODEL_ADMIN_API_KEY).",
                status=503,
            )
        raise ApplicationError("authentication_failed", "A valid X-API-Key header is required.", status=401)
    if not scope_allows(identity, needed):
        raise ApplicationError(
            "permission_denied",
            f"The key {identity.name!r} has scope {identity.scope}; this needs a key of scope {needed} or admin.",
            status=403,
        )
    request.auth = identity
    return identity


class AdminApiKey(BasePermission):
    """Allow a request with an admin key."""

    scope = KeyScope.ADMIN

    def has_permission(self, request: Request, view: Any) -> bool:
        request_identify(request, self.scope)
        return True


class AdminApiKeyForWrites(AdminApiKey):
    """Reads are open; writes need an admin key."""

    def has_permission(self, request: Request, view: Any) -> bool:
        return request.method in SAFE_METHODS or super().has_permission(request, view)


class TracesApiKey(AdminApiKey):
    """Allow a request with a traces key (or an admin key)."""

    scope = KeyScope.TRACES


class EventsApiKey(AdminApiKey):
    """With EVENTS_REQUIRE_API_KEY on, allow a request with an events key (or an admin key); otherwise anyone."""

    scope = KeyScope.EVENTS

    def has_permission(self, request: Request, view: Any) -> bool:
        return not settings.EVENTS_REQUIRE_API_KEY or super().has_permission(request, view)


# Short enough that "<actor> via <key name>" fits the history's actor field.
ACTOR = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 ._@:-]{0,79}$")


def request_actor(request: Request) -> str:
    """Who acts, for the history: a named key's name ("alice via ci-deploy" when X-Actor says alice); with the shared
    key from MODEL_ADMIN_API_KEY, the X-Actor header (an operator's name, a pipeline's id) or "env"."""
    identity = request.auth if isinstance(request.auth, KeyIdentity) else KeyIdentity(ENV_KEY_NAME, KeyScope.ADMIN)
    given = request.META.get("HTTP_X_ACTOR")
    if given is not None and not ACTOR.match(given):
        raise ApplicationError("validation_error", "X-Actor must be 1-80 letters, digits, spaces and . _ @ : -.")
    if identity.name == ENV_KEY_NAME:
        return str(given or ENV_KEY_NAME)
    return f"{given} via {identity.name}" if given else identity.name

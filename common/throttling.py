"""Optional per-client rate limits for the public endpoints (off unless RATE_LIMIT_* is set)."""

from typing import Any, cast

from django.conf import settings
from django.http import HttpRequest
from rest_framework.request import Request
from rest_framework.throttling import ScopedRateThrottle


class ClientRateThrottle(ScopedRateThrottle):
    """DRF's scoped throttle, reading its rate when asked: DRF's own copy of the rates is frozen at import.

    Counts live in Django's default cache, which is per process unless a shared cache is configured. Clients are
    told apart by address only (the public endpoints have no users), which also works on a plain Django request.
    """

    def get_cache_key(self, request: Request | HttpRequest, view: Any) -> str:
        return self.cache_format % {"scope": self.scope, "ident": self.get_ident(request)}  # type: ignore[arg-type]

    def get_rate(self) -> str | None:
        rates = cast(dict[str, str | None], settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"])
        return rates.get(str(self.scope))

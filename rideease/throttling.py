"""Optional per-client rate limits for the public endpoints (off unless RATE_LIMIT_* is set)."""

from typing import cast

from django.conf import settings
from rest_framework.throttling import ScopedRateThrottle


class ClientRateThrottle(ScopedRateThrottle):
    """DRF's scoped throttle, reading its rate when asked: DRF's own copy of the rates is frozen at import.

    Counts live in Django's default cache, which is per process unless a shared cache is configured.
    """

    def get_rate(self) -> str | None:
        rates = cast(dict[str, str | None], settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"])
        return rates.get(str(self.scope))

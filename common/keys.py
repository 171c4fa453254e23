"""Named API keys: create, list and revoke them, and recognise the one a request carries.

A key is shown once when created and stored only as its SHA-256 (keys are 256 random bits, so a fast hash is as good
as a slow one). The key from MODEL_ADMIN_API_KEY keeps working as an admin key named `env`, compared in constant time.
"""

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.db import IntegrityError
from django.utils import timezone

from common.models import ApiKey, KeyScope
from core.errors import ApplicationError

KEY_PREFIX = "rk_"
ENV_KEY_NAME = "env"
SCOPES: tuple[str, ...] = tuple(KeyScope.values)
NAME = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")
# What each scope may reach: an admin key reaches everything.
GRANTS: dict[str, frozenset[str]] = {
    KeyScope.ADMIN: frozenset(SCOPES),
    KeyScope.TRACES: frozenset({KeyScope.TRACES}),
    KeyScope.EVENTS: frozenset({KeyScope.EVENTS}),
}
# Last use is recorded at most this often per key, so that a busy key does not write on every request.
LAST_USED_RESOLUTION = timedelta(minutes=1)


@dataclass(frozen=True)
class KeyIdentity:
    """Who a request's key belongs to: its name (recorded as the actor) and its scope."""

    name: str
    scope: str


def _digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def api_key_create(*, name: str, scope: str, created_by: str) -> tuple[ApiKey, str]:
    """Create a key; return its record and the key itself, which exists nowhere else afterwards."""
    if not NAME.match(name):
        raise ApplicationError("validation_error", "A key's name is 1-64 lowercase letters, digits and . _ -.")
    if name == ENV_KEY_NAME:
        raise ApplicationError("validation_error", f"{ENV_KEY_NAME!r} names the key from MODEL_ADMIN_API_KEY.")
    if scope not in SCOPES:
        raise ApplicationError("validation_error", f"scope must be one of {', '.join(SCOPES)}.")
    key = KEY_PREFIX + secrets.token_urlsafe(32)
    try:
        record = ApiKey.objects.create(
            name=name,
            scope=scope,
            key_hash=_digest(key),
            prefix=key[: len(KEY_PREFIX) + 6],
            created_at=timezone.now(),
            created_by=created_by,
        )
    except IntegrityError as exc:
        raise ApplicationError(
            "key_exists", f"A key named {name!r} exists (revoked keys keep their name); choose another.", status=409
        ) from exc
    return record, key


def api_key_list() -> list[ApiKey]:
    """Every key, active and revoked, by name."""
    return list(ApiKey.objects.order_by("name"))


def api_key_revoke(*, name: str, actor: str) -> ApiKey:
    """Revoke a key at once: its next request gets 401. Revoking a revoked key changes nothing."""
    record = ApiKey.objects.filter(name=name).first()
    if record is None:
        raise ApplicationError("not_found", f"No key named {name!r}.", status=404)
    if record.revoked_at is None:
        record.revoked_at, record.revoked_by = timezone.now(), actor
        record.save(update_fields=["revoked_at", "revoked_by"])
    return record


def api_keys_configured() -> bool:
    """Whether any key can be used: the environment's, or an active named one."""
    return bool(settings.MODEL_ADMIN_API_KEY) or ApiKey.objects.filter(revoked_at=None).exists()


def api_key_identify(given: str) -> KeyIdentity | None:
    """The active key `given` is, or None. Records when the key was last used."""
    configured: str = settings.MODEL_ADMIN_API_KEY
    # compare_digest takes as long wherever the first difference is: the key cannot be guessed byte by byte.
    if configured and hmac.compare_digest(given.encode(), configured.encode()):
        return KeyIdentity(ENV_KEY_NAME, KeyScope.ADMIN)
    if not given.startswith(KEY_PREFIX):
        return None
    digest = _digest(given)
    record = ApiKey.objects.filter(key_hash=digest, revoked_at=None).first()
    if record is None or not hmac.compare_digest(record.key_hash, digest):
        return None
    now = timezone.now()
    if record.last_used_at is None or now - record.last_used_at >= LAST_USED_RESOLUTION:
        ApiKey.objects.filter(pk=record.pk).update(last_used_at=now)
    return KeyIdentity(record.name, record.scope)


def scope_allows(identity: KeyIdentity, needed: str) -> bool:
    """Whether a key of the identity's scope may reach what `needed` guards."""
    return needed in GRANTS[identity.scope]

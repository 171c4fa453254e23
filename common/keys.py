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


def api_key_name_problem(name: str) -> str | None:
    """Why `name` cannot name a key, or None: the one rule for the command, the web admin and the service."""
    if not NAME.match(name):
        return "A key's name is 1-64 lowercase letters, digits and . _ -."
    if name == ENV_KEY_NAME:
        return f"{ENV_KEY_NAME!r} names the key from MODEL_ADMIN_API_KEY."
    return None


def api_key_create(*, name: str, scope: str, created_by: str) -> tuple[ApiKey, str]:
    """Create a key; return its record and the key itself, which exists nowhere else afterwards."""
    problem = api_key_name_problem(name)
    if problem:
        raise ApplicationError("validation_error", problem)
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
    # Looked up by its hash: the timing of the lookup tells nothing about the key itself.
    record = ApiKey.objects.filter(key_hash=_digest(given), revoked_at=None).first()
    if record is None:
        return None
    now = timezone.now()
    if record.last_used_at is None or now - record.last_used_at >= LAST_USED_RESOLUTION:
        ApiKey.objects.filter(pk=record.pk).update(last_used_at=now)
    return KeyIdentity(record.name, record.scope)


def api_key_local_ensure() -> tuple[str, str] | None:
    """For a local first run: when no admin key can be used, create one named `local` (or `local-N` when that name
    is taken by a revoked key) and return its name and key; otherwise None."""
    if settings.MODEL_ADMIN_API_KEY or ApiKey.objects.filter(scope=KeyScope.ADMIN, revoked_at=None).exists():
        return None
    taken = set(ApiKey.objects.values_list("name", flat=True))
    candidates = ("local", *(f"local-{n}" for n in range(2, len(taken) + 3)))
    name = next(candidate for candidate in candidates if candidate not in taken)
    _, key = api_key_create(name=name, scope=KeyScope.ADMIN, created_by="bootstrap")
    return name, key


def scope_allows(identity: KeyIdentity, needed: str) -> bool:
    """Whether a key of the identity's scope may reach what `needed` guards."""
    return needed in GRANTS[identity.scope]

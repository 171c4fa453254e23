"""Variant assignment: deterministic on SHA1 of the user id with an experiment salt (pure Python)."""

import hashlib

from core.variants import CONTROL, TREATMENT

DEFAULT_SALT = "rec-engine"
_SCALE = float(1 << 64)


def assignment_bucket(user_id: str, *, salt: str = DEFAULT_SALT) -> float:
    """Where the user falls in [0, 1): the first 8 bytes of SHA1(salt:userId) as a fraction.

    The salt keeps one experiment's split independent of another's; a user's bucket never changes, so raising the
    treatment share only moves users from control to treatment, never back.
    """
    digest = hashlib.sha1(f"{salt}:{user_id}".encode(), usedforsecurity=False).digest()
    return int.from_bytes(digest[:8], "big") / _SCALE


def variant_assign(user_id: str, *, treatment_share: float, salt: str = DEFAULT_SALT) -> str:
    """`treatment` when the user's bucket is below the treatment share, else `control`."""
    return TREATMENT if assignment_bucket(user_id, salt=salt) < treatment_share else CONTROL

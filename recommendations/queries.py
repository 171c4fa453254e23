"""Validation of a recommendation request's parameters (pure Python, shared by GET and POST).

Hand-written for the hot path: a DRF serializer per request costs many times what the checks themselves do.
"""

import re
from collections.abc import Mapping
from dataclasses import dataclass

from recommendations.events import MAX_ID_LENGTH

DEFAULT_LIMIT = 10
MAX_LIMIT = 100
_FIELDS = frozenset({"userId", "limit"})
_CONTROL_CHARACTER = re.compile(r"[\x00-\x1f]")


@dataclass(frozen=True)
class RecommendationQuery:
    user_id: str
    limit: int


def _user_id(value: object, errors: dict[str, str]) -> str:
    if not isinstance(value, str):
        errors["userId"] = "is required and must be a string"
        return ""
    stripped = value.strip()
    if not stripped or len(stripped) > MAX_ID_LENGTH or _CONTROL_CHARACTER.search(stripped):
        errors["userId"] = f"must be 1 to {MAX_ID_LENGTH} characters, without control characters"
    return stripped


def _limit(value: object, *, from_query: bool, errors: dict[str, str]) -> int:
    if value is None:
        return DEFAULT_LIMIT
    number: int | None = None
    if isinstance(value, int) and not isinstance(value, bool):
        number = value
    elif from_query and isinstance(value, str) and (digits := value.strip()).isascii() and digits.isdigit():
        number = int(digits)
    if number is None or not 1 <= number <= MAX_LIMIT:
        errors["limit"] = f"must be an integer from 1 to {MAX_LIMIT}"
        return DEFAULT_LIMIT
    return number


def recommendation_query_parse(raw: Mapping[str, object], *, from_query: bool) -> RecommendationQuery | dict[str, str]:
    """Validate {userId, limit}; query strings may carry the limit as digits, JSON must carry a number."""
    errors = {key: "unknown parameter" for key in raw if key not in _FIELDS}
    user_id = _user_id(raw.get("userId"), errors)
    limit = _limit(raw.get("limit"), from_query=from_query, errors=errors)
    return errors if errors else RecommendationQuery(user_id=user_id, limit=limit)

"""Validation of incoming user events: pure Python, shared by the API and `import_events`.

A hand-written validator rather than a DRF serializer per event, which would cost far more than the checks, and the
import command can use it without DRF.
"""

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from core.variants import VARIANTS

EVENT_TYPES = ("recommend", "view", "play", "book", "skip")
# Interactions with an item; a `recommend` event is an exposure to a list of items instead.
ITEM_EVENT_TYPES = frozenset({"view", "play", "book", "skip"})
MAX_ID_LENGTH = 128
MAX_RECOMMENDED_ITEMS = 100
EARLIEST_TS = datetime(2000, 1, 1, tzinfo=UTC)
EVENT_FIELDS = frozenset({"eventId", "type", "userId", "itemId", "ts", "payload"})


@dataclass(frozen=True)
class EventLimits:
    """Bounds applied to every event; set from settings by the callers."""

    max_payload_bytes: int = 4096
    max_future_seconds: int = 300


@dataclass(frozen=True)
class EventInput:
    """A validated event, ready to store."""

    type: str
    user_id: str
    ts: datetime
    item_id: str | None = None
    payload: dict[str, Any] = field(default_factory=dict)
    # The client's id for the event; without one, the writer derives it (see event_id_derive).
    event_id: str | None = None


@dataclass(frozen=True)
class EventRejection:
    """Why one event of a batch was refused: field name -> message."""

    index: int
    errors: dict[str, str]


def _check_id(value: object, name: str, errors: dict[str, str]) -> str | None:
    if not isinstance(value, str):
        errors[name] = "must be a string"
        return None
    stripped = value.strip()
    if not stripped:
        errors[name] = "must not be empty"
        return None
    if len(stripped) > MAX_ID_LENGTH:
        errors[name] = f"must be at most {MAX_ID_LENGTH} characters"
        return None
    if any(ord(ch) < 32 for ch in stripped):
        errors[name] = "must not contain control characters"
        return None
    return stripped


def parse_ts(value: object, *, now: datetime, limits: EventLimits) -> tuple[datetime | None, str | None]:
    """Parse an ISO-8601 time with a timezone; return (time, None) or (None, error message)."""
    if not isinstance(value, str):
        return None, "must be an ISO-8601 string such as 2026-11-26T07:30:00Z"
    try:
        parsed = datetime.fromisoformat(value.strip())
    except ValueError:
        return None, "is not a valid ISO-8601 time"
    if parsed.tzinfo is None:
        return None, "must include a timezone (Z or +HH:MM)"
    parsed = parsed.astimezone(UTC)
    if parsed > now + timedelta(seconds=limits.max_future_seconds):
        return None, f"is more than {limits.max_future_seconds} s in the future"
    if parsed < EARLIEST_TS:
        return None, "is before 2000-01-01"
    return parsed, None


def _has_operator_key(value: object) -> bool:
    """True when any nested key starts with '$' (MongoDB reserves those) or contains a NUL."""
    if isinstance(value, dict):
        return any(k.startswith("$") or "\x00" in k or _has_operator_key(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_has_operator_key(v) for v in value)
    return False


def _check_exposure(payload: dict[str, Any], errors: dict[str, str]) -> None:
    """A `recommend` event must say which request, variant and model produced which items."""
    _check_id(payload.get("requestId"), "payload.requestId", errors)
    if payload.get("variant") not in VARIANTS:
        errors["payload.variant"] = f"must be one of {', '.join(VARIANTS)}"
    _check_id(payload.get("modelVersion"), "payload.modelVersion", errors)
    items = payload.get("items")
    if not isinstance(items, list) or not items or len(items) > MAX_RECOMMENDED_ITEMS:
        errors["payload.items"] = f"must be a list of 1 to {MAX_RECOMMENDED_ITEMS} item ids"
    elif not all(isinstance(item, str) and 0 < len(item) <= MAX_ID_LENGTH for item in items):
        errors["payload.items"] = f"every item id must be a non-empty string of at most {MAX_ID_LENGTH} characters"


def _check_payload(raw: object, limits: EventLimits, errors: dict[str, str]) -> dict[str, Any]:
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        errors["payload"] = "must be a JSON object"
        return {}
    size = len(json.dumps(raw, separators=(",", ":"), ensure_ascii=False).encode())
    if size > limits.max_payload_bytes:
        errors["payload"] = f"is {size} bytes; the limit is {limits.max_payload_bytes}"
    elif _has_operator_key(raw):
        errors["payload"] = "keys must not start with '$'"
    return raw


def event_validate(raw: object, *, now: datetime, limits: EventLimits) -> EventInput | dict[str, str]:
    """Validate one raw event (a decoded JSON value); return the event or the errors by field."""
    if not isinstance(raw, dict):
        return {"event": "must be a JSON object"}
    errors: dict[str, str] = {key: "unknown field" for key in raw if key not in EVENT_FIELDS}
    event_type = raw.get("type")
    if event_type not in EVENT_TYPES:
        errors["type"] = f"must be one of {', '.join(EVENT_TYPES)}"
        event_type = None  # it may be any JSON value, even an unhashable one: compare no further
    event_id = _check_id(raw["eventId"], "eventId", errors) if raw.get("eventId") is not None else None
    user_id = _check_id(raw.get("userId"), "userId", errors)
    item_id: str | None = None
    if event_type in ITEM_EVENT_TYPES or raw.get("itemId") is not None:
        item_id = _check_id(raw.get("itemId"), "itemId", errors)
    ts: datetime | None = now
    if raw.get("ts") is not None:
        ts, ts_error = parse_ts(raw["ts"], now=now, limits=limits)
        if ts_error:
            errors["ts"] = ts_error
    payload = _check_payload(raw.get("payload"), limits, errors)
    if event_type == "recommend" and "payload" not in errors:
        _check_exposure(payload, errors)
    if errors or user_id is None or ts is None:
        return errors
    return EventInput(type=str(event_type), user_id=user_id, item_id=item_id, ts=ts, payload=payload, event_id=event_id)


def events_validate(
    raws: Sequence[object], *, now: datetime, limits: EventLimits
) -> tuple[list[tuple[int, EventInput]], list[EventRejection]]:
    """Validate a batch; return the valid events with their index, and one rejection per invalid event."""
    valid: list[tuple[int, EventInput]] = []
    rejected: list[EventRejection] = []
    for index, raw in enumerate(raws):
        result = event_validate(raw, now=now, limits=limits)
        if isinstance(result, EventInput):
            valid.append((index, result))
        else:
            rejected.append(EventRejection(index=index, errors=result))
    return valid, rejected


def event_id_derive(raw: object, position: int, *, received: datetime | None = None) -> str:
    """The id of an event its client did not name: a hash of its content and its position (a file's line, a batch's
    index), so that the same file or batch sent again maps to the same ids and a unique index stores nothing twice.

    `received` enters the hash only for an event without its own time, which is then timed on arrival: two such
    events sent apart are two events.
    """
    content = json.dumps(raw, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
    moment = received.isoformat() if received is not None and isinstance(raw, dict) and raw.get("ts") is None else ""
    return hashlib.sha256(f"{position}\n{moment}\n{content}".encode()).hexdigest()[:32]

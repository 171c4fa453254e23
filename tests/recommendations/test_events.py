"""Event validation rules, one by one (pure Python, no database)."""

from datetime import UTC, datetime

import pytest

from recommendations.events import (
    EVENT_FIELDS,
    EVENT_TYPES,
    MAX_ID_LENGTH,
    EventInput,
    EventLimits,
    event_validate,
    events_validate,
)
from recommendations.serializers import EventInputSerializer

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
LIMITS = EventLimits(max_payload_bytes=256, max_future_seconds=300)


def validate(raw: object) -> EventInput | dict[str, str]:
    return event_validate(raw, now=NOW, limits=LIMITS)


def exposure(**overrides: object) -> dict[str, object]:
    payload = {"requestId": "req-1", "variant": "treatment", "modelVersion": "v1.2.0", "items": ["a", "b"]}
    payload.update(overrides)
    return {"type": "recommend", "userId": "u1", "ts": "2026-11-26T11:00:00Z", "payload": payload}


def test_a_complete_view_event_is_accepted_and_normalised_to_utc() -> None:
    event = validate({"type": "view", "userId": " u1 ", "itemId": "dest-1", "ts": "2026-11-26T13:00:00+02:00"})
    assert event == EventInput(type="view", user_id="u1", item_id="dest-1", ts=datetime(2026, 11, 26, 11, tzinfo=UTC))


def test_ts_defaults_to_now_when_absent() -> None:
    event = validate({"type": "book", "userId": "u1", "itemId": "dest-1"})
    assert isinstance(event, EventInput)
    assert event.ts == NOW


@pytest.mark.parametrize("event_type", ["recommend", "view", "play", "book", "skip"])
def test_every_documented_type_is_accepted(event_type: str) -> None:
    raw = exposure() if event_type == "recommend" else {"type": event_type, "userId": "u", "itemId": "i"}
    assert isinstance(validate(raw), EventInput)


@pytest.mark.parametrize(
    ("raw", "field", "fragment"),
    [
        ({"type": "like", "userId": "u", "itemId": "i"}, "type", "must be one of"),
        ({"userId": "u", "itemId": "i"}, "type", "must be one of"),
        ({"type": {}, "userId": "u", "itemId": "i"}, "type", "must be one of"),
        ({"type": ["view"], "userId": "u", "itemId": "i"}, "type", "must be one of"),
        ({"type": "view", "itemId": "i"}, "userId", "must be a string"),
        ({"type": "view", "userId": 42, "itemId": "i"}, "userId", "must be a string"),
        ({"type": "view", "userId": "   ", "itemId": "i"}, "userId", "must not be empty"),
        ({"type": "view", "userId": "u" * 129, "itemId": "i"}, "userId", "at most 128"),
        ({"type": "view", "userId": "a\nb", "itemId": "i"}, "userId", "control characters"),
        ({"type": "view", "userId": "u"}, "itemId", "must be a string"),
        ({"type": "view", "userId": "u", "itemId": ""}, "itemId", "must not be empty"),
        ({"type": "view", "userId": "u", "itemId": "i", "ts": "yesterday"}, "ts", "not a valid ISO-8601"),
        ({"type": "view", "userId": "u", "itemId": "i", "ts": 1700000000}, "ts", "ISO-8601 string"),
        ({"type": "view", "userId": "u", "itemId": "i", "ts": "2026-11-26T11:00:00"}, "ts", "timezone"),
        ({"type": "view", "userId": "u", "itemId": "i", "ts": "2026-11-26T12:05:01Z"}, "ts", "in the future"),
        ({"type": "view", "userId": "u", "itemId": "i", "ts": "1999-12-31T23:59:59Z"}, "ts", "before 2000"),
        ({"type": "view", "userId": "u", "itemId": "i", "payload": [1]}, "payload", "JSON object"),
        ({"type": "view", "userId": "u", "itemId": "i", "payload": {"x": "y" * 300}}, "payload", "the limit is 256"),
        ({"type": "view", "userId": "u", "itemId": "i", "payload": {"a": {"$gt": 1}}}, "payload", "'$'"),
        ({"type": "view", "userId": "u", "itemId": "i", "color": "red"}, "color", "unknown field"),
    ],
)
def test_each_rule_rejects_with_a_message_on_the_field(raw: dict[str, object], field: str, fragment: str) -> None:
    errors = validate(raw)
    assert isinstance(errors, dict)
    assert fragment in errors[field]


def test_ts_just_inside_the_future_tolerance_is_accepted() -> None:
    assert isinstance(
        validate({"type": "view", "userId": "u", "itemId": "i", "ts": "2026-11-26T12:04:59Z"}), EventInput
    )


def test_non_object_event_is_rejected() -> None:
    assert validate("view") == {"event": "must be a JSON object"}


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"requestId": ""}, "payload.requestId"),
        ({"variant": "blue"}, "payload.variant"),
        ({"modelVersion": None}, "payload.modelVersion"),
        ({"items": []}, "payload.items"),
        ({"items": "a,b"}, "payload.items"),
        ({"items": ["a", 3]}, "payload.items"),
    ],
)
def test_exposure_events_must_describe_what_was_shown(overrides: dict[str, object], field: str) -> None:
    errors = validate(exposure(**overrides))
    assert isinstance(errors, dict)
    assert field in errors


def test_batch_validation_keeps_valid_events_and_indexes_rejections() -> None:
    good = {"type": "view", "userId": "u", "itemId": "i"}
    valid, rejected = events_validate([good, {"type": "nope"}, good], now=NOW, limits=LIMITS)
    assert [index for index, _ in valid] == [0, 2]
    assert [rejection.index for rejection in rejected] == [1]
    assert "type" in rejected[0].errors


def test_the_schema_describes_the_validator_s_fields_and_bounds() -> None:
    fields = EventInputSerializer().fields
    assert set(fields) == EVENT_FIELDS
    assert list(fields["type"].choices) == list(EVENT_TYPES)
    assert fields["userId"].max_length == fields["itemId"].max_length == fields["eventId"].max_length == MAX_ID_LENGTH
    assert [name for name, field in fields.items() if field.required] == ["type", "userId"]


@pytest.mark.parametrize(
    "raw",
    [
        {"type": "view", "userId": "u1", "itemId": "dest-1", "ts": "2026-11-26T11:00:00Z"},
        {"type": "book", "userId": "u1", "itemId": "dest-1", "eventId": "e-1", "payload": {"screen": "home"}},
        {"type": "like", "userId": "u1", "itemId": "dest-1"},
        {"type": "view", "itemId": "dest-1"},
        {"type": "view", "userId": "u" * 129, "itemId": "dest-1"},
        {"type": "view", "userId": "u1", "itemId": "dest-1", "eventId": "e" * 129},
        {"type": "view", "userId": "u1", "itemId": "dest-1", "payload": ["not", "an", "object"]},
        {"type": "view", "userId": "u1", "itemId": "dest-1", "ts": "yesterday"},
    ],
)
def test_the_schema_and_the_validator_agree_on_what_the_schema_can_express(raw: dict[str, object]) -> None:
    assert isinstance(validate(raw), EventInput) == EventInputSerializer(data=raw).is_valid()

"""Training arrays and the data snapshot id: the same events give the same id, whatever their order."""

from django.test import override_settings

from core.recommender.training_data import InteractionsBuilder
from recommendations.training import provenance_resolve

EVENTS = [("u1", "x", "view", 1_000), ("u1", "x", "book", 2_000), ("u2", "y", "play", 3_500)]
WINDOW = {"start": "2026-10-01T00:00:00+00:00", "end": "2026-10-31T00:00:00+00:00"}


def digest(events: list[tuple[str, str, str, int]]) -> str:
    builder = InteractionsBuilder()
    builder.add_all(events)
    return builder.build().events_digest


def test_arrays_hold_indices_codes_and_seconds() -> None:
    builder = InteractionsBuilder()
    builder.add_all(EVENTS)
    data = builder.build().interactions
    assert data.user_ids == ["u1", "u2"] and data.item_ids == ["x", "y"]
    assert data.users.tolist() == [0, 0, 1]
    assert data.codes.tolist() == [0, 2, 1]
    assert data.ts.tolist() == [1, 2, 3]


def test_the_digest_ignores_order_but_not_content() -> None:
    assert digest(EVENTS) == digest(list(reversed(EVENTS)))
    assert digest(EVENTS) != digest(EVENTS[:2])
    assert digest(EVENTS) != digest([*EVENTS[:2], ("u2", "y", "play", 3_501)])


@override_settings(DATA_SNAPSHOT_ID=None)
def test_the_snapshot_id_follows_window_count_and_digest() -> None:
    first = provenance_resolve(window=WINDOW, events=3, digest=digest(EVENTS)).data_snapshot_id
    again = provenance_resolve(window=WINDOW, events=3, digest=digest(list(reversed(EVENTS)))).data_snapshot_id
    other = provenance_resolve(window=WINDOW, events=2, digest=digest(EVENTS[:2])).data_snapshot_id
    assert first == again != other
    assert first.startswith("snap-")

"""The trainer's input summed per (rider, item) in the database equals the same sums computed from the events.

Randomized events on the embedded server, including events on the window's edges, events outside it or of other
types, and riders with a single event; the reference is the single-machine path (every event read, then
core.recommender.interactions).
"""

from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pytest
import scipy.sparse as sp

from core.recommender.interactions import EVENT_CODES, interaction_matrix, seen_matrix
from core.recommender.pairs import PairRecord, Pairs, PairsBuilder, pair_holdout
from core.recommender.training_data import InteractionsBuilder
from recommendations.selectors import raw_event_collection, training_events_iter, training_pairs_iter

pytestmark = pytest.mark.django_db
START = datetime(2026, 9, 1, tzinfo=UTC)
END = datetime(2026, 10, 1, tzinfo=UTC)
HALF_LIVES = (180.0, 30.0, 0.5)
WEIGHTS = [None, {"view": 1.0, "play": 1.0, "book": 1.0}, {"view": 0.0, "play": 2.0, "book": 5.0, "skip": -4.0}]


def _random_events(seed: int) -> list[dict[str, Any]]:
    rng = np.random.default_rng(seed)
    kinds = [*EVENT_CODES, "exposure"]
    span_ms = int((END - START).total_seconds() * 1000)
    events = []
    for _ in range(400):
        offset = int(rng.integers(-span_ms // 10, span_ms + span_ms // 10))
        events.append(
            {
                "userId": f"u{rng.integers(0, 25)}",
                "itemId": f"i{rng.integers(0, 12)}",
                "type": kinds[int(rng.integers(0, len(kinds)))],
                "ts": START + timedelta(milliseconds=offset),
            }
        )
    # On the edges: the window's first instant is in it, its end is not; and riders with one event each.
    events += [
        {"userId": "edge", "itemId": "i0", "type": "book", "ts": START},
        {"userId": "edge", "itemId": "i1", "type": "play", "ts": END},
        {"userId": "edge", "itemId": "i2", "type": "view", "ts": END - timedelta(milliseconds=1)},
        {"userId": "single-a", "itemId": "i3", "type": "play", "ts": START + timedelta(days=3)},
        {"userId": "single-b", "itemId": "new-item", "type": "skip", "ts": START + timedelta(days=4)},
    ]
    return events


def _both(events: list[dict[str, Any]]) -> tuple[Pairs, Any]:
    raw_event_collection().delete_many({})
    raw_event_collection().insert_many([dict(event) for event in events])
    pairs = PairsBuilder(HALF_LIVES)
    pairs.add_all(training_pairs_iter(start=START, end=END, half_lives=HALF_LIVES, batch_size=7))
    each = InteractionsBuilder()
    each.add_all(training_events_iter(start=START, end=END))
    return pairs.build(), each.build().interactions


def _aligned(matrix: sp.csr_matrix, users: list[str], items: list[str], to_users: list[str], to_items: list[str]):
    """`matrix` with its rows and columns put in the order of `to_users` and `to_items`."""
    rows = np.array([users.index(user) for user in to_users])
    columns = np.array([items.index(item) for item in to_items])
    return matrix.tocsr()[rows][:, columns].toarray()


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_pairs_from_the_pipeline_give_the_matrices_of_the_events(seed: int) -> None:
    pairs, events = _both(_random_events(seed))
    assert sorted(pairs.user_ids) == sorted(events.user_ids) and sorted(pairs.item_ids) == sorted(events.item_ids)
    assert pairs.events == len(events)
    for weights in WEIGHTS:
        for half_life in (None, *HALF_LIVES):
            expected = interaction_matrix(events, weights=weights, half_life_days=half_life).toarray()
            got = _aligned(
                pairs.matrix(weights=weights, half_life_days=half_life),
                pairs.user_ids,
                pairs.item_ids,
                events.user_ids,
                events.item_ids,
            )
            np.testing.assert_allclose(got, expected, rtol=2e-5, atol=1e-6)
    for kinds in [(), ("book",), ("book", "play"), tuple(EVENT_CODES)]:
        expected = seen_matrix(events, kinds).toarray()
        got = _aligned(pairs.seen(kinds), pairs.user_ids, pairs.item_ids, events.user_ids, events.item_ids)
        np.testing.assert_array_equal(got, expected)


def test_the_window_edges_and_single_event_riders() -> None:
    pairs, _ = _both(_random_events(4))
    by_pair = {
        (pairs.user_ids[user], pairs.item_ids[item]): (counts.tolist(), last)
        for user, item, counts, last in zip(pairs.users, pairs.items, pairs.counts, pairs.last, strict=True)
    }
    assert by_pair[("edge", "i0")] == ([0, 0, 1, 0], int(START.timestamp()))
    assert ("edge", "i1") not in by_pair
    assert by_pair[("single-a", "i3")][0] == [0, 1, 0, 0]
    assert by_pair[("single-b", "new-item")][0] == [0, 0, 0, 1]
    # A skip alone leaves nothing to learn from: the pair is read but has no weight in the matrix.
    single_b = pairs.user_ids.index("single-b")
    assert pairs.matrix()[single_b].nnz == 0


def test_each_pair_keeps_its_newest_event_time() -> None:
    events = _random_events(5)
    pairs, _ = _both(events)
    newest: dict[tuple[str, str], int] = {}
    for event in events:
        if START <= event["ts"] < END and event["type"] in EVENT_CODES:
            key = (event["userId"], event["itemId"])
            newest[key] = max(newest.get(key, 0), int(event["ts"].timestamp()))
    got = {
        (pairs.user_ids[user], pairs.item_ids[item]): int(last)
        for user, item, last in zip(pairs.users, pairs.items, pairs.last, strict=True)
    }
    assert got == newest


def test_an_empty_window_gives_no_pairs() -> None:
    raw_event_collection().delete_many({})
    assert list(training_pairs_iter(start=START, end=END, half_lives=HALF_LIVES)) == []


def test_the_holdout_keeps_each_riders_newest_items() -> None:
    builder = PairsBuilder(())
    for index in range(10):
        builder.add(PairRecord("many", f"i{index}", {"play": 1}, {}, 1_000_000 + index * 1000))
    builder.add(PairRecord("one", "i0", {"play": 1}, {}, 5_000_000))
    pairs = builder.build()
    held, _ = pair_holdout(pairs, 0.2)
    held_items = sorted(pairs.item_ids[item] for item in pairs.items[held])
    assert held_items == ["i8", "i9"]  # the rider with one item keeps it for training

"""The trainer's input summed per (rider, item) in the database equals the same sums computed from the events.

Randomized events on the embedded server, including events on the window's edges, events outside it or of other
types, and riders with a single event; the references are the single-machine path (every event read, then
core.recommender.interactions and the evaluation's own per-user hold-out).
"""

from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pytest
import scipy.sparse as sp

from core.recommender.evaluation import relevant_by_user, user_holdout_split
from core.recommender.interactions import EVENT_CODES, Interactions, interaction_matrix, seen_matrix
from core.recommender.pairs import TEST, TRAIN, VALIDATION, Pairs, PairsBuilder, pairs_from_interactions
from core.recommender.training_data import InteractionsBuilder
from recommendations.selectors import raw_event_collection, training_events_iter, training_pairs_iter

pytestmark = pytest.mark.django_db
START = datetime(2026, 9, 1, tzinfo=UTC)
END = datetime(2026, 10, 1, tzinfo=UTC)
HALF_LIVES = (180.0, 30.0, 0.5)
FRACTION = 0.2
WEIGHTS = [None, {"view": 1.0, "play": 1.0, "book": 1.0}, {"view": 0.0, "play": 2.0, "book": 5.0, "skip": -4.0}]
ALL = (TRAIN, VALIDATION, TEST)


def _random_events(seed: int) -> list[dict[str, Any]]:
    rng = np.random.default_rng(seed)
    kinds = [*EVENT_CODES, "exposure"]
    span_ms = int((END - START).total_seconds() * 1000)
    # Distinct times: which of two simultaneous events is "newer" is the database's choice, not a property.
    offsets = rng.permutation(np.unique(rng.integers(-span_ms // 10, span_ms + span_ms // 10, size=600)))
    events = [
        {
            "userId": f"u{rng.integers(0, 25)}",
            "itemId": f"i{rng.integers(0, 12)}",
            "type": kinds[int(rng.integers(0, len(kinds)))],
            "ts": START + timedelta(milliseconds=int(offset)),
        }
        for offset in offsets
    ]
    # On the edges: the window's first instant is in it, its end is not; and riders with one event each.
    events += [
        {"userId": "edge", "itemId": "i0", "type": "book", "ts": START},
        {"userId": "edge", "itemId": "i1", "type": "play", "ts": END},
        {"userId": "edge", "itemId": "i2", "type": "view", "ts": END - timedelta(milliseconds=1)},
        {"userId": "single-a", "itemId": "i3", "type": "play", "ts": START + timedelta(days=3)},
        {"userId": "single-b", "itemId": "new-item", "type": "skip", "ts": START + timedelta(days=4)},
    ]
    return events


def _both(events: list[dict[str, Any]]) -> tuple[Pairs, Interactions]:
    raw_event_collection().delete_many({})
    raw_event_collection().insert_many([dict(event) for event in events])
    pairs = PairsBuilder(HALF_LIVES)
    pairs.add_all(training_pairs_iter(start=START, end=END, half_lives=HALF_LIVES, fraction=FRACTION, batch_size=7))
    each = InteractionsBuilder()
    each.add_all(training_events_iter(start=START, end=END))
    return pairs.build(), each.build().interactions


def _dense(matrix: sp.csr_matrix, pairs: Pairs, events: Interactions) -> np.ndarray:
    """A pairs-side matrix with its rows and columns in the events' user and item order."""
    rows = np.array([pairs.user_ids.index(user) for user in events.user_ids])
    columns = np.array([pairs.item_ids.index(item) for item in events.item_ids])
    return matrix.tocsr()[rows][:, columns].toarray()


def _close(got: np.ndarray, expected: np.ndarray) -> None:
    np.testing.assert_allclose(got, expected, rtol=2e-5, atol=1e-6)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_pairs_from_the_pipeline_give_the_matrices_of_the_events(seed: int) -> None:
    pairs, events = _both(_random_events(seed))
    assert sorted(pairs.user_ids) == sorted(events.user_ids) and sorted(pairs.item_ids) == sorted(events.item_ids)
    assert pairs.events == len(events)
    for weights in WEIGHTS:
        for half_life in (None, *HALF_LIVES):
            expected = interaction_matrix(events, weights=weights, half_life_days=half_life).toarray()
            _close(_dense(pairs.matrix(weights=weights, half_life_days=half_life), pairs, events), expected)
    for kinds in [(), ("book",), ("book", "play"), tuple(EVENT_CODES)]:
        expected = seen_matrix(events, kinds).toarray()
        np.testing.assert_array_equal(_dense(pairs.seen(kinds), pairs, events), expected)


@pytest.mark.parametrize("seed", [4, 5])
def test_the_levels_are_the_per_user_holdout_of_the_single_machine_trainer(seed: int) -> None:
    # Without the edge rider, whose few events are all TRAIN, the window's newest event is held out, so the search's
    # and the gate's parts decay from an older event than the window's newest.
    pairs, events = _both([event for event in _random_events(seed) if event["userId"] != "edge"])
    gate = user_holdout_split(events, FRACTION)
    search = user_holdout_split(gate.train, FRACTION)
    assert pairs.relevant(TEST) == relevant_by_user(gate.test)
    assert pairs.relevant(VALIDATION) == relevant_by_user(search.test)
    for levels, part in (((TRAIN, VALIDATION), gate.train), ((TRAIN,), search.train)):
        for weights in WEIGHTS:
            for half_life in (None, *HALF_LIVES):
                # Decayed from the newest event of the part, as the single-machine search and gate decay.
                expected = interaction_matrix(part, weights=weights, half_life_days=half_life).toarray()
                got = pairs.matrix(levels=levels, weights=weights, half_life_days=half_life)
                _close(_dense(got, pairs, events), expected)
        expected_seen = seen_matrix(part, ("book",)).toarray()
        np.testing.assert_array_equal(_dense(pairs.seen(("book",), levels=levels), pairs, events), expected_seen)
    counts = np.bincount(gate.train.users, minlength=len(events.user_ids))
    assert pairs.user_events((TRAIN, VALIDATION)) == dict(zip(events.user_ids, counts.tolist(), strict=True))


@pytest.mark.parametrize("seed", [6, 7])
def test_the_in_memory_sums_equal_the_pipeline(seed: int) -> None:
    pairs, events = _both(_random_events(seed))
    memory = pairs_from_interactions(events, HALF_LIVES, FRACTION)
    assert len(memory) == len(pairs)
    for levels in ((TRAIN,), (TRAIN, VALIDATION), ALL, (TEST,)):
        for half_life in (None, *HALF_LIVES):
            expected = memory.matrix(levels=levels, half_life_days=half_life)
            expected_dense = _dense(expected, memory, events)
            _close(_dense(pairs.matrix(levels=levels, half_life_days=half_life), pairs, events), expected_dense)


def test_simultaneous_events_are_held_out_in_the_order_they_were_stored() -> None:
    instant = START + timedelta(days=10)
    events = [{"userId": "u", "itemId": f"i{index}", "type": "play", "ts": instant} for index in range(10)]
    events += [{"userId": "u", "itemId": "older", "type": "play", "ts": instant - timedelta(days=1)}]
    pairs, data = _both(events)
    gate = user_holdout_split(data, FRACTION)
    search = user_holdout_split(gate.train, FRACTION)
    assert pairs.relevant(TEST) == relevant_by_user(gate.test) == {"u": {"i8", "i9"}}
    assert pairs.relevant(VALIDATION) == relevant_by_user(search.test) == {"u": {"i7"}}


def test_the_window_edges_and_single_event_riders() -> None:
    pairs, _ = _both(_random_events(8))
    by_pair = {
        (pairs.user_ids[user], pairs.item_ids[item]): (counts.sum(axis=0).tolist(), last)
        for user, item, counts, last in zip(pairs.users, pairs.items, pairs.counts, pairs.last, strict=True)
    }
    assert by_pair[("edge", "i0")] == ([0, 0, 1, 0], int(START.timestamp()))
    assert ("edge", "i1") not in by_pair
    # A rider with one event keeps it for training: nothing of theirs is held out.
    single_a = pairs.user_ids.index("single-a")
    assert pairs.counts[pairs.users == single_a].tolist() == [[[0, 1, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0]]]
    # A skip alone leaves nothing to learn from: the pair is read but has no weight in the matrix.
    assert pairs.matrix()[pairs.user_ids.index("single-b")].nnz == 0


def test_each_pair_keeps_its_newest_event_time() -> None:
    events = _random_events(9)
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
    assert list(training_pairs_iter(start=START, end=END, half_lives=HALF_LIVES, fraction=FRACTION)) == []

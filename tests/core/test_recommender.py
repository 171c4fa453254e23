"""The recommenders on small data whose answers can be worked out by hand."""

import math

import numpy as np
import pytest

from core.recommender.algorithms import ItemKNNModel, PopularityModel, SVDModel, recommender_fit
from core.recommender.interactions import interaction_matrix, interactions_from_records
from core.recommender.prepared import RANKED_ENTRY_BYTES, PrecomputedRankings, rankings_precompute
from core.recommender.ranking import PYTHON_SORT_MAX_ITEMS, ranked_items

# a booked x and viewed y; b booked x and y; c viewed z; d viewed w once and skipped it twice.
RECORDS = [
    ("a", "x", "book", 1),
    ("a", "y", "view", 2),
    ("b", "x", "book", 3),
    ("b", "y", "book", 4),
    ("c", "z", "view", 5),
    ("d", "w", "view", 6),
    ("d", "w", "skip", 7),
    ("d", "w", "skip", 8),
]
DATA = interactions_from_records(RECORDS)
L5, L1 = math.log1p(5), math.log1p(1)


def items(result: list[tuple[str, float]]) -> list[str]:
    return [item for item, _ in result]


def test_event_weights_are_summed_clipped_at_zero_and_damped() -> None:
    matrix = interaction_matrix(DATA).toarray()
    users, cols = {u: i for i, u in enumerate(DATA.user_ids)}, {t: i for i, t in enumerate(DATA.item_ids)}
    assert matrix[users["a"], cols["x"]] == pytest.approx(L5)
    assert matrix[users["a"], cols["y"]] == pytest.approx(L1)
    # view (+1) and two skips (-2) leave no interest at all
    assert matrix[users["d"], cols["w"]] == 0.0


def test_popularity_ranks_by_total_damped_interest() -> None:
    model = PopularityModel.fit(DATA)
    result = model.recommend("anyone", 10)
    assert items(result) == ["x", "y", "z", "w"]
    assert [round(score, 6) for _, score in result] == [round(2 * L5, 6), round(L1 + L5, 6), round(L1, 6), 0.0]


def test_itemknn_scores_by_similarity_to_the_riders_own_history() -> None:
    model = ItemKNNModel.fit(DATA)
    x_norm, y_norm = math.hypot(L5, L5), math.hypot(L1, L5)
    cos_xy = (L5 * L1 + L5 * L5) / (x_norm * y_norm)
    scores = dict(model.recommend("a", 2))
    assert scores["x"] == pytest.approx(L5 * 1.0 + L1 * cos_xy, rel=1e-4)
    assert scores["y"] == pytest.approx(L5 * cos_xy + L1 * 1.0, rel=1e-4)
    assert items(model.recommend("a", 2)) == ["x", "y"]


def test_a_short_personal_list_is_filled_with_popular_items() -> None:
    model = ItemKNNModel.fit(DATA)
    # c only knows z, which nobody else touched: z first, then the popular items in popularity order.
    assert items(model.recommend("c", 3)) == ["z", "x", "y"]


def test_unknown_riders_get_the_popularity_list() -> None:
    for model in (ItemKNNModel.fit(DATA), SVDModel.fit(DATA, factors=2)):
        assert model.recommend("stranger", 3) == PopularityModel.fit(DATA).recommend("stranger", 3)


def test_personal_models_know_the_riders_they_were_trained_on_and_the_baseline_knows_everyone() -> None:
    for model in (ItemKNNModel.fit(DATA), SVDModel.fit(DATA, factors=2)):
        assert all(model.knows(user) for user in ("a", "b", "c", "d")), model.algorithm
        assert not model.knows("stranger"), model.algorithm
        prepared = rankings_precompute(model, depth=10, max_bytes=1 << 20)
        assert isinstance(prepared, PrecomputedRankings)
        assert prepared.knows("a") and not prepared.knows("stranger")
    assert PopularityModel.fit(DATA).knows("stranger"), "the baseline answers everyone alike: nobody is a cold start"


def test_a_rider_whose_only_signal_was_skipped_gets_popular_items() -> None:
    assert items(ItemKNNModel.fit(DATA).recommend("d", 2)) == ["x", "y"]


def test_converted_items_are_filtered_when_asked() -> None:
    keep = ItemKNNModel.fit(DATA)
    drop = ItemKNNModel.fit(DATA, exclude=["book"])
    assert "x" in items(keep.recommend("a", 4))
    assert items(drop.recommend("a", 4)) == ["y", "z", "w"]
    assert items(drop.recommend("b", 4)) == ["z", "w"]


def test_svd_recovers_the_co_occurrence_structure() -> None:
    model = SVDModel.fit(DATA, factors=2, seed=0)
    assert items(model.recommend("a", 2)) == ["x", "y"]
    assert model.params["factors"] == 2


def test_k_larger_than_the_catalogue_returns_every_item_once() -> None:
    result = items(recommender_fit("itemknn", DATA).recommend("a", 50))
    assert sorted(result) == sorted(DATA.item_ids)


def test_ties_are_broken_the_same_way_every_time() -> None:
    records = [(f"u{n}", item, "view", n) for n, item in enumerate(["p", "q", "r", "s"])]
    model = PopularityModel.fit(interactions_from_records(records))
    assert items(model.recommend("x", 4)) == ["p", "q", "r", "s"]


@pytest.mark.parametrize("size", [PYTHON_SORT_MAX_ITEMS, PYTHON_SORT_MAX_ITEMS + 1, 5000])
def test_small_and_large_catalogues_rank_alike_ties_to_the_lower_index_and_excluded_items_left_out(size: int) -> None:
    rng = np.random.default_rng(size)
    scores = rng.integers(0, 20, size).astype(np.float64)  # many ties
    scores[rng.choice(size, size // 10, replace=False)] = -np.inf
    ids = [f"item-{n}" for n in range(size)]
    expected = sorted((n for n in range(size) if np.isfinite(scores[n])), key=lambda n: (-scores[n], n))
    for k in (1, 10, size):
        assert ranked_items(ids, scores, k) == [(ids[n], scores[n]) for n in expected[:k]]
    assert ranked_items(ids, scores, 0) == []


def test_unknown_algorithms_are_refused() -> None:
    with pytest.raises(ValueError, match="unknown algorithm 'magic'"):
        recommender_fit("magic", DATA)


def test_scores_are_finite_and_sorted_for_every_user() -> None:
    model = SVDModel.fit(DATA, factors=2)
    for user in DATA.user_ids:
        scores = [score for _, score in model.recommend(user, 4)]
        assert all(np.isfinite(scores))
        assert scores == sorted(scores, reverse=True)


def test_item_knn_scores_equal_the_interest_vector_times_the_similarity_matrix() -> None:
    rng = np.random.default_rng(1)
    kinds = ["view", "play", "book", "skip"]
    records = [(f"u{rng.integers(300)}", f"i{rng.integers(120)}", kinds[rng.integers(4)], n) for n in range(8000)]
    data = interactions_from_records(records)
    model = ItemKNNModel.fit(data, neighbors=20)
    for user in range(len(data.user_ids)):
        interest = model.history.getrow(user).toarray().ravel().astype(np.float64)
        expected = model.similarity.T.tocsr() @ interest
        np.testing.assert_array_equal(model._personal_scores(user), expected)


def random_interactions(users: int, items: int, events: int, seed: int) -> tuple[list[str], object]:
    rng = np.random.default_rng(seed)
    kinds = ["view", "play", "book", "skip"]
    records = [(f"u{rng.integers(users)}", f"i{rng.integers(items)}", kinds[rng.integers(4)], n) for n in range(events)]
    data = interactions_from_records(records)
    return list(data.user_ids), data


@pytest.mark.parametrize("items_count", [40, PYTHON_SORT_MAX_ITEMS + 60])
@pytest.mark.parametrize("algorithm", ["itemknn", "svd", "ease", "als"])
def test_precomputed_rankings_answer_exactly_as_the_model_does(algorithm: str, items_count: int) -> None:
    users, data = random_interactions(200, items_count, 6000, seed=items_count)
    # Leaving booked items out gives some riders fewer items than asked for: their lists must stay short.
    model = recommender_fit(algorithm, data, {"exclude_converted": True})
    ranked = rankings_precompute(model, depth=100, max_bytes=1 << 30)
    assert isinstance(ranked, PrecomputedRankings)
    assert ranked.algorithm == algorithm and ranked.item_ids == model.item_ids
    for user in [*users, "a rider never seen"]:
        for k in (1, 3, 10, 57, 99, 100, 101, items_count + 5):
            assert ranked.recommend(user, k) == model.recommend(user, k), (user, k)
    if items_count < 100:  # a small catalogue: riders with bookings have fewer items left than the catalogue holds
        assert any(len(ranked.recommend(user, 100)) < items_count for user in users)


def test_rankings_over_the_memory_budget_or_of_the_baseline_are_left_to_the_model() -> None:
    users, data = random_interactions(50, 30, 800, seed=3)
    model = recommender_fit("svd", data)
    needed = (len(users) + 1) * 30 * RANKED_ENTRY_BYTES  # every rider and the cold start, 30 items each
    assert isinstance(rankings_precompute(model, depth=100, max_bytes=needed), PrecomputedRankings)
    assert rankings_precompute(model, depth=100, max_bytes=needed - 1) is model
    assert rankings_precompute(model, depth=100, max_bytes=0) is model
    baseline = recommender_fit("popularity", data)
    assert rankings_precompute(baseline, depth=100, max_bytes=1 << 30) is baseline

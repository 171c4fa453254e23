"""The evaluation protocol, EASE against its closed form, and the search on validation: what it chooses and why."""

import math

import numpy as np
import pytest
from scipy import stats

from core.recommender import training
from core.recommender.algorithms import EASEModel, recommender_fit
from core.recommender.evaluation import (
    average_precision_at_k,
    bootstrap_interval,
    recall_at_k,
    relevant_by_user,
    user_holdout_split,
)
from core.recommender.interactions import Interactions, interaction_matrix, interactions_from_records
from core.recommender.training import SearchRequest, search, train_and_evaluate


def test_the_hold_out_keeps_each_riders_newest_fifth_for_testing() -> None:
    records = [("a", f"i{n}", "play", 100 - n) for n in range(10)]  # a's newest events are the lowest items
    records += [("b", f"i{n}", "book", n) for n in range(4)]  # 4 events: a fifth rounds down to none
    split = user_holdout_split(interactions_from_records(records), 0.2)
    assert relevant_by_user(split.test) == {"a": {"i0", "i1"}}
    assert len(split.train) == 12


def test_recall_and_average_precision_by_hand() -> None:
    assert recall_at_k(["a", "b", "c"], {"b", "z"}, 10) == 0.5
    assert recall_at_k(["a", "b", "c"], {"c"}, 2) == 0.0
    # Hits at ranks 1 and 3: (1/1 + 2/3) / min(10, 3 relevant).
    assert average_precision_at_k(["a", "x", "b"], {"a", "b", "c"}, 10) == pytest.approx((1 + 2 / 3) / 3)
    assert average_precision_at_k(["a", "b"], {"a", "b"}, 10) == 1.0


def test_the_bootstrap_interval_matches_scipys_percentile_bootstrap() -> None:
    values = np.random.default_rng(4).exponential(0.1, 400)
    low, high = bootstrap_interval(values, seed=1, resamples=4000)
    reference = stats.bootstrap((values,), np.mean, n_resamples=4000, method="percentile", random_state=2)
    assert low == pytest.approx(reference.confidence_interval.low, rel=0.03)
    assert high == pytest.approx(reference.confidence_interval.high, rel=0.03)
    assert math.isnan(bootstrap_interval(np.array([]))[0])


def test_ease_scores_equal_the_closed_form_solution() -> None:
    rng = np.random.default_rng(2)
    records = [(f"u{rng.integers(80)}", f"i{rng.integers(40)}", "book", n) for n in range(1500)]
    data = interactions_from_records(records)
    model = EASEModel.fit(data, l2=20.0)
    history = interaction_matrix(data).toarray().astype(np.float64)
    inverse = np.linalg.inv(history.T @ history + 20.0 * np.eye(history.shape[1]))
    weights = np.eye(history.shape[1]) - inverse / np.diag(inverse)
    for user in range(len(data.user_ids)):
        np.testing.assert_allclose(model._personal_scores(user), history[user] @ weights, rtol=1e-3, atol=1e-4)


def test_ease_over_a_larger_catalogue_models_the_most_interacted_with_items_and_says_so() -> None:
    records = [(f"u{n % 30}", f"i{n % 12}", "play", n) for n in range(300)] + [("u0", "rare", "view", 301)]
    model = EASEModel.fit(interactions_from_records(records), max_items=12)
    assert model.params["modelled_items"] == 12 and "12 most interacted-with of 13 items" in model.params["note"]
    assert "rare" not in {model.item_ids[i] for i in model.columns}


def _world(repeat: bool, seed: int = 0) -> Interactions:
    """Riders with tastes over four groups of items: they either come back to what they booked or never do."""
    rng = np.random.default_rng(seed)
    records = []
    for rider in range(150):
        group = rider % 4
        liked = [f"g{group}-{n}" for n in range(12)]
        seen: list[str] = []
        for step in range(20 if repeat else 10):
            item = seen[int(rng.integers(len(seen)))] if repeat and seen and rng.random() < 0.7 else None
            if item is None:
                fresh = [candidate for candidate in liked if candidate not in seen] or liked
                item = fresh[int(rng.integers(len(fresh)))]
            seen.append(item)
            records.append((f"r{rider}", item, "book", 1_700_000_000 + rider * 100 + step))
    return interactions_from_records(records)


@pytest.mark.parametrize("repeat", [True, False])
def test_the_search_learns_whether_riders_come_back_to_what_they_booked(repeat: bool) -> None:
    request = SearchRequest(algorithm="itemknn", fixed={"neighbors": 20, "shrinkage": 0.0}, max_trials=1)
    excluded = search(request, _world(repeat))["chosen"]["params"]["exclude"]
    assert excluded == [] if repeat else "book" in excluded


def test_the_search_is_reproducible_and_keeps_to_its_trials_and_budget() -> None:
    data = _world(False)
    request = SearchRequest(algorithm="auto", max_trials=6, seed=3)
    first, second = search(request, data), search(request, data)
    assert [t["params"] for t in first["trials"]] == [t["params"] for t in second["trials"]]
    assert first["chosen"] == second["chosen"] and first["stoppedBy"] == "trials"
    # Each algorithm's defaults come first.
    assert [t["algorithm"] for t in first["trials"][:4]] == ["ease", "als", "itemknn", "svd"]
    ticks = iter(range(1000))
    out_of_time = search(SearchRequest(algorithm="ease", budget_seconds=0.5), data, clock=lambda: float(next(ticks)))
    assert len(out_of_time["trials"]) == 1 and out_of_time["stoppedBy"] == "budget"


def test_a_model_that_learnt_nothing_fails_the_gate_and_a_good_one_passes() -> None:
    data = _world(False)
    cutoff = int(data.ts.max())
    good = train_and_evaluate(data, algorithm="ease", cutoff=cutoff, request=SearchRequest("ease", max_trials=1))
    assert good.beats_baseline and good.metrics["gate"]["interval"][0] > 0
    nothing = {"weights": {"view": 0.0, "play": 0.0, "book": 0.0, "skip": 0.0}, "exclude": []}
    broken = train_and_evaluate(
        data, algorithm="itemknn", cutoff=cutoff, request=SearchRequest("itemknn", fixed=nothing, max_trials=1)
    )
    assert not broken.beats_baseline
    low, high = broken.metrics["gate"]["interval"]
    assert low <= broken.metrics["gate"]["difference"] <= high and low <= 0


def test_an_unknown_parameter_or_exclusion_is_a_clear_error() -> None:
    data = _world(False)
    with pytest.raises(ValueError, match="itemknn: .*unexpected keyword argument 'depth'"):
        recommender_fit("itemknn", data, {"depth": 3})
    with pytest.raises(ValueError, match="exclude names unknown event types"):
        recommender_fit("ease", data, {"exclude": ["like"]})


def test_validation_scores_a_seeded_sample_of_riders_with_all_their_events(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(training, "VALIDATION_RIDERS", 20)
    split = user_holdout_split(_world(False), 0.2)
    sampled = training._sampled(split, np.random.default_rng(0))
    riders = set(sampled.test.users.tolist())
    assert len(riders) == 20
    assert len(sampled.test) == int(np.isin(split.test.users, list(riders)).sum())
    assert riders == set(training._sampled(split, np.random.default_rng(0)).test.users.tolist())


def test_with_a_cutoff_a_recipe_is_chosen_on_both_the_hold_out_and_the_days_before_the_cutoff() -> None:
    data = _world(True)
    cutoff = int(data.ts.max()) - 600
    request = SearchRequest(algorithm="itemknn", max_trials=2, chronological_seconds=3000)
    searched = search(request, data, cutoff=cutoff)
    for figures in searched["trials"][0]["ndcg@10ByExclusion"].values():
        assert set(figures) == {"holdout", "chronological", "score"}
        assert figures["score"] == pytest.approx(math.sqrt(figures["holdout"] * figures["chronological"]), abs=1e-5)
    # Only the per-user hold-out when no cutoff is given.
    alone = search(request, data)["trials"][0]["ndcg@10ByExclusion"]
    assert all(set(figures) == {"holdout", "score"} for figures in alone.values())

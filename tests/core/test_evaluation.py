"""Offline metrics against values computed by hand, and the split they are computed on."""

import math

import pytest

from core.recommender.algorithms import PopularityModel
from core.recommender.evaluation import (
    chronological_split,
    hit_at_k,
    ndcg_at_k,
    relevant_by_user,
    score_users,
    summary,
)
from core.recommender.interactions import interactions_from_records


def test_ndcg_of_a_single_hit_at_rank_two() -> None:
    assert ndcg_at_k(["a", "b", "c"], {"b"}, 10) == pytest.approx(1 / math.log2(3))


def test_ndcg_of_two_hits_against_the_ideal_ordering() -> None:
    expected = (1 + 1 / math.log2(4)) / (1 + 1 / math.log2(3))
    assert ndcg_at_k(["a", "b", "c"], {"a", "c"}, 10) == pytest.approx(expected)


def test_ndcg_only_counts_the_first_k() -> None:
    assert ndcg_at_k(["a", "b", "c"], {"c"}, 2) == 0.0
    assert ndcg_at_k(["c"], {"c", "d"}, 1) == 1.0


def test_a_perfect_list_scores_one_and_an_empty_relevance_set_zero() -> None:
    assert ndcg_at_k(["a", "b"], {"a", "b"}, 10) == pytest.approx(1.0)
    assert ndcg_at_k(["a"], set(), 10) == 0.0


def test_hit_rate() -> None:
    assert hit_at_k(["a", "b"], {"b"}, 10) == 1.0
    assert hit_at_k(["a", "b"], {"b"}, 1) == 0.0


RECORDS = [
    # before the cutoff (t < 100): u1 is heavy (10 events), u2 light (1 event); u3 appears only after it.
    *[("u1", "x", "view", t) for t in range(10)],
    ("u2", "y", "view", 50),
    # after the cutoff: plays and books are relevant, views are not.
    ("u1", "y", "book", 150),
    ("u2", "x", "play", 160),
    ("u2", "z", "view", 170),
    ("u3", "x", "book", 180),
]


def test_the_split_is_chronological_and_relevance_means_play_or_book() -> None:
    split = chronological_split(interactions_from_records(RECORDS), cutoff=100)
    assert len(split.train) == 11
    assert len(split.test) == 4
    assert relevant_by_user(split.test) == {"u1": {"y"}, "u2": {"x"}, "u3": {"x"}}


def test_evaluate_reports_overall_segments_and_coverage() -> None:
    split = chronological_split(interactions_from_records(RECORDS), cutoff=100)
    # Popularity from training: x (10 views) then y (1 view); z never seen before the cutoff.
    report = summary(score_users(PopularityModel.fit(split.train), split, k=1))
    # k=1 shows everyone x: u1 wanted y (miss), u2 wanted x (hit), u3 wanted x (hit).
    assert report["users"] == 3
    assert report["hitRate@10"] == pytest.approx(2 / 3, abs=1e-6)
    assert report["ndcg@10"] == pytest.approx(2 / 3, abs=1e-6)
    assert report["segments"]["heavy"] == {"users": 1, "ndcg@10": 0.0, "hitRate@10": 0.0}
    assert report["segments"]["light"] == {"users": 1, "ndcg@10": 1.0, "hitRate@10": 1.0}
    assert report["segments"]["cold"] == {"users": 1, "ndcg@10": 1.0, "hitRate@10": 1.0}
    assert report["coverage@10"] == pytest.approx(1 / 3, abs=1e-6)

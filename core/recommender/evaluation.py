"""Offline evaluation: NDCG@k, recall@k, MAP@k, HitRate@k and catalogue coverage, per activity segment, with
bootstrap intervals over users, on a per-user temporal hold-out or a global chronological split.

Pure numpy; the same split scores the candidate and the baselines, user by user, so their figures compare directly
and their differences pair.
"""

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from core.recommender.algorithms import Recommender
from core.recommender.interactions import EVENT_CODES, Interactions

# Test-period events that show real interest: an opened or booked item counts as relevant, a view does not.
RELEVANT_CODES = (EVENT_CODES["play"], EVENT_CODES["book"])
# Riders with fewer training events than this are "light"; riders with none are "cold".
HEAVY_MIN_EVENTS = 10
SEGMENTS = ("cold", "light", "heavy")


def ndcg_at_k(recommended: list[str], relevant: set[str], k: int) -> float:
    """Binary-relevance NDCG@k: DCG of the list over the DCG of a perfect list of min(k, |relevant|) hits."""
    if not relevant:
        return 0.0
    dcg = sum(1.0 / math.log2(rank + 2) for rank, item in enumerate(recommended[:k]) if item in relevant)
    ideal = sum(1.0 / math.log2(rank + 2) for rank in range(min(k, len(relevant))))
    return dcg / ideal


def recall_at_k(recommended: list[str], relevant: set[str], k: int) -> float:
    """The share of the relevant items among the first k recommendations."""
    if not relevant:
        return 0.0
    return sum(1 for item in recommended[:k] if item in relevant) / len(relevant)


def average_precision_at_k(recommended: list[str], relevant: set[str], k: int) -> float:
    """AP@k: the precision at each hit's rank, summed, over min(k, |relevant|) (so a perfect list scores 1)."""
    if not relevant:
        return 0.0
    hits, total = 0, 0.0
    for rank, item in enumerate(recommended[:k], start=1):
        if item in relevant:
            hits += 1
            total += hits / rank
    return total / min(k, len(relevant))


def hit_at_k(recommended: list[str], relevant: set[str], k: int) -> float:
    """1.0 when any of the first k recommendations is relevant, else 0.0."""
    return 1.0 if any(item in relevant for item in recommended[:k]) else 0.0


# Named for k = 10, the list the product serves by default.
METRICS = {
    "ndcg@10": ndcg_at_k,
    "recall@10": recall_at_k,
    "map@10": average_precision_at_k,
    "hitRate@10": hit_at_k,
}
SEGMENT_METRICS = ("ndcg@10", "hitRate@10")


@dataclass(frozen=True)
class Split:
    train: Interactions
    test: Interactions
    method: str


def chronological_split(data: Interactions, cutoff: int) -> Split:
    """Events before `cutoff` (Unix seconds) train; events at or after it test."""
    before = data.ts < cutoff
    method = "chronological split: fit on events before the cutoff, score the plays and books after it"
    return Split(train=data.subset(before), test=data.subset(~before), method=method)


def user_holdout_split(data: Interactions, fraction: float) -> Split:
    """Each user's newest `fraction` of events (rounded down, ties in time kept in stored order) test; the rest train.

    Every rider is scored on what they did next, however active they are and whenever they were active.
    """
    if not 0 < fraction < 1:
        raise ValueError("the hold-out fraction must be between 0 and 1")
    order = np.lexsort((np.arange(len(data)), data.ts, data.users))
    counts = np.bincount(data.users, minlength=len(data.user_ids))
    starts = np.cumsum(counts) - counts
    rank = np.empty(len(data), dtype=np.int64)
    rank[order] = np.arange(len(data)) - starts[data.users[order]]
    held = np.floor(counts * fraction).astype(np.int64)
    test = rank >= (counts - held)[data.users]
    method = (
        f"per-user temporal hold-out: fit on each rider's events but their newest {fraction:.0%}, "
        "score the plays and books among those"
    )
    return Split(train=data.subset(~test), test=data.subset(test), method=method)


def relevant_by_user(test: Interactions) -> dict[str, set[str]]:
    """For each test user, the items they opened or booked in the test period."""
    mask = np.isin(test.codes, RELEVANT_CODES)
    relevant: dict[str, set[str]] = {}
    for user, item in zip(test.users[mask].tolist(), test.items[mask].tolist(), strict=True):
        relevant.setdefault(test.user_ids[user], set()).add(test.item_ids[item])
    return relevant


def _segment_of(train_events: int) -> str:
    if train_events == 0:
        return "cold"
    return "light" if train_events < HEAVY_MIN_EVENTS else "heavy"


@dataclass(frozen=True)
class UserScores:
    """One model's metrics for each scored user, in the split's user order (so two models' scores pair)."""

    users: list[str]
    segments: list[str]
    metrics: dict[str, np.ndarray]
    shown: int
    catalogue: int


def score_users(model: Recommender, split: Split, *, k: int = 10) -> UserScores:
    """Score `model` (fitted on split.train) for every user with a play or book in split.test."""
    counts = np.bincount(split.train.users, minlength=len(split.train.user_ids))
    train_events = dict(zip(split.train.user_ids, counts.tolist(), strict=True))
    return score_relevant(model, relevant_by_user(split.test), train_events, k=k)


def score_relevant(
    model: Recommender, relevant: dict[str, set[str]], train_events: dict[str, int], *, k: int = 10
) -> UserScores:
    """Score `model` for every user in `relevant` against their relevant items; `train_events` (events each user had
    in training) places them in an activity segment."""
    values: dict[str, list[float]] = {name: [] for name in METRICS}
    segments: list[str] = []
    shown: set[str] = set()
    for user_id, items in relevant.items():
        segments.append(_segment_of(train_events.get(user_id, 0)))
        recommended = [item for item, _ in model.recommend(user_id, k)]
        shown.update(recommended)
        for name, metric in METRICS.items():
            values[name].append(metric(recommended, items, k))
    return UserScores(
        users=list(relevant),
        segments=segments,
        metrics={name: np.array(column, dtype=np.float64) for name, column in values.items()},
        shown=len(shown),
        catalogue=max(len(model.item_ids), 1),
    )


def bootstrap_interval(
    values: np.ndarray, *, seed: int = 0, resamples: int = 1000, level: float = 0.95
) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean of `values` (one per user), resampling users."""
    if values.shape[0] == 0:
        return (math.nan, math.nan)
    rng = np.random.default_rng(seed)
    means = np.empty(resamples)
    # In blocks, so that memory stays at a few million indices whatever the number of users.
    block = max(1, 4_000_000 // values.shape[0])
    for first in range(0, resamples, block):
        count = min(block, resamples - first)
        means[first : first + count] = values[rng.integers(0, values.shape[0], (count, values.shape[0]))].mean(axis=1)
    tail = (1 - level) / 2 * 100
    low, high = np.percentile(means, [tail, 100 - tail])
    return (round(float(low), 6), round(float(high), 6))


def _mean(values: np.ndarray) -> float | None:
    return round(float(values.mean()), 6) if values.shape[0] else None


def summary(scores: UserScores, *, seed: int = 0) -> dict[str, Any]:
    """Overall means with NDCG's bootstrap interval, coverage, and the means per activity segment."""
    segments = np.array(scores.segments)
    report: dict[str, Any] = {"users": len(scores.users)}
    report.update({name: _mean(column) for name, column in scores.metrics.items()})
    report["ndcg@10Interval"] = list(bootstrap_interval(scores.metrics["ndcg@10"], seed=seed))
    report["coverage@10"] = round(scores.shown / scores.catalogue, 6)
    report["segments"] = {
        segment: {
            "users": int((segments == segment).sum()),
            **{name: _mean(scores.metrics[name][segments == segment]) for name in SEGMENT_METRICS},
        }
        for segment in SEGMENTS
    }
    return report

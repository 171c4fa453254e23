"""Offline evaluation on a chronological split: NDCG@k, HitRate@k and catalogue coverage, per activity segment.

Pure numpy; the same split scores the candidate and the popularity baseline, so their numbers compare directly.
"""

import math
from collections.abc import Iterable
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


def hit_at_k(recommended: list[str], relevant: set[str], k: int) -> float:
    """1.0 when any of the first k recommendations is relevant, else 0.0."""
    return 1.0 if any(item in relevant for item in recommended[:k]) else 0.0


@dataclass(frozen=True)
class Split:
    train: Interactions
    test: Interactions
    cutoff: int


def chronological_split(data: Interactions, cutoff: int) -> Split:
    """Events before `cutoff` (Unix seconds) train; events at or after it test."""
    before = data.ts < cutoff
    return Split(train=data.subset(before), test=data.subset(~before), cutoff=cutoff)


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


def _summary(ndcgs: list[float], hits: list[float]) -> dict[str, Any]:
    return {
        "users": len(ndcgs),
        "ndcg@10": round(float(np.mean(ndcgs)), 6) if ndcgs else None,
        "hitRate@10": round(float(np.mean(hits)), 6) if hits else None,
    }


def evaluate(model: Recommender, split: Split, *, k: int = 10) -> dict[str, Any]:
    """Score `model` (fitted on split.train) against split.test: overall, per segment, and catalogue coverage."""
    relevant = relevant_by_user(split.test)
    train_counts = np.bincount(split.train.users, minlength=len(split.train.user_ids))
    ndcgs: dict[str, list[float]] = {segment: [] for segment in ("all", *SEGMENTS)}
    hits: dict[str, list[float]] = {segment: [] for segment in ("all", *SEGMENTS)}
    shown: set[str] = set()
    user_position = {user: index for index, user in enumerate(split.train.user_ids)}
    for user_id, items in relevant.items():
        position = user_position.get(user_id)
        segment = _segment_of(int(train_counts[position]) if position is not None else 0)
        recommended = [item for item, _ in model.recommend(user_id, k)]
        shown.update(recommended)
        for name in ("all", segment):
            ndcgs[name].append(ndcg_at_k(recommended, items, k))
            hits[name].append(hit_at_k(recommended, items, k))
    catalogue = max(len(model.item_ids), 1)
    return {
        **_summary(ndcgs["all"], hits["all"]),
        "coverage@10": round(len(shown) / catalogue, 6),
        "segments": {segment: _summary(ndcgs[segment], hits[segment]) for segment in SEGMENTS},
    }


def segment_sizes(values: Iterable[int]) -> dict[str, int]:
    """How many users fall in each activity segment, given their training event counts."""
    sizes = dict.fromkeys(SEGMENTS, 0)
    for value in values:
        sizes[_segment_of(value)] += 1
    return sizes

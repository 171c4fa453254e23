"""Fit a candidate and the popularity baseline on the same chronological split, then refit on the whole window."""

from dataclasses import dataclass
from typing import Any

from core.recommender.algorithms import PopularityModel, Recommender, recommender_fit
from core.recommender.evaluation import chronological_split, evaluate
from core.recommender.interactions import Interactions

K = 10


@dataclass(frozen=True)
class TrainingOutcome:
    model: Recommender
    metrics: dict[str, Any]
    counts: dict[str, Any]

    @property
    def beats_baseline(self) -> bool:
        candidate = self.metrics["candidate"]["ndcg@10"] or 0.0
        baseline = self.metrics["baseline"]["ndcg@10"] or 0.0
        return bool(candidate > baseline)


def _lift(candidate: float | None, baseline: float | None) -> float | None:
    if candidate is None or baseline is None or baseline == 0:
        return None
    return round(candidate / baseline - 1.0, 6)


def train_and_evaluate(
    data: Interactions, *, algorithm: str, params: dict[str, Any] | None = None, cutoff: int
) -> TrainingOutcome:
    """Evaluate `algorithm` against popularity on events before/after `cutoff`, then fit it on all events.

    The published model learns from the whole window; the metrics describe how the same recipe did on held-out days.
    """
    split = chronological_split(data, cutoff)
    if len(split.train) == 0:
        raise ValueError("no events before the evaluation cutoff: widen the lookback window or shorten the test days")
    candidate = evaluate(recommender_fit(algorithm, split.train, params), split, k=K)
    baseline = evaluate(PopularityModel.fit(split.train), split, k=K)
    metrics = {
        "k": K,
        "method": "chronological split: fit on events before the cutoff, score the plays and books after it",
        "candidate": candidate,
        "baseline": baseline,
        "ndcgLiftVsBaseline": _lift(candidate["ndcg@10"], baseline["ndcg@10"]),
    }
    counts = {
        "events": len(data),
        "users": len(data.user_ids),
        "items": len(data.item_ids),
        "trainEvents": len(split.train),
        "testEvents": len(split.test),
        "evaluatedUsers": candidate["users"],
    }
    return TrainingOutcome(model=recommender_fit(algorithm, data, params), metrics=metrics, counts=counts)

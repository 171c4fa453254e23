"""Rankings prepared ahead for every known rider when a model is loaded for serving (pure numpy)."""

import itertools
from dataclasses import dataclass
from typing import Any

import numpy as np

from core.recommender.algorithms import PersonalModel, Recommender

# What one precomputed entry costs: an item id reference and a float64 score.
RANKED_ENTRY_BYTES = 16


@dataclass
class PrecomputedRankings:
    """A personalised model with every known rider's ranking computed once, when it is loaded for serving.

    Scoring and ranking a rider takes a dozen numpy calls; reading a prepared ranking takes two slices. Each ranking
    is what the model itself returns for `depth` items, and its top k are the first k of that list, so every answer
    is the model's own. Unknown riders share one prepared row, the model's cold-start ranking; limits above `depth`
    are left to the model.
    """

    model: Recommender
    depth: int
    algorithm: str
    item_ids: list[str]
    _rows: dict[str, int]  # rider -> row; the last row is the cold start's
    _items: np.ndarray  # rows x width: item ids (object)
    _scores: np.ndarray  # rows x width: float64
    _lengths: list[int]

    def recommend(self, user_id: str, k: int) -> list[tuple[str, float]]:
        if not 0 < k <= self.depth:
            return self.model.recommend(user_id, k)
        row = self._rows.get(user_id, -1)
        n = min(k, self._lengths[row])
        return list(zip(self._items[row, :n].tolist(), self._scores[row, :n].tolist(), strict=True))

    def knows(self, user_id: str) -> bool:
        return user_id in self._rows

    def arrays(self) -> dict[str, np.ndarray]:
        return self.model.arrays()

    def config(self) -> dict[str, Any]:
        return self.model.config()


def rankings_precompute(model: Recommender, *, depth: int, max_bytes: int) -> Recommender:
    """`model` with its riders' top `depth` items ranked ahead when they fit in `max_bytes`, else `model` itself."""
    if not isinstance(model, PersonalModel):
        return model  # the popularity baseline ranks one list for everyone: nothing per rider to prepare
    width = min(depth, len(model.item_ids))
    riders = len(model.user_ids) + 1  # and the cold start
    if riders * width * RANKED_ENTRY_BYTES > max_bytes:
        return model
    items = np.empty((riders, width), dtype=object)
    scores = np.full((riders, width), -np.inf)
    lengths = []
    rankings = (model.recommend(user, width) for user in model.user_ids)
    for row, ranked in enumerate(itertools.chain(rankings, [model.cold_start(width)])):
        items[row, : len(ranked)] = [item for item, _ in ranked]
        scores[row, : len(ranked)] = [score for _, score in ranked]
        lengths.append(len(ranked))
    rows = model._user_index  # rider -> row, the model's own index: rows follow `user_ids`
    return PrecomputedRankings(model, depth, model.algorithm, model.item_ids, rows, items, scores, lengths)

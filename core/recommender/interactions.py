"""Events as the recommenders see them: parallel arrays of users, items, event codes and times, and the matrices
built from them (pure numpy/scipy)."""

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

# How much each event says about a rider's interest. A skip takes interest away; the sum is clipped at zero.
EVENT_WEIGHTS: dict[str, float] = {"view": 1.0, "play": 3.0, "book": 5.0, "skip": -1.0}
EVENT_CODES: dict[str, int] = {"view": 0, "play": 1, "book": 2, "skip": 3}


@dataclass(frozen=True)
class Interactions:
    """Events as parallel arrays: user and item indices into the id lists, event codes, Unix seconds."""

    user_ids: list[str]
    item_ids: list[str]
    users: np.ndarray
    items: np.ndarray
    codes: np.ndarray
    ts: np.ndarray

    def __len__(self) -> int:
        return int(self.users.shape[0])

    def subset(self, mask: np.ndarray) -> "Interactions":
        """The events selected by a boolean mask, with the same id lists."""
        return Interactions(
            self.user_ids, self.item_ids, self.users[mask], self.items[mask], self.codes[mask], self.ts[mask]
        )


def interactions_from_records(records: Sequence[tuple[str, str, str, float]]) -> Interactions:
    """Build Interactions from (userId, itemId, type, unix seconds) tuples; handy for small data and tests."""
    user_index: dict[str, int] = {}
    item_index: dict[str, int] = {}
    users = [user_index.setdefault(user, len(user_index)) for user, _, _, _ in records]
    items = [item_index.setdefault(item, len(item_index)) for _, item, _, _ in records]
    return Interactions(
        user_ids=list(user_index),
        item_ids=list(item_index),
        users=np.array(users, dtype=np.int32),
        items=np.array(items, dtype=np.int32),
        codes=np.array([EVENT_CODES[kind] for _, _, kind, _ in records], dtype=np.int8),
        ts=np.array([ts for _, _, _, ts in records], dtype=np.int64),
    )


DAY_SECONDS = 86_400


def interaction_matrix(
    data: Interactions, *, weights: dict[str, float] | None = None, half_life_days: float | None = None
) -> sp.csr_matrix:
    """Users x items matrix of summed event weights, clipped at zero and damped with log1p.

    The damping keeps a rider who viewed one destination fifty times from outweighing everything else they did. With
    `half_life_days`, an event counts half as much for every half-life between it and the newest event.
    """
    table = EVENT_WEIGHTS if weights is None else {**EVENT_WEIGHTS, **weights}
    values = np.array([table[kind] for kind in EVENT_CODES], dtype=np.float32)[data.codes]
    if half_life_days and len(data):
        age_days = (int(data.ts.max()) - data.ts) / DAY_SECONDS
        values = values * np.exp2(-age_days / half_life_days).astype(np.float32)
    shape = (len(data.user_ids), len(data.item_ids))
    matrix = sp.csr_matrix((values, (data.users, data.items)), shape=shape, dtype=np.float32)
    matrix.sum_duplicates()
    matrix.data = np.log1p(np.clip(matrix.data, 0.0, None))
    matrix.eliminate_zeros()
    return matrix


def seen_matrix(data: Interactions, kinds: Sequence[str]) -> sp.csr_matrix:
    """Users x items matrix with a 1 where the user had an event of one of `kinds` with the item."""
    chosen = np.isin(data.codes, [EVENT_CODES[kind] for kind in kinds])
    ones = np.ones(int(chosen.sum()), dtype=np.float32)
    shape = (len(data.user_ids), len(data.item_ids))
    matrix = sp.csr_matrix((ones, (data.users[chosen], data.items[chosen])), shape=shape, dtype=np.float32)
    matrix.sum_duplicates()
    matrix.data[:] = 1.0
    return matrix

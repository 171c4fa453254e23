"""Interactions summed per (rider, item): what the database's aggregation hands the trainer when the events are too
many to read one by one (pure numpy/scipy).

A pair holds its count of each event type, the same counts decayed for each half-life the search may try, and its
newest event time; every matrix the models train on is a function of these, so the events themselves never cross the
network.
"""

import hashlib
from array import array
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from core.recommender.interactions import EVENT_CODES, EVENT_WEIGHTS

KINDS = tuple(EVENT_CODES)
_MASK64 = (1 << 64) - 1


@dataclass(frozen=True)
class PairRecord:
    """One (rider, item) pair as the database sums it: counts per event type, decayed sums per half-life, newest ms."""

    user_id: str
    item_id: str
    counts: dict[str, int]
    decayed: dict[float, dict[str, float]]
    last_ms: int


@dataclass(frozen=True)
class Pairs:
    """Pairs as parallel arrays: user and item indices, counts (pairs x kinds), decayed sums per half-life, newest
    Unix second."""

    user_ids: list[str]
    item_ids: list[str]
    users: np.ndarray
    items: np.ndarray
    counts: np.ndarray
    decayed: dict[float, np.ndarray]
    last: np.ndarray
    # Order-independent digest of every pair read: the same pairs give the same digest.
    digest: str

    def __len__(self) -> int:
        return int(self.users.shape[0])

    @property
    def events(self) -> int:
        return int(self.counts.sum())

    def subset(self, mask: np.ndarray) -> "Pairs":
        """The pairs selected by a boolean mask, with the same id lists."""
        decayed = {half_life: values[mask] for half_life, values in self.decayed.items()}
        return Pairs(
            self.user_ids,
            self.item_ids,
            self.users[mask],
            self.items[mask],
            self.counts[mask],
            decayed,
            self.last[mask],
            self.digest,
        )

    def _matrix(self, values: np.ndarray, rows: np.ndarray, columns: np.ndarray) -> sp.csr_matrix:
        shape = (len(self.user_ids), len(self.item_ids))
        matrix = sp.csr_matrix((values, (rows, columns)), shape=shape, dtype=np.float32)
        matrix.sum_duplicates()
        return matrix

    def weights(self, *, weights: dict[str, float] | None = None, half_life_days: float | None = None) -> np.ndarray:
        """Each pair's value in the training matrix: summed event weights, clipped at zero, damped with log1p.

        The same values as core.recommender.interactions.interaction_matrix gives for the pairs' events.
        """
        table = EVENT_WEIGHTS if weights is None else {**EVENT_WEIGHTS, **weights}
        per_kind = np.array([table[kind] for kind in KINDS], dtype=np.float64)
        if half_life_days:
            if half_life_days not in self.decayed:
                raise ValueError(f"the pairs carry no sums decayed with a half-life of {half_life_days} days")
            summed = self.decayed[half_life_days] @ per_kind
        else:
            summed = self.counts @ per_kind
        return np.log1p(np.clip(summed, 0.0, None)).astype(np.float32)

    def matrix(self, *, weights: dict[str, float] | None = None, half_life_days: float | None = None) -> sp.csr_matrix:
        """Users x items training matrix (see `weights`), without the pairs whose value is zero."""
        matrix = self._matrix(self.weights(weights=weights, half_life_days=half_life_days), self.users, self.items)
        matrix.eliminate_zeros()
        return matrix

    def seen(self, kinds: Sequence[str]) -> sp.csr_matrix:
        """Users x items matrix with a 1 where the rider had an event of one of `kinds` with the item."""
        columns = [KINDS.index(kind) for kind in kinds]
        chosen = self.counts[:, columns].sum(axis=1) > 0 if columns else np.zeros(len(self), dtype=bool)
        ones = np.ones(int(chosen.sum()), dtype=np.float32)
        return self._matrix(ones, self.users[chosen], self.items[chosen])


class PairsBuilder:
    """Accumulates pairs into typed arrays (a few dozen bytes per pair) instead of Python objects."""

    def __init__(self, half_lives: Sequence[float]) -> None:
        self._half_lives = tuple(half_lives)
        self._user_index: dict[str, int] = {}
        self._item_index: dict[str, int] = {}
        self._users = array("i")
        self._items = array("i")
        self._counts = array("q")
        self._decayed = {half_life: array("d") for half_life in self._half_lives}
        self._last = array("q")
        self._digest = 0

    def __len__(self) -> int:
        return len(self._users)

    def add(self, pair: PairRecord) -> None:
        self._users.append(self._user_index.setdefault(pair.user_id, len(self._user_index)))
        self._items.append(self._item_index.setdefault(pair.item_id, len(self._item_index)))
        self._counts.extend(pair.counts.get(kind, 0) for kind in KINDS)
        for half_life in self._half_lives:
            self._decayed[half_life].extend(pair.decayed[half_life].get(kind, 0.0) for kind in KINDS)
        self._last.append(pair.last_ms // 1000)
        counts = ",".join(str(pair.counts.get(kind, 0)) for kind in KINDS)
        token = f"{pair.user_id}\x1f{pair.item_id}\x1f{counts}\x1f{pair.last_ms}".encode()
        # A sum of per-pair hashes does not depend on the order the database returns pairs in.
        self._digest = (self._digest + int.from_bytes(hashlib.blake2b(token, digest_size=8).digest())) & _MASK64

    def add_all(self, pairs: Iterable[PairRecord]) -> None:
        for pair in pairs:
            self.add(pair)

    def build(self) -> Pairs:
        width = len(KINDS)
        return Pairs(
            user_ids=list(self._user_index),
            item_ids=list(self._item_index),
            users=np.frombuffer(self._users, dtype=np.int32).copy(),
            items=np.frombuffer(self._items, dtype=np.int32).copy(),
            counts=np.frombuffer(self._counts, dtype=np.int64).reshape(-1, width).copy(),
            decayed={
                half_life: np.frombuffer(values, dtype=np.float64).reshape(-1, width).copy()
                for half_life, values in self._decayed.items()
            },
            last=np.frombuffer(self._last, dtype=np.int64).copy(),
            digest=f"{self._digest:016x}",
        )


def pair_holdout(pairs: Pairs, fraction: float) -> tuple[np.ndarray, str]:
    """Each rider's newest `fraction` of items (by their last event, rounded down, ties in stored order) held out.

    Returns the held-out mask and a description. The whole pair is held out: none of its events are trained on.
    """
    if not 0 < fraction < 1:
        raise ValueError("the hold-out fraction must be between 0 and 1")
    order = np.lexsort((np.arange(len(pairs)), pairs.last, pairs.users))
    counts = np.bincount(pairs.users, minlength=len(pairs.user_ids))
    starts = np.cumsum(counts) - counts
    rank = np.empty(len(pairs), dtype=np.int64)
    rank[order] = np.arange(len(pairs)) - starts[pairs.users[order]]
    held = np.floor(counts * fraction).astype(np.int64)
    method = (
        f"per-user temporal hold-out of items: fit on each rider's items but the newest {fraction:.0%} by their last "
        "event, score the played or booked ones among those"
    )
    return rank >= (counts - held)[pairs.users], method


def relevant_pairs(pairs: Pairs) -> dict[str, set[str]]:
    """For each rider, the items among `pairs` they opened or booked."""
    mask = (pairs.counts[:, KINDS.index("play")] + pairs.counts[:, KINDS.index("book")]) > 0
    relevant: dict[str, set[str]] = {}
    for user, item in zip(pairs.users[mask].tolist(), pairs.items[mask].tolist(), strict=True):
        relevant.setdefault(pairs.user_ids[user], set()).add(pairs.item_ids[item])
    return relevant

"""Interactions summed per (rider, item): what the database's aggregation hands the trainer when the events are too
many to read one by one (pure numpy/scipy).

Every event of a rider belongs to one of three levels of the per-user hold-out (as core.recommender.evaluation's
user_holdout_split and the single-machine search cut them): TEST, each rider's newest events; VALIDATION, the newest
of the rest; and TRAIN, the others. A pair holds, per level, its count of each event type and the same counts decayed
for each half-life the search may try, plus its newest event time. Every matrix the models train and are judged on is
a function of these, so the events themselves never cross the network.

The decayed sums are relative to the window's newest event; each level's newest event time rescales them to the
newest event of the levels a matrix is made of, which is what the single-machine trainer decays from.
"""

import hashlib
from array import array
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from core.recommender.interactions import DAY_SECONDS, EVENT_CODES, EVENT_WEIGHTS, Interactions

KINDS = tuple(EVENT_CODES)
TRAIN, VALIDATION, TEST = 0, 1, 2
LEVELS = (TRAIN, VALIDATION, TEST)
ALL_LEVELS = LEVELS
# What each stage learns from: the search fits on TRAIN and scores VALIDATION, the gate's fit adds VALIDATION and
# scores TEST, the published model learns from everything.
SEARCH_FIT, GATE_FIT = (TRAIN,), (TRAIN, VALIDATION)
RELEVANT_KINDS = ("play", "book")
_MASK64 = (1 << 64) - 1
_WIDTH = len(LEVELS) * len(KINDS)


@dataclass(frozen=True)
class PairRecord:
    """One (rider, item) pair as the database sums it: per level, counts per event type and sums decayed by each
    half-life; the pair's newest event in milliseconds, and its newest per level."""

    user_id: str
    item_id: str
    counts: dict[tuple[int, str], int]
    decayed: dict[float, dict[tuple[int, str], float]]
    last_ms: int
    level_last_ms: dict[int, int]


@dataclass(frozen=True)
class Pairs:
    """Pairs as parallel arrays: user and item indices, counts (pairs x levels x kinds), the decayed sums per
    half-life (same shape, relative to the newest event of all levels), newest Unix second; and each level's
    newest event in milliseconds (absent for an empty level)."""

    user_ids: list[str]
    item_ids: list[str]
    users: np.ndarray
    items: np.ndarray
    counts: np.ndarray
    decayed: dict[float, np.ndarray]
    last: np.ndarray
    level_newest_ms: dict[int, int]
    # Order-independent digest of every pair read: the same pairs give the same digest.
    digest: str

    def __len__(self) -> int:
        return int(self.users.shape[0])

    @property
    def events(self) -> int:
        return int(self.counts.sum())

    def _matrix(self, values: np.ndarray, mask: np.ndarray | None = None) -> sp.csr_matrix:
        rows, columns = (self.users, self.items) if mask is None else (self.users[mask], self.items[mask])
        values = values if mask is None else values[mask]
        shape = (len(self.user_ids), len(self.item_ids))
        matrix = sp.csr_matrix((values, (rows, columns)), shape=shape, dtype=np.float32)
        matrix.sum_duplicates()
        return matrix

    def weights(
        self,
        *,
        levels: Sequence[int] = ALL_LEVELS,
        weights: dict[str, float] | None = None,
        half_life_days: float | None = None,
    ) -> np.ndarray:
        """Each pair's value in the training matrix of `levels`: summed event weights, clipped at zero, damped with
        log1p. The same values core.recommender.interactions.interaction_matrix gives for those events (decay is
        relative to the newest of them)."""
        table = EVENT_WEIGHTS if weights is None else {**EVENT_WEIGHTS, **weights}
        per_kind = np.array([table[kind] for kind in KINDS], dtype=np.float64)
        scale = 1.0
        if half_life_days:
            if half_life_days not in self.decayed:
                raise ValueError(f"the pairs carry no sums decayed with a half-life of {half_life_days} days")
            source, scale = self.decayed[half_life_days], self._rescale(levels, half_life_days)
        else:
            source = self.counts
        # Level by level over views: one pairs-long vector at a time, never a copy of the pairs' cells.
        summed = np.zeros(len(self), dtype=np.float64)
        for level in levels:
            summed += source[:, level, :] @ per_kind
        summed *= scale
        values: np.ndarray = np.log1p(np.clip(summed, 0.0, None, out=summed)).astype(np.float32)
        return values

    def _rescale(self, levels: Sequence[int], half_life_days: float) -> float:
        """2 ** (age of the chosen levels' newest event against the window's newest, in half-lives)."""
        chosen = [self.level_newest_ms[level] for level in levels if level in self.level_newest_ms]
        if not chosen:
            return 1.0
        age_days = (max(self.level_newest_ms.values()) - max(chosen)) / 86_400_000
        return float(np.exp2(age_days / half_life_days))

    def matrix(
        self,
        *,
        levels: Sequence[int] = ALL_LEVELS,
        weights: dict[str, float] | None = None,
        half_life_days: float | None = None,
    ) -> sp.csr_matrix:
        """Users x items training matrix of `levels` (see `weights`), without the entries whose value is zero."""
        matrix = self._matrix(self.weights(levels=levels, weights=weights, half_life_days=half_life_days))
        matrix.eliminate_zeros()
        return matrix

    def _any(self, levels: Sequence[int], kinds: Sequence[str]) -> np.ndarray:
        columns = [KINDS.index(kind) for kind in kinds]
        if not columns:
            return np.zeros(len(self), dtype=bool)
        found = np.zeros(len(self), dtype=bool)
        for level in levels:
            for column in columns:
                found |= self.counts[:, level, column] > 0
        return found

    def seen(self, kinds: Sequence[str], *, levels: Sequence[int] = ALL_LEVELS) -> sp.csr_matrix:
        """Users x items matrix with a 1 where the rider had an event of one of `kinds` with the item in `levels`."""
        chosen = self._any(levels, kinds)
        return self._matrix(np.ones(len(self), dtype=np.float32), chosen)

    def relevant(self, level: int) -> dict[str, set[str]]:
        """For each rider, the items they opened or booked in `level` (what a model fitted before it should find)."""
        chosen = self._any((level,), RELEVANT_KINDS)
        relevant: dict[str, set[str]] = {}
        for user, item in zip(self.users[chosen].tolist(), self.items[chosen].tolist(), strict=True):
            relevant.setdefault(self.user_ids[user], set()).add(self.item_ids[item])
        return relevant

    def user_events(self, levels: Sequence[int]) -> dict[str, int]:
        """Each rider's number of events in `levels` (their activity segment in the evaluation)."""
        per_pair = np.zeros(len(self), dtype=np.int64)
        for level in levels:
            per_pair += self.counts[:, level, :].sum(axis=1)
        per_user = np.bincount(self.users, weights=per_pair, minlength=len(self.user_ids)).astype(np.int64)
        return dict(zip(self.user_ids, per_user.tolist(), strict=True))


class PairsBuilder:
    """Accumulates pairs into typed arrays (about a hundred bytes per pair) instead of Python objects."""

    def __init__(self, half_lives: Sequence[float]) -> None:
        self._half_lives = tuple(half_lives)
        self._user_index: dict[str, int] = {}
        self._item_index: dict[str, int] = {}
        self._users = array("i")
        self._items = array("i")
        self._counts = array("i")
        self._decayed = {half_life: array("f") for half_life in self._half_lives}
        self._last = array("q")
        self._level_newest_ms: dict[int, int] = {}
        self._digest = 0
        self._cells = [(level, kind) for level in LEVELS for kind in KINDS]

    def __len__(self) -> int:
        return len(self._users)

    def add(self, pair: PairRecord) -> None:
        self._users.append(self._user_index.setdefault(pair.user_id, len(self._user_index)))
        self._items.append(self._item_index.setdefault(pair.item_id, len(self._item_index)))
        self._counts.extend(pair.counts.get(cell, 0) for cell in self._cells)
        for half_life in self._half_lives:
            self._decayed[half_life].extend(pair.decayed[half_life].get(cell, 0.0) for cell in self._cells)
        self._last.append(pair.last_ms // 1000)
        for level, newest in pair.level_last_ms.items():
            self._level_newest_ms[level] = max(newest, self._level_newest_ms.get(level, newest))
        counts = ",".join(str(pair.counts.get(cell, 0)) for cell in self._cells)
        token = f"{pair.user_id}\x1f{pair.item_id}\x1f{counts}\x1f{pair.last_ms}".encode()
        # A sum of per-pair hashes does not depend on the order the database returns pairs in.
        self._digest = (self._digest + int.from_bytes(hashlib.blake2b(token, digest_size=8).digest())) & _MASK64

    def add_all(self, pairs: Iterable[PairRecord]) -> None:
        for pair in pairs:
            self.add(pair)

    def build(self) -> Pairs:
        """The pairs as arrays over the builder's own buffers (no copy: the peak stays at one set of arrays)."""
        shape = (-1, len(LEVELS), len(KINDS))
        return Pairs(
            user_ids=list(self._user_index),
            item_ids=list(self._item_index),
            users=np.frombuffer(self._users, dtype=np.int32),
            items=np.frombuffer(self._items, dtype=np.int32),
            counts=np.frombuffer(self._counts, dtype=np.int32).reshape(shape),
            decayed={
                half_life: np.frombuffer(values, dtype=np.float32).reshape(shape)
                for half_life, values in self._decayed.items()
            },
            last=np.frombuffer(self._last, dtype=np.int64),
            level_newest_ms=dict(self._level_newest_ms),
            digest=f"{self._digest:016x}",
        )


def holdout_levels(users: np.ndarray, ts: np.ndarray, n_users: int, fraction: float) -> np.ndarray:
    """Each event's level: a rider's newest floor(n * fraction) events are TEST, the newest floor(rest * fraction) of
    the rest VALIDATION, the others TRAIN, as the database's pipeline cuts them. Events at the same time keep their
    order in `users`/`ts` (the later one counts as newer), as the pipeline's tie-break on `_id` (insertion order)."""
    if not 0 < fraction < 1:
        raise ValueError("the hold-out fraction must be between 0 and 1")
    order = np.lexsort((np.arange(users.shape[0]), ts, users))
    counts = np.bincount(users, minlength=n_users)
    starts = np.cumsum(counts) - counts
    newest = np.empty(users.shape[0], dtype=np.int64)
    # 1 for each rider's newest event, as the pipeline's $documentNumber over ts descending.
    newest[order] = counts[users[order]] - (np.arange(users.shape[0]) - starts[users[order]])
    held = np.floor(counts * fraction).astype(np.int64)[users]
    validation = np.floor((counts[users] - held) * fraction).astype(np.int64)
    return np.where(newest <= held, TEST, np.where(newest - held <= validation, VALIDATION, TRAIN)).astype(np.int8)


def pairs_from_interactions(data: Interactions, half_lives: Sequence[float], fraction: float) -> Pairs:
    """Sum events per (rider, item) and level in memory, as the database's pipeline does: for data already here."""
    levels = holdout_levels(data.users, data.ts, len(data.user_ids), fraction)
    keys = data.users.astype(np.int64) * len(data.item_ids) + data.items
    unique, inverse = np.unique(keys, return_inverse=True)
    cells = (inverse, levels, data.codes)
    counts = np.zeros((unique.shape[0], len(LEVELS), len(KINDS)), dtype=np.int32)
    np.add.at(counts, cells, 1)
    newest = int(data.ts.max()) if len(data) else 0
    decayed = {}
    for half_life in half_lives:
        sums = np.zeros(counts.shape, dtype=np.float64)
        np.add.at(sums, cells, np.exp2(-(newest - data.ts) / DAY_SECONDS / half_life))
        decayed[half_life] = sums.astype(np.float32)
    last = np.full(unique.shape[0], np.iinfo(np.int64).min, dtype=np.int64)
    np.maximum.at(last, inverse, data.ts)
    level_newest_ms = {int(level): int(data.ts[levels == level].max()) * 1000 for level in np.unique(levels)}
    return Pairs(
        user_ids=list(data.user_ids),
        item_ids=list(data.item_ids),
        users=(unique // len(data.item_ids)).astype(np.int32),
        items=(unique % len(data.item_ids)).astype(np.int32),
        counts=counts,
        decayed=decayed,
        last=last,
        level_newest_ms=level_newest_ms,
        digest="",
    )

"""Turning a stream of events into compact training arrays and a digest of exactly which events they were."""

import hashlib
from array import array
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from core.recommender.interactions import EVENT_CODES, Interactions

_MASK64 = (1 << 64) - 1


@dataclass(frozen=True)
class TrainingData:
    interactions: Interactions
    # Order-independent digest of every (userId, itemId, type, ts) read: the same events give the same digest.
    events_digest: str


class InteractionsBuilder:
    """Accumulates events into typed arrays (a few bytes per event) instead of Python objects."""

    def __init__(self) -> None:
        self._user_index: dict[str, int] = {}
        self._item_index: dict[str, int] = {}
        self._users = array("i")
        self._items = array("i")
        self._codes = array("b")
        self._ts = array("q")
        self._digest = 0

    def __len__(self) -> int:
        return len(self._users)

    def add(self, user_id: str, item_id: str, kind: str, ts_ms: int) -> None:
        """Add one event; `ts_ms` is milliseconds since the epoch (MongoDB's own precision)."""
        self._users.append(self._user_index.setdefault(user_id, len(self._user_index)))
        self._items.append(self._item_index.setdefault(item_id, len(self._item_index)))
        self._codes.append(EVENT_CODES[kind])
        self._ts.append(ts_ms // 1000)
        token = f"{user_id}\x1f{item_id}\x1f{kind}\x1f{ts_ms}".encode()
        # A sum of per-event hashes does not depend on the order the database returns events in.
        self._digest = (self._digest + int.from_bytes(hashlib.blake2b(token, digest_size=8).digest())) & _MASK64

    def add_all(self, events: Iterable[tuple[str, str, str, int]]) -> None:
        for user_id, item_id, kind, ts_ms in events:
            self.add(user_id, item_id, kind, ts_ms)

    def build(self) -> TrainingData:
        interactions = Interactions(
            user_ids=list(self._user_index),
            item_ids=list(self._item_index),
            users=np.frombuffer(self._users, dtype=np.int32).copy(),
            items=np.frombuffer(self._items, dtype=np.int32).copy(),
            codes=np.frombuffer(self._codes, dtype=np.int8).copy(),
            ts=np.frombuffer(self._ts, dtype=np.int64).copy(),
        )
        return TrainingData(interactions=interactions, events_digest=f"{self._digest:016x}")

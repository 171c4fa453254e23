"""Recommenders for implicit feedback: a popularity baseline, item-item k-NN and truncated SVD (pure numpy/scipy).

Every model is fitted from `Interactions` and scores one user in well under a millisecond from arrays held in memory;
all of a model's state is plain arrays plus id lists, so it can be saved without pickle (see registry.artifacts).
"""

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import scipy.sparse as sp
from sklearn.decomposition import TruncatedSVD

# How much each event says about a rider's interest. A skip takes interest away; the sum is clipped at zero.
EVENT_WEIGHTS: dict[str, float] = {"view": 1.0, "play": 3.0, "book": 5.0, "skip": -1.0}
EVENT_CODES: dict[str, int] = {"view": 0, "play": 1, "book": 2, "skip": 3}
CONVERSION_CODE = EVENT_CODES["book"]
ALGORITHMS = ("popularity", "itemknn", "svd")


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


def interaction_matrix(data: Interactions) -> sp.csr_matrix:
    """Users x items matrix of summed event weights, clipped at zero and damped with log1p.

    The damping keeps a rider who viewed one destination fifty times from outweighing everything else they did.
    """
    weights = np.array([EVENT_WEIGHTS[kind] for kind in EVENT_CODES], dtype=np.float32)[data.codes]
    shape = (len(data.user_ids), len(data.item_ids))
    matrix = sp.csr_matrix((weights, (data.users, data.items)), shape=shape, dtype=np.float32)
    matrix.sum_duplicates()
    matrix.data = np.log1p(np.clip(matrix.data, 0.0, None))
    matrix.eliminate_zeros()
    return matrix


def conversion_matrix(data: Interactions) -> sp.csr_matrix:
    """Users x items matrix with a 1 where the user booked the item."""
    booked = data.codes == CONVERSION_CODE
    ones = np.ones(int(booked.sum()), dtype=np.float32)
    shape = (len(data.user_ids), len(data.item_ids))
    matrix = sp.csr_matrix((ones, (data.users[booked], data.items[booked])), shape=shape, dtype=np.float32)
    matrix.sum_duplicates()
    return matrix


# Up to this many items Python's sort ranks faster than numpy, and it keeps the GIL: numpy's sorts release it, and
# under gunicorn's threads each release is a contended hand-over costing more than the ranking itself.
PYTHON_SORT_MAX_ITEMS = 256


def ranked_items(item_ids: list[str], scores: np.ndarray, k: int) -> list[tuple[str, float]]:
    """The k best (item id, score), best first; ties go to the lower index, so results are reproducible.

    Items scored -inf (excluded, e.g. already booked) are left out.
    """
    n = scores.shape[0]
    k = min(k, n)
    if k <= 0:
        return []
    if n <= PYTHON_SORT_MAX_ITEMS:
        values = scores.tolist()
        best = sorted(range(n), key=values.__getitem__, reverse=True)[:k]  # stable: ties keep index order
        return [(item_ids[i], values[i]) for i in best if math.isfinite(values[i])]
    # Everything scoring at least the k-th best value: a partition alone would pick among ties at random.
    kth = np.partition(scores, n - k)[n - k]
    candidates = np.flatnonzero(scores >= kth)
    order = candidates[np.lexsort((candidates, -scores[candidates]))][:k]
    chosen = scores[order].tolist()
    return [(item_ids[i], score) for i, score in zip(order.tolist(), chosen, strict=True) if math.isfinite(score)]


class Recommender(Protocol):
    algorithm: str
    item_ids: list[str]

    def recommend(self, user_id: str, k: int) -> list[tuple[str, float]]: ...

    def arrays(self) -> dict[str, np.ndarray]: ...

    def config(self) -> dict[str, Any]: ...


@dataclass
class PopularityModel:
    """Items ranked by their total (damped) interest across all riders: the baseline every model must beat."""

    item_ids: list[str]
    scores: np.ndarray
    algorithm: str = "popularity"
    params: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def fit(cls, data: Interactions) -> "PopularityModel":
        scores = np.asarray(interaction_matrix(data).sum(axis=0)).ravel().astype(np.float32)
        return cls(item_ids=list(data.item_ids), scores=scores)

    def recommend(self, user_id: str, k: int) -> list[tuple[str, float]]:
        return ranked_items(self.item_ids, self.scores, k)

    def arrays(self) -> dict[str, np.ndarray]:
        return {"popularity": self.scores}

    def config(self) -> dict[str, Any]:
        return {"params": self.params}


@dataclass
class _PersonalModel:
    """What the personalized models share: user lookup, popularity fallback and fill, optional seen-item filtering."""

    item_ids: list[str]
    user_ids: list[str]
    popularity: np.ndarray
    # Items each user booked (CSR parts), filtered out when params["exclude_converted"] is true.
    converted: sp.csr_matrix
    params: dict[str, Any]
    _user_index: dict[str, int] = field(init=False, repr=False)
    _fill: np.ndarray = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._user_index = {user: index for index, user in enumerate(self.user_ids)}
        top = float(self.popularity.max()) if self.popularity.size else 0.0
        # A tiny popularity term breaks ties and fills lists when a user's own signal covers few items. In float64, so
        # adding it to float32 personal scores gives float64 scores, where a 1e-6 term is not lost to rounding.
        fill = (self.popularity / top * 1e-6) if top > 0 else np.zeros_like(self.popularity)
        self._fill = fill.astype(np.float64)

    def _personal_scores(self, user: int) -> np.ndarray:
        raise NotImplementedError

    def recommend(self, user_id: str, k: int) -> list[tuple[str, float]]:
        user = self._user_index.get(user_id)
        if user is None:
            return self.cold_start(k)
        scores = self._personal_scores(user) + self._fill
        if self.params.get("exclude_converted"):
            booked = self.converted.indices[self.converted.indptr[user] : self.converted.indptr[user + 1]]
            scores[booked] = -np.inf
        return ranked_items(self.item_ids, scores, k)

    def cold_start(self, k: int) -> list[tuple[str, float]]:
        """What an unknown rider gets: what is popular."""
        return ranked_items(self.item_ids, self.popularity, k)

    def _common_arrays(self) -> dict[str, np.ndarray]:
        return {
            "popularity": self.popularity,
            "converted_indptr": self.converted.indptr,
            "converted_indices": self.converted.indices,
        }

    def config(self) -> dict[str, Any]:
        return {"params": self.params, "user_ids": self.user_ids}


@dataclass
class ItemKNNModel(_PersonalModel):
    """Item-item cosine similarity over co-occurrence, keeping each item's strongest neighbours.

    A rider's score for an item is the similarity-weighted sum of their own (damped) interest in its neighbours.
    """

    history: sp.csr_matrix = field(default_factory=lambda: sp.csr_matrix((0, 0)))
    similarity: sp.csr_matrix = field(default_factory=lambda: sp.csr_matrix((0, 0)))
    algorithm: str = "itemknn"

    @classmethod
    def fit(cls, data: Interactions, *, neighbors: int = 50, exclude_converted: bool = False) -> "ItemKNNModel":
        history = interaction_matrix(data)
        norms = np.sqrt(np.asarray(history.multiply(history).sum(axis=0)).ravel())
        norms[norms == 0] = 1.0
        normalised = history @ sp.diags(1.0 / norms).astype(np.float32)
        similarity = (normalised.T @ normalised).tocsr()
        similarity = _keep_top_per_row(similarity, neighbors)
        return cls(
            item_ids=list(data.item_ids),
            user_ids=list(data.user_ids),
            popularity=PopularityModel.fit(data).scores,
            converted=conversion_matrix(data),
            params={"neighbors": neighbors, "exclude_converted": exclude_converted},
            history=history,
            similarity=similarity,
        )

    def _personal_scores(self, user: int) -> np.ndarray:
        # The similarity rows of the rider's items, weighted by their interest and summed per neighbour: gathered by
        # numpy indexing and summed by bincount, O(the rider's neighbour entries). Not a scipy product: scipy's
        # sparse kernels release the GIL, and under gunicorn's threads each release is a contended hand-over that
        # costs more than the sum.
        start, end = self.history.indptr[user], self.history.indptr[user + 1]
        items, interest = self.history.indices[start:end], self.history.data[start:end]
        first = self.similarity.indptr[items]
        lengths = self.similarity.indptr[items + 1] - first
        # Where each gathered entry sits in the similarity arrays: row r's run starts at first[r].
        positions = np.arange(int(lengths.sum())) + np.repeat(first - (np.cumsum(lengths) - lengths), lengths)
        weights = self.similarity.data[positions] * np.repeat(interest.astype(np.float64), lengths)
        return np.bincount(self.similarity.indices[positions], weights=weights, minlength=len(self.item_ids))

    def arrays(self) -> dict[str, np.ndarray]:
        return {
            **self._common_arrays(),
            **_csr_arrays("history", self.history),
            **_csr_arrays("similarity", self.similarity),
        }


@dataclass
class SVDModel(_PersonalModel):
    """Truncated SVD of the damped interaction matrix: a rider's score is their factor row times the item factors."""

    user_factors: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), dtype=np.float32))
    item_factors: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), dtype=np.float32))
    algorithm: str = "svd"

    @classmethod
    def fit(
        cls, data: Interactions, *, factors: int = 32, seed: int = 0, exclude_converted: bool = False
    ) -> "SVDModel":
        history = interaction_matrix(data)
        rank = max(1, min(factors, min(history.shape) - 1))
        svd = TruncatedSVD(n_components=rank, random_state=seed)
        user_factors = svd.fit_transform(history).astype(np.float32)
        return cls(
            item_ids=list(data.item_ids),
            user_ids=list(data.user_ids),
            popularity=PopularityModel.fit(data).scores,
            converted=conversion_matrix(data),
            params={"factors": rank, "seed": seed, "exclude_converted": exclude_converted},
            user_factors=user_factors,
            item_factors=svd.components_.T.astype(np.float32),
        )

    def _personal_scores(self, user: int) -> np.ndarray:
        scores: np.ndarray = self.item_factors @ self.user_factors[user]  # float32: recommend() adds the float64 fill
        return scores

    def arrays(self) -> dict[str, np.ndarray]:
        return {**self._common_arrays(), "user_factors": self.user_factors, "item_factors": self.item_factors}


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

    def arrays(self) -> dict[str, np.ndarray]:
        return self.model.arrays()

    def config(self) -> dict[str, Any]:
        return self.model.config()


def rankings_precompute(model: Recommender, *, depth: int, max_bytes: int) -> Recommender:
    """`model` with its riders' top `depth` items ranked ahead when they fit in `max_bytes`, else `model` itself."""
    if not isinstance(model, _PersonalModel):
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


def _keep_top_per_row(matrix: sp.csr_matrix, keep: int) -> sp.csr_matrix:
    """Keep the `keep` largest entries of each row: bounded size and scoring cost whatever the catalogue."""
    matrix = matrix.tocsr()
    rows, cols, vals = [], [], []
    for row in range(matrix.shape[0]):
        start, end = matrix.indptr[row], matrix.indptr[row + 1]
        if start == end:
            continue
        values = matrix.data[start:end]
        columns = matrix.indices[start:end]
        if values.shape[0] > keep:
            chosen = np.argpartition(-values, keep - 1)[:keep]
            values, columns = values[chosen], columns[chosen]
        rows.append(np.full(values.shape[0], row, dtype=np.int32))
        cols.append(columns)
        vals.append(values)
    if not rows:
        return sp.csr_matrix(matrix.shape, dtype=np.float32)
    result = sp.csr_matrix(
        (np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=matrix.shape, dtype=np.float32
    )
    result.sort_indices()
    return result


def _csr_arrays(name: str, matrix: sp.csr_matrix) -> dict[str, np.ndarray]:
    return {f"{name}_data": matrix.data, f"{name}_indices": matrix.indices, f"{name}_indptr": matrix.indptr}


def recommender_fit(algorithm: str, data: Interactions, params: dict[str, Any] | None = None) -> Recommender:
    """Fit the named algorithm with optional parameters."""
    options = dict(params or {})
    if algorithm == "popularity":
        return PopularityModel.fit(data)
    if algorithm == "itemknn":
        return ItemKNNModel.fit(data, **options)
    if algorithm == "svd":
        return SVDModel.fit(data, **options)
    raise ValueError(f"unknown algorithm {algorithm!r}; choose one of {', '.join(ALGORITHMS)}")


def _csr_from(arrays: dict[str, np.ndarray], name: str, shape: tuple[int, int]) -> sp.csr_matrix:
    parts = (arrays[f"{name}_data"], arrays[f"{name}_indices"], arrays[f"{name}_indptr"])
    return sp.csr_matrix(parts, shape=shape)


def recommender_from_arrays(
    algorithm: str, *, params: dict[str, Any], item_ids: list[str], user_ids: list[str], arrays: dict[str, np.ndarray]
) -> Recommender:
    """Rebuild a fitted model from what `arrays()` and `config()` gave (the inverse of saving it)."""
    if algorithm == "popularity":
        return PopularityModel(item_ids=item_ids, scores=arrays["popularity"], params=params)
    n_users, n_items = len(user_ids), len(item_ids)
    converted = sp.csr_matrix(
        (
            np.ones(arrays["converted_indices"].shape[0], dtype=np.float32),
            arrays["converted_indices"],
            arrays["converted_indptr"],
        ),
        shape=(n_users, n_items),
    )
    common: dict[str, Any] = {
        "item_ids": item_ids,
        "user_ids": user_ids,
        "popularity": arrays["popularity"],
        "converted": converted,
        "params": params,
    }
    if algorithm == "itemknn":
        return ItemKNNModel(
            **common,
            history=_csr_from(arrays, "history", (n_users, n_items)),
            similarity=_csr_from(arrays, "similarity", (n_items, n_items)),
        )
    if algorithm == "svd":
        return SVDModel(**common, user_factors=arrays["user_factors"], item_factors=arrays["item_factors"])
    raise ValueError(f"unknown algorithm {algorithm!r}; choose one of {', '.join(ALGORITHMS)}")

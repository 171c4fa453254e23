"""Recommenders for implicit feedback: a popularity baseline, item-item k-NN and truncated SVD (pure numpy/scipy).

Every model is fitted from `Interactions` and scores one user in well under a millisecond from arrays held in memory;
all of a model's state is plain arrays plus id lists, so it can be saved without pickle (see core.artifacts).
"""

from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import scipy.sparse as sp
from sklearn.decomposition import TruncatedSVD

from core.recommender.interactions import Interactions, conversion_matrix, interaction_matrix
from core.recommender.ranking import ranked_items

ALGORITHMS = ("popularity", "itemknn", "svd")


class Recommender(Protocol):
    algorithm: str
    item_ids: list[str]

    def recommend(self, user_id: str, k: int) -> list[tuple[str, float]]: ...

    def knows(self, user_id: str) -> bool:
        """Whether the rider was in the training data: an unknown one gets the model's cold-start answer."""
        ...

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

    def knows(self, user_id: str) -> bool:
        # The baseline answers everyone the same way by design: nobody is a cold start for it.
        return True

    def arrays(self) -> dict[str, np.ndarray]:
        return {"popularity": self.scores}

    def config(self) -> dict[str, Any]:
        return {"params": self.params}


@dataclass
class PersonalModel:
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

    def knows(self, user_id: str) -> bool:
        return user_id in self._user_index

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
class ItemKNNModel(PersonalModel):
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
class SVDModel(PersonalModel):
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

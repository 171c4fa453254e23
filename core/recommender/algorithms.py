"""Recommenders for implicit feedback: a popularity baseline, item-item k-NN, EASE, truncated SVD and ALS.

Every model is fitted from `Interactions` and scores one user in well under a millisecond from arrays held in memory;
all of a model's state is plain arrays plus id lists, so it can be saved without pickle (see core.artifacts).
"""

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Protocol, Self

import numpy as np
import scipy.sparse as sp
from sklearn.decomposition import TruncatedSVD

from core.recommender.interactions import EVENT_CODES, Interactions, interaction_matrix, seen_matrix
from core.recommender.ranking import ranked_items

ALGORITHMS = ("popularity", "itemknn", "svd", "ease", "als")


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


# Options every personalised model takes: which event types' items a rider is not shown again, how much each event
# type counts, and how fast old events fade.
COMMON_OPTIONS = ("exclude", "weights", "half_life_days")
# A dense EASE keeps items x items float32 matrices in memory (three while solving): past this many items it models
# only the most interacted-with ones and says so in its params.
EASE_MAX_ITEMS = 5000


@dataclass(frozen=True)
class _Parts:
    """What every personalised model is fitted from: the weighted history and the shared serving pieces."""

    history: sp.csr_matrix
    popularity: np.ndarray
    excluded: sp.csr_matrix
    params: dict[str, Any]

    def fields(self, data: Interactions, **params: Any) -> dict[str, Any]:
        """What every personalised model is built with, its own parameters added to the shared ones."""
        return {
            "item_ids": list(data.item_ids),
            "user_ids": list(data.user_ids),
            "popularity": self.popularity,
            "excluded": self.excluded,
            "params": {**self.params, **params},
        }


def _parts(
    data: Interactions,
    exclude: Sequence[str] = (),
    weights: dict[str, float] | None = None,
    half_life_days: float | None = None,
) -> _Parts:
    unknown = sorted(set(exclude) - set(EVENT_CODES))
    if unknown:
        raise ValueError(f"exclude names unknown event types {unknown}; choose from {', '.join(EVENT_CODES)}")
    return _Parts(
        history=interaction_matrix(data, weights=weights, half_life_days=half_life_days),
        popularity=PopularityModel.fit(data).scores,
        excluded=seen_matrix(data, exclude),
        params={"exclude": sorted(exclude), "weights": weights, "half_life_days": half_life_days},
    )


@dataclass
class PersonalModel:
    """What the personalized models share: user lookup, popularity fallback and fill, and the items each rider is not
    shown again (those of the event types in params["exclude"], learnt on validation)."""

    item_ids: list[str]
    user_ids: list[str]
    popularity: np.ndarray
    excluded: sp.csr_matrix
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
        scores[self.excluded.indices[self.excluded.indptr[user] : self.excluded.indptr[user + 1]]] = -np.inf
        return ranked_items(self.item_ids, scores, k)

    def with_exclusion(self, excluded: sp.csr_matrix, kinds: Sequence[str]) -> Self:
        """The same fitted model leaving out other items: how validation compares exclusion rules without refitting."""
        return replace(self, excluded=excluded, params={**self.params, "exclude": sorted(kinds)})

    def cold_start(self, k: int) -> list[tuple[str, float]]:
        """What an unknown rider gets: what is popular."""
        return ranked_items(self.item_ids, self.popularity, k)

    def _common_arrays(self) -> dict[str, np.ndarray]:
        return {
            "popularity": self.popularity,
            "excluded_indptr": self.excluded.indptr,
            "excluded_indices": self.excluded.indices,
        }

    def config(self) -> dict[str, Any]:
        return {"params": self.params, "user_ids": self.user_ids}


@dataclass
class PopularityWithoutSeenModel(PersonalModel):
    """Popularity less each rider's own items: the baseline to beat where riders rarely come back to an item.

    An evaluation baseline, not a servable algorithm."""

    algorithm: str = "popularity-without-seen"

    @classmethod
    def fit(cls, data: Interactions) -> "PopularityWithoutSeenModel":
        parts = _parts(data, exclude=tuple(EVENT_CODES))
        return cls(**parts.fields(data))

    def _personal_scores(self, user: int) -> np.ndarray:
        return np.zeros(len(self.item_ids))

    def arrays(self) -> dict[str, np.ndarray]:
        return self._common_arrays()


def _gathered_scores(history: sp.csr_matrix, user: int, rows: sp.csr_matrix, n_items: int) -> np.ndarray:
    """The rider's interest vector times a sparse items x items matrix, by gathering the rows of their items.

    Gathered by numpy indexing and summed by bincount, O(the rider's row entries). Not a scipy product: scipy's sparse
    kernels release the GIL, and under gunicorn's threads each release is a contended hand-over that costs more than
    the sum.
    """
    start, end = history.indptr[user], history.indptr[user + 1]
    items, interest = history.indices[start:end], history.data[start:end]
    first = rows.indptr[items]
    lengths = rows.indptr[items + 1] - first
    # Where each gathered entry sits in the row arrays: row r's run starts at first[r].
    positions = np.arange(int(lengths.sum())) + np.repeat(first - (np.cumsum(lengths) - lengths), lengths)
    weights = rows.data[positions] * np.repeat(interest.astype(np.float64), lengths)
    return np.bincount(rows.indices[positions], weights=weights, minlength=n_items)


@dataclass
class ItemKNNModel(PersonalModel):
    """Item-item cosine similarity over co-occurrence (shrunk towards zero for rarely co-occurring items), keeping each
    item's strongest neighbours.

    A rider's score for an item is the similarity-weighted sum of their own (damped) interest in its neighbours.
    """

    history: sp.csr_matrix = field(default_factory=lambda: sp.csr_matrix((0, 0)))
    similarity: sp.csr_matrix = field(default_factory=lambda: sp.csr_matrix((0, 0)))
    algorithm: str = "itemknn"

    @classmethod
    def fit(cls, data: Interactions, *, neighbors: int = 50, shrinkage: float = 0.0, **common: Any) -> "ItemKNNModel":
        parts = _parts(data, **common)
        history = parts.history
        norms = np.sqrt(np.asarray(history.multiply(history).sum(axis=0)).ravel())
        norms[norms == 0] = 1.0
        overlap = (history.T @ history).tocoo()
        overlap.data = overlap.data / (norms[overlap.row] * norms[overlap.col] + shrinkage)
        similarity = _keep_top_per_row(overlap.tocsr(), neighbors)
        return cls(
            **parts.fields(data, neighbors=neighbors, shrinkage=shrinkage),
            history=history,
            similarity=similarity,
        )

    def _personal_scores(self, user: int) -> np.ndarray:
        return _gathered_scores(self.history, user, self.similarity, len(self.item_ids))

    def arrays(self) -> dict[str, np.ndarray]:
        return {
            **self._common_arrays(),
            **_csr_arrays("history", self.history),
            **_csr_arrays("similarity", self.similarity),
        }


@dataclass
class EASEModel(PersonalModel):
    """EASE (Steck, 2019): the closed-form item-item model B = I - P / diag(P), P = (XᵀX + l2 I)⁻¹, zero diagonal.

    Dense in the modelled items (the `columns`, at most EASE_MAX_ITEMS of them, the most interacted-with): a rider's
    score is their interest vector times B; items outside the model get only the popularity fill.
    """

    history: sp.csr_matrix = field(default_factory=lambda: sp.csr_matrix((0, 0)))
    columns: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int32))
    weights_matrix: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), dtype=np.float32))
    algorithm: str = "ease"
    _position: np.ndarray = field(init=False, repr=False)

    def __post_init__(self) -> None:
        super().__post_init__()
        self._position = np.full(len(self.item_ids), -1, dtype=np.int64)
        self._position[self.columns] = np.arange(self.columns.shape[0])

    @classmethod
    def fit(
        cls, data: Interactions, *, l2: float = 500.0, max_items: int = EASE_MAX_ITEMS, **common: Any
    ) -> "EASEModel":
        if l2 <= 0:
            raise ValueError("EASE needs l2 > 0")
        parts = _parts(data, **common)
        support = np.diff(parts.history.tocsc().indptr)
        order = np.argsort(-support, kind="stable")
        columns = np.sort(order[: min(max_items, int((support > 0).sum()))]).astype(np.int32)
        modelled = parts.history[:, columns]
        gram = (modelled.T @ modelled).toarray().astype(np.float32)
        gram[np.diag_indices_from(gram)] += np.float32(l2)
        inverse = np.linalg.inv(gram)
        del gram
        weights_matrix = (inverse / -np.diag(inverse)).astype(np.float32)
        weights_matrix[np.diag_indices_from(weights_matrix)] = 0.0
        params: dict[str, Any] = {"l2": l2, "max_items": max_items, "modelled_items": int(columns.shape[0])}
        if columns.shape[0] < len(data.item_ids):
            params["note"] = (
                f"models the {columns.shape[0]} most interacted-with of {len(data.item_ids)} items "
                f"(dense EASE is limited to {max_items}); the others get only the popularity fill"
            )
        return cls(
            **parts.fields(data, **params),
            history=parts.history,
            columns=columns,
            weights_matrix=weights_matrix,
        )

    def _personal_scores(self, user: int) -> np.ndarray:
        start, end = self.history.indptr[user], self.history.indptr[user + 1]
        positions = self._position[self.history.indices[start:end]]
        modelled = positions >= 0
        scores = np.zeros(len(self.item_ids), dtype=np.float64)
        interest = self.history.data[start:end][modelled].astype(np.float32)
        scores[self.columns] = interest @ self.weights_matrix[positions[modelled]]
        return scores

    def arrays(self) -> dict[str, np.ndarray]:
        return {
            **self._common_arrays(),
            **_csr_arrays("history", self.history),
            "columns": self.columns,
            "weights_matrix": self.weights_matrix,
        }


@dataclass
class FactorModel(PersonalModel):
    """A rider's score is their factor row times the item factors."""

    user_factors: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), dtype=np.float32))
    item_factors: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), dtype=np.float32))

    def _personal_scores(self, user: int) -> np.ndarray:
        scores: np.ndarray = self.item_factors @ self.user_factors[user]  # float32: recommend() adds the float64 fill
        return scores

    def arrays(self) -> dict[str, np.ndarray]:
        return {**self._common_arrays(), "user_factors": self.user_factors, "item_factors": self.item_factors}


@dataclass
class SVDModel(FactorModel):
    """Truncated SVD of the damped interaction matrix."""

    algorithm: str = "svd"

    @classmethod
    def fit(cls, data: Interactions, *, factors: int = 32, seed: int = 0, **common: Any) -> "SVDModel":
        parts = _parts(data, **common)
        rank = max(1, min(factors, min(parts.history.shape) - 1))
        svd = TruncatedSVD(n_components=rank, random_state=seed)
        user_factors = svd.fit_transform(parts.history).astype(np.float32)
        return cls(
            **parts.fields(data, factors=rank, seed=seed),
            user_factors=user_factors,
            item_factors=svd.components_.T.astype(np.float32),
        )


@dataclass
class ALSModel(FactorModel):
    """Implicit-feedback matrix factorisation (Hu, Koren and Volinsky, 2008) by alternating least squares, fitted with
    the `implicit` library; served from its factors alone, so serving never imports it."""

    algorithm: str = "als"

    @classmethod
    def fit(
        cls,
        data: Interactions,
        *,
        factors: int = 64,
        regularization: float = 0.05,
        alpha: float = 1.0,
        iterations: int = 15,
        seed: int = 0,
        **common: Any,
    ) -> "ALSModel":
        from implicit.cpu.als import AlternatingLeastSquares  # type: ignore[import-untyped]  # the trainer's alone
        from threadpoolctl import threadpool_limits  # type: ignore[import-untyped]

        parts = _parts(data, **common)
        # implicit runs its own threads; a multithreaded BLAS under each of them only oversubscribes the cores.
        with threadpool_limits(limits=1, user_api="blas"):
            model = AlternatingLeastSquares(
                factors=factors,
                regularization=regularization,
                alpha=alpha,
                iterations=iterations,
                random_state=seed,
                calculate_training_loss=False,
            )
            model.fit(parts.history.astype(np.float32), show_progress=False)
        fitted = {"regularization": regularization, "alpha": alpha, "iterations": iterations, "seed": seed}
        return cls(
            **parts.fields(data, factors=factors, **fitted),
            user_factors=np.ascontiguousarray(model.user_factors, dtype=np.float32),
            item_factors=np.ascontiguousarray(model.item_factors, dtype=np.float32),
        )


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


FITTERS: dict[str, Any] = {
    "itemknn": ItemKNNModel.fit,
    "svd": SVDModel.fit,
    "ease": EASEModel.fit,
    "als": ALSModel.fit,
}


def _options(params: dict[str, Any] | None) -> dict[str, Any]:
    """Parameters as the models take them; `exclude_converted` (older artifacts and callers) means excluding books."""
    options = dict(params or {})
    if "exclude_converted" in options:
        options["exclude"] = ["book"] if options.pop("exclude_converted") else []
    return options


def recommender_fit(algorithm: str, data: Interactions, params: dict[str, Any] | None = None) -> Recommender:
    """Fit the named algorithm with optional parameters."""
    if algorithm == "popularity":
        return PopularityModel.fit(data)
    if algorithm not in FITTERS:
        raise ValueError(f"unknown algorithm {algorithm!r}; choose one of {', '.join(ALGORITHMS)}")
    try:
        model: Recommender = FITTERS[algorithm](data, **_options(params))
    except TypeError as exc:  # an unknown parameter name
        raise ValueError(f"{algorithm}: {exc}") from exc
    return model


def _csr_from(arrays: dict[str, np.ndarray], name: str, shape: tuple[int, int]) -> sp.csr_matrix:
    parts = (arrays[f"{name}_data"], arrays[f"{name}_indices"], arrays[f"{name}_indptr"])
    return sp.csr_matrix(parts, shape=shape)


def _excluded_from(arrays: dict[str, np.ndarray], params: dict[str, Any], shape: tuple[int, int]) -> sp.csr_matrix:
    # Older artifacts kept every rider's booked items as "converted", excluded when params["exclude_converted"].
    name = "excluded" if "excluded_indptr" in arrays else "converted"
    if name == "converted" and not params.get("exclude_converted"):
        return sp.csr_matrix(shape, dtype=np.float32)
    indices, indptr = arrays[f"{name}_indices"], arrays[f"{name}_indptr"]
    return sp.csr_matrix((np.ones(indices.shape[0], dtype=np.float32), indices, indptr), shape=shape)


def recommender_from_arrays(
    algorithm: str, *, params: dict[str, Any], item_ids: list[str], user_ids: list[str], arrays: dict[str, np.ndarray]
) -> Recommender:
    """Rebuild a fitted model from what `arrays()` and `config()` gave (the inverse of saving it)."""
    if algorithm == "popularity":
        return PopularityModel(item_ids=item_ids, scores=arrays["popularity"], params=params)
    n_users, n_items = len(user_ids), len(item_ids)
    common: dict[str, Any] = {
        "item_ids": item_ids,
        "user_ids": user_ids,
        "popularity": arrays["popularity"],
        "excluded": _excluded_from(arrays, params, (n_users, n_items)),
        "params": _options(params),
    }
    if algorithm == "itemknn":
        return ItemKNNModel(
            **common,
            history=_csr_from(arrays, "history", (n_users, n_items)),
            similarity=_csr_from(arrays, "similarity", (n_items, n_items)),
        )
    if algorithm == "ease":
        return EASEModel(
            **common,
            history=_csr_from(arrays, "history", (n_users, n_items)),
            columns=arrays["columns"],
            weights_matrix=arrays["weights_matrix"],
        )
    if algorithm in ("svd", "als"):
        factor_model = SVDModel if algorithm == "svd" else ALSModel
        return factor_model(**common, user_factors=arrays["user_factors"], item_factors=arrays["item_factors"])
    raise ValueError(f"unknown algorithm {algorithm!r}; choose one of {', '.join(ALGORITHMS)}")

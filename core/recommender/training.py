"""Choose a recommender on validation, judge it on held-out events against popularity, then fit it on everything.

Each rider's newest events are held out (the figures the gate reads). The search sees only the rest: it picks the
algorithm, parameters and exclusion rule on two validations of it, each rider's next events and the days before the
chronological cutoff. The chosen recipe is refitted without the held-out events and scored on them against the
baselines; the published model learns from all events. The global chronological split is reported beside it.
"""

import itertools
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from core.recommender.algorithms import (
    ALGORITHMS,
    PersonalModel,
    PopularityModel,
    PopularityWithoutSeenModel,
    Recommender,
    recommender_fit,
)
from core.recommender.evaluation import (
    Split,
    UserScores,
    bootstrap_interval,
    chronological_split,
    relevant_by_user,
    score_users,
    summary,
    user_holdout_split,
)
from core.recommender.interactions import EVENT_CODES, Interactions, seen_matrix

K = 10
AUTO = "auto"
# Which of a rider's items they are not shown again, from none to all they touched; learnt on validation.
EXCLUSION_RULES: tuple[tuple[str, ...], ...] = ((), ("book",), ("book", "play"), tuple(EVENT_CODES))
# Each algorithm's parameters to search, the default first. A trial draws one value per parameter.
SEARCH_SPACES: dict[str, dict[str, list[Any]]] = {
    "ease": {"l2": [500.0, 100.0, 2000.0, 50.0, 5000.0]},
    "als": {"factors": [64, 32, 128], "regularization": [0.05, 0.5, 5.0], "alpha": [1.0, 5.0, 20.0]},
    "itemknn": {"neighbors": [50, 100, 200, 20], "shrinkage": [0.0, 10.0, 50.0]},
    "svd": {"factors": [32, 64, 128, 16]},
}
# What every personalised model takes: how much a play and a view count against a book, and how fast events fade.
COMMON_SPACE: dict[str, list[Any]] = {
    "weights": [None, {"view": 1.0, "play": 1.0, "book": 1.0}, {"view": 0.0, "play": 2.0, "book": 5.0}],
    "half_life_days": [None, 180.0, 30.0],
}
# Riders scored per trial on validation, a seeded sample: a trial's cost then stops growing with the riders.
VALIDATION_RIDERS = 5000
Clock = Callable[[], float]


@dataclass(frozen=True)
class SearchRequest:
    """What to search: an algorithm (or AUTO for all), parameters held fixed, and the budget."""

    algorithm: str
    fixed: dict[str, Any] = field(default_factory=dict)
    budget_seconds: float = 60.0
    max_trials: int = 20
    seed: int = 0
    holdout_fraction: float = 0.2
    # The chronological validation's days, before the reported chronological split's cutoff.
    chronological_seconds: int = 3 * 86_400
    margin: float = 0.0


@dataclass(frozen=True)
class TrainingOutcome:
    model: Recommender
    metrics: dict[str, Any]
    counts: dict[str, Any]

    @property
    def beats_baseline(self) -> bool:
        return bool(self.metrics["gate"]["passes"])


def parameter_draws(
    space: dict[str, list[Any]], fixed: dict[str, Any], rng: np.random.Generator
) -> Iterator[dict[str, Any]]:
    """Trials from a space: its defaults first, then distinct random draws from it (minus what is fixed)."""
    space = {name: values for name, values in space.items() if name not in fixed}
    names = list(space)
    combinations = list(itertools.product(*(range(len(space[name])) for name in names)))
    order = [0, *(1 + rng.permutation(len(combinations) - 1))] if combinations else []
    for index in order:
        yield {**{name: space[name][combinations[index][i]] for i, name in enumerate(names)}, **fixed}


def _draws(algorithm: str, fixed: dict[str, Any], rng: np.random.Generator) -> Iterator[dict[str, Any]]:
    return parameter_draws({**SEARCH_SPACES[algorithm], **COMMON_SPACE}, fixed, rng)


def _trials(request: SearchRequest) -> Iterator[tuple[str, dict[str, Any]]]:
    rng = np.random.default_rng(request.seed)
    if request.algorithm != AUTO:
        for params in _draws(request.algorithm, request.fixed, rng):
            yield request.algorithm, params
        return
    # Every algorithm's defaults first, then their draws in turn.
    draws = {algorithm: _draws(algorithm, request.fixed, rng) for algorithm in SEARCH_SPACES}
    while draws:
        for algorithm in list(draws):
            drawn: dict[str, Any] | None = next(draws[algorithm], None)
            if drawn is None:
                del draws[algorithm]
            else:
                yield algorithm, drawn


@dataclass(frozen=True)
class _Validation:
    """One validation split and the items each exclusion rule leaves out of its riders' lists."""

    split: Split
    rules: dict[tuple[str, ...], Any]


def _validation_scores(model: Recommender, validation: _Validation) -> dict[str, float]:
    """NDCG@10 on validation under each exclusion rule, from one fitted model."""
    split = validation.split
    if not isinstance(model, PersonalModel):
        return {"": float(score_users(model, split, k=K).metrics["ndcg@10"].mean())}
    return {
        ",".join(kinds): float(score_users(model.with_exclusion(seen, kinds), split, k=K).metrics["ndcg@10"].mean())
        for kinds, seen in validation.rules.items()
    }


def _sampled(split: Split, rng: np.random.Generator) -> Split:
    """The split with the validation events of at most VALIDATION_RIDERS riders."""
    riders = np.unique(split.test.users)
    if riders.shape[0] <= VALIDATION_RIDERS:
        return split
    chosen = rng.choice(riders, VALIDATION_RIDERS, replace=False)
    return replace(split, test=split.test.subset(np.isin(split.test.users, chosen)))


def _validations(request: SearchRequest, data: Interactions, cutoff: int | None) -> dict[str, _Validation]:
    """The per-user hold-out of `data`, and with a cutoff, its events before it split chronologically
    `chronological_seconds` earlier (when both sides have events): none of the reported test events are used.

    A recipe is chosen on both: what each rider does next, and what everyone does over the following days.
    """
    rng = np.random.default_rng(request.seed)
    splits = {"holdout": _sampled(user_holdout_split(data, request.holdout_fraction), rng)}
    if cutoff is not None:
        before = data.subset(data.ts < cutoff)
        chronological = _sampled(chronological_split(before, cutoff - request.chronological_seconds), rng)
        if len(chronological.train) and relevant_by_user(chronological.test):
            splits["chronological"] = chronological
    kinds_list = [tuple(request.fixed["exclude"])] if "exclude" in request.fixed else list(EXCLUSION_RULES)
    return {
        name: _Validation(split, {kinds: seen_matrix(split.train, kinds) for kinds in kinds_list})
        for name, split in splits.items()
    }


def _trial_scores(
    algorithm: str, params: dict[str, Any], validations: dict[str, _Validation]
) -> dict[str, dict[str, float]]:
    """Validation NDCG@10 per exclusion rule and split, and their geometric mean (`score`), the figure compared."""
    by_split = {
        name: _validation_scores(recommender_fit(algorithm, validation.split.train, params), validation)
        for name, validation in validations.items()
    }
    scores: dict[str, dict[str, float]] = {}
    for rule in next(iter(by_split.values())):
        figures = {name: round(values[rule], 6) for name, values in by_split.items()}
        figures["score"] = round(float(np.prod(list(figures.values())) ** (1 / len(figures))), 6)
        scores[rule] = figures
    return scores


def search(
    request: SearchRequest, data: Interactions, *, cutoff: int | None = None, clock: Clock = time.monotonic
) -> dict[str, Any]:
    """Fit trial after trial on `data`'s older events and score them on the newer ones, within the budget.

    At least one trial runs whatever the budget; the trials run in a seeded order, so the same data, seed and number
    of trials give the same choice.
    """
    validations = _validations(request, data, cutoff)
    started = clock()
    trials: list[dict[str, Any]] = []
    stopped = "space"
    for algorithm, params in _trials(request):
        if trials and (len(trials) >= request.max_trials or clock() - started > request.budget_seconds):
            stopped = "trials" if len(trials) >= request.max_trials else "budget"
            break
        clock_trial = clock()
        scores = _trial_scores(algorithm, params, validations)
        trials.append(
            {
                "algorithm": algorithm,
                "params": params,
                "ndcg@10ByExclusion": scores,
                "seconds": round(clock() - clock_trial, 3),
            }
        )
    trial, rule, value = max(
        ((trial, rule, figures["score"]) for trial in trials for rule, figures in trial["ndcg@10ByExclusion"].items()),
        key=lambda entry: entry[2],
    )
    params = dict(trial["params"])
    if trial["algorithm"] != "popularity":
        params["exclude"] = [kind for kind in rule.split(",") if kind]
    methods = "; ".join(validation.split.method for validation in validations.values())
    return {
        "method": f"on the training part, at most {VALIDATION_RIDERS} riders each: {methods}; the score is the "
        "geometric mean of their NDCG@10",
        "budgetSeconds": request.budget_seconds,
        "maxTrials": request.max_trials,
        "seed": request.seed,
        "stoppedBy": stopped,
        "seconds": round(clock() - started, 3),
        "trials": trials,
        "chosen": {"algorithm": trial["algorithm"], "params": params, "score": round(value, 6)},
    }


def lift(candidate: float | None, baseline: float | None) -> float | None:
    if candidate is None or baseline is None or baseline == 0:
        return None
    return round(candidate / baseline - 1.0, 6)


def gate_against(candidate: UserScores, baselines: dict[str, UserScores], margin: float, seed: int) -> dict[str, Any]:
    """The candidate against the stronger baseline, user by user: passes when the whole interval clears `margin`."""
    name, baseline = max(baselines.items(), key=lambda entry: float(entry[1].metrics["ndcg@10"].mean()))
    difference = candidate.metrics["ndcg@10"] - baseline.metrics["ndcg@10"]
    low, high = bootstrap_interval(difference, seed=seed)
    return {
        "baseline": name,
        "metric": "ndcg@10",
        "difference": round(float(difference.mean()), 6) if difference.shape[0] else None,
        "interval": [low, high],
        "level": 0.95,
        "margin": margin,
        "passes": bool(difference.shape[0]) and low > margin,
    }


def train_and_evaluate(
    data: Interactions,
    *,
    algorithm: str,
    params: dict[str, Any] | None = None,
    cutoff: int,
    request: SearchRequest | None = None,
) -> TrainingOutcome:
    """Search on validation, score the chosen recipe on the held-out events and the chronological split against the
    baselines, then fit it on all events.

    The published model learns from the whole window; the metrics describe how the same recipe did on held-out events.
    """
    if algorithm != AUTO and algorithm not in ALGORITHMS:
        raise ValueError(f"unknown algorithm {algorithm!r}; choose one of {', '.join((*ALGORITHMS, AUTO))}")
    request = request or SearchRequest(algorithm=algorithm, fixed=dict(params or {}))
    holdout = user_holdout_split(data, request.holdout_fraction)
    if len(holdout.test) == 0 or len(holdout.train) == 0:
        raise ValueError("too few events per rider to hold any out: the evaluation needs riders with several events")
    searched = (
        search(request, holdout.train, cutoff=cutoff)
        if algorithm != "popularity"
        else {"trials": [], "chosen": {"algorithm": "popularity", "params": {}}}
    )
    chosen_algorithm, chosen_params = searched["chosen"]["algorithm"], searched["chosen"]["params"]
    candidate = score_users(recommender_fit(chosen_algorithm, holdout.train, chosen_params), holdout, k=K)
    baselines = {
        "popularity": score_users(PopularityModel.fit(holdout.train), holdout, k=K),
        "popularityWithoutSeen": score_users(PopularityWithoutSeenModel.fit(holdout.train), holdout, k=K),
    }
    gate = gate_against(candidate, baselines, request.margin, request.seed)
    reported = summary(candidate, seed=request.seed)
    metrics: dict[str, Any] = {
        "k": K,
        "method": holdout.method,
        "candidate": reported,
        "baseline": summary(baselines["popularity"], seed=request.seed),
        "baselineWithoutSeen": summary(baselines["popularityWithoutSeen"], seed=request.seed),
        "gate": gate,
        "ndcgLiftVsBaseline": lift(reported["ndcg@10"], float(baselines[gate["baseline"]].metrics["ndcg@10"].mean())),
        "chronological": _chronological(data, cutoff, chosen_algorithm, chosen_params),
        "search": searched,
    }
    counts = {
        "events": len(data),
        "users": len(data.user_ids),
        "items": len(data.item_ids),
        "trainEvents": len(holdout.train),
        "testEvents": len(holdout.test),
        "evaluatedUsers": reported["users"],
    }
    return TrainingOutcome(model=recommender_fit(chosen_algorithm, data, chosen_params), metrics=metrics, counts=counts)


def _chronological(data: Interactions, cutoff: int, algorithm: str, params: dict[str, Any]) -> dict[str, Any]:
    split = chronological_split(data, cutoff)
    if len(split.train) == 0 or len(split.test) == 0:
        return {"method": split.method, "skipped": "no events on one side of the cutoff"}
    return {
        "method": split.method,
        "candidate": summary(score_users(recommender_fit(algorithm, split.train, params), split, k=K)),
        "baseline": summary(score_users(PopularityModel.fit(split.train), split, k=K)),
    }

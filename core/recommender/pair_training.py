"""Choose, judge and fit an ALS recommender from interactions summed per (rider, item), with the fit itself handed to
an engine (Spark MLlib): the distributed counterpart of core.recommender.training.

The same per-user hold-out as the single-machine trainer, read from the pairs' levels: each rider's newest events
(TEST) judge the gate; the search fits on TRAIN and scores the newest of the rest (VALIDATION), trying parameters
and exclusion rules; the chosen recipe is refitted on TRAIN and VALIDATION and scored on TEST against the popularity
baselines of the same events; the published model learns from all of them. (The single-machine search also scores a
chronological validation; summed pairs carry no event times to split on.)
"""

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from core.recommender.algorithms import ALSModel, PopularityModel, PopularityWithoutSeenModel
from core.recommender.evaluation import UserScores, score_relevant, summary
from core.recommender.pairs import ALL_LEVELS, GATE_FIT, KINDS, SEARCH_FIT, TEST, VALIDATION, Pairs
from core.recommender.training import (
    COMMON_SPACE,
    EXCLUSION_RULES,
    VALIDATION_RIDERS,
    Clock,
    K,
    SearchRequest,
    TrainingOutcome,
    gate_against,
    lift,
    parameter_draws,
)

# Spark's ALS scales each row's regularisation by its number of ratings (ALS-WR), so its values differ from the
# single-machine ALS's; the defaults first.
ENGINE_ALS_SPACE: dict[str, list[Any]] = {
    "factors": [64, 32, 128],
    "regularization": [0.1, 0.01, 1.0],
    "alpha": [1.0, 5.0, 20.0],
}
ENGINE_ALS_ITERATIONS = 10
# The half-lives the search may try: the database sums each pair's events decayed by each of them.
SEARCH_HALF_LIVES: tuple[float, ...] = tuple(value for value in COMMON_SPACE["half_life_days"] if value)


@dataclass(frozen=True)
class Factors:
    """What an engine fitted: a factor row per rider and per item, in the pairs' index order (zeros where absent)."""

    users: np.ndarray
    items: np.ndarray
    # What the engine reports about itself, e.g. {"engine": "spark", "sparkVersion": "4.3.0", "master": "local[2]"}.
    about: dict[str, str] = field(default_factory=dict)


# Fits ALS on a users x items matrix of the given pairs' values: (pairs, values per pair, parameters) -> factors.
FactorFitter = Callable[[Pairs, np.ndarray, dict[str, Any]], Factors]


def half_lives_needed(fixed: dict[str, Any]) -> tuple[float, ...]:
    """The half-lives the pairs must carry for a search with these fixed parameters."""
    if "half_life_days" in fixed:
        return (float(fixed["half_life_days"]),) if fixed["half_life_days"] else ()
    return SEARCH_HALF_LIVES


def _popularity(pairs: Pairs, levels: Sequence[int]) -> np.ndarray:
    return np.asarray(pairs.matrix(levels=levels).sum(axis=0)).ravel().astype(np.float32)


def als_fit_pairs(
    pairs: Pairs, params: dict[str, Any], fit: FactorFitter, *, levels: Sequence[int] = ALL_LEVELS
) -> tuple[ALSModel, Factors]:
    """An ALS model fitted by the engine on the pairs' `levels`, with the serving pieces the single-machine ALS has."""
    options = {name: value for name, value in params.items() if name != "exclude"}
    exclude = sorted(params.get("exclude", []))
    unknown = sorted(set(exclude) - set(KINDS))
    if unknown:
        raise ValueError(f"exclude names unknown event types {unknown}; choose from {', '.join(KINDS)}")
    values = pairs.weights(levels=levels, weights=options.get("weights"), half_life_days=options.get("half_life_days"))
    fitted = {"iterations": ENGINE_ALS_ITERATIONS, "seed": 0, **options}
    factors = fit(pairs, values, fitted)
    model = ALSModel(
        item_ids=list(pairs.item_ids),
        user_ids=list(pairs.user_ids),
        popularity=_popularity(pairs, levels),
        excluded=pairs.seen(exclude, levels=levels),
        params={**fitted, "exclude": exclude},
        user_factors=factors.users,
        item_factors=factors.items,
    )
    return model, factors


def _sampled(relevant: dict[str, set[str]], rng: np.random.Generator) -> dict[str, set[str]]:
    if len(relevant) <= VALIDATION_RIDERS:
        return relevant
    chosen = rng.choice(np.array(sorted(relevant)), VALIDATION_RIDERS, replace=False)
    return {user: relevant[user] for user in chosen.tolist()}


def _search(request: SearchRequest, pairs: Pairs, fit: FactorFitter, clock: Clock) -> dict[str, Any]:
    rng = np.random.default_rng(request.seed)
    relevant = _sampled(pairs.relevant(VALIDATION), rng)
    train_events = pairs.user_events(SEARCH_FIT)
    rules = [tuple(request.fixed["exclude"])] if "exclude" in request.fixed else list(EXCLUSION_RULES)
    seen = {kinds: pairs.seen(kinds, levels=SEARCH_FIT) for kinds in rules}
    fixed = {name: value for name, value in request.fixed.items() if name != "exclude"}
    started, stopped = clock(), "space"
    trials: list[dict[str, Any]] = []
    for params in parameter_draws({**ENGINE_ALS_SPACE, **COMMON_SPACE}, fixed, rng):
        if trials and (len(trials) >= request.max_trials or clock() - started > request.budget_seconds):
            stopped = "trials" if len(trials) >= request.max_trials else "budget"
            break
        clock_trial = clock()
        model, _ = als_fit_pairs(pairs, params, fit, levels=SEARCH_FIT)
        scores: dict[str, dict[str, float]] = {}
        for kinds in rules:
            scored = score_relevant(model.with_exclusion(seen[kinds], kinds), relevant, train_events, k=K)
            value = round(float(scored.metrics["ndcg@10"].mean()), 6)
            scores[",".join(kinds)] = {"holdout": value, "score": value}
        trials.append(
            {
                "algorithm": "als",
                "params": params,
                "ndcg@10ByExclusion": scores,
                "seconds": round(clock() - clock_trial, 3),
            }
        )
    trial, rule, value = max(
        ((trial, rule, figures["score"]) for trial in trials for rule, figures in trial["ndcg@10ByExclusion"].items()),
        key=lambda entry: entry[2],
    )
    return {
        "method": f"on the training part, at most {VALIDATION_RIDERS} riders: each rider's newest "
        f"{request.holdout_fraction:.0%} of the rest held out; the score is its NDCG@10",
        "budgetSeconds": request.budget_seconds,
        "maxTrials": request.max_trials,
        "seed": request.seed,
        "stoppedBy": stopped,
        "seconds": round(clock() - started, 3),
        "trials": trials,
        "chosen": {
            "algorithm": "als",
            "params": {**trial["params"], "exclude": [kind for kind in rule.split(",") if kind]},
            "score": round(value, 6),
        },
    }


def _baseline_scores(
    pairs: Pairs, relevant: dict[str, set[str]], train_events: dict[str, int]
) -> dict[str, UserScores]:
    popularity = PopularityModel(item_ids=list(pairs.item_ids), scores=_popularity(pairs, GATE_FIT))
    without_seen = PopularityWithoutSeenModel(
        item_ids=list(pairs.item_ids),
        user_ids=list(pairs.user_ids),
        popularity=popularity.scores,
        excluded=pairs.seen(KINDS, levels=GATE_FIT),
        params={"exclude": sorted(KINDS), "weights": None, "half_life_days": None},
    )
    return {
        "popularity": score_relevant(popularity, relevant, train_events, k=K),
        "popularityWithoutSeen": score_relevant(without_seen, relevant, train_events, k=K),
    }


def train_and_evaluate_pairs(
    pairs: Pairs, *, request: SearchRequest, fit: FactorFitter, clock: Clock = time.monotonic
) -> tuple[TrainingOutcome, Factors]:
    """Search on validation, score the chosen recipe on the held-out events against the baselines, then fit it on all
    events. Returns the outcome and what the engine said about the final fit."""
    relevant = pairs.relevant(TEST)
    if not relevant or not pairs.relevant(VALIDATION):
        raise ValueError("too few events per rider to hold any out: the evaluation needs riders with several events")
    searched = _search(request, pairs, fit, clock)
    chosen = searched["chosen"]["params"]
    train_events = pairs.user_events(GATE_FIT)
    candidate_model, _ = als_fit_pairs(pairs, chosen, fit, levels=GATE_FIT)
    candidate = score_relevant(candidate_model, relevant, train_events, k=K)
    baselines = _baseline_scores(pairs, relevant, train_events)
    gate = gate_against(candidate, baselines, request.margin, request.seed)
    reported = summary(candidate, seed=request.seed)
    metrics: dict[str, Any] = {
        "k": K,
        "method": f"per-user temporal hold-out: fit on each rider's events but their newest "
        f"{request.holdout_fraction:.0%}, score the plays and books among those",
        "candidate": reported,
        "baseline": summary(baselines["popularity"], seed=request.seed),
        "baselineWithoutSeen": summary(baselines["popularityWithoutSeen"], seed=request.seed),
        "gate": gate,
        "ndcgLiftVsBaseline": lift(reported["ndcg@10"], float(baselines[gate["baseline"]].metrics["ndcg@10"].mean())),
        "chronological": {
            "method": "chronological split",
            "skipped": "the engine reads events summed per rider and item, so there are no event times to split on",
        },
        "search": searched,
    }
    model, factors = als_fit_pairs(pairs, chosen, fit)
    counts = {
        "events": pairs.events,
        "pairs": len(pairs),
        "users": len(pairs.user_ids),
        "items": len(pairs.item_ids),
        "trainEvents": int(pairs.counts[:, list(GATE_FIT), :].sum()),
        "testEvents": int(pairs.counts[:, TEST, :].sum()),
        "evaluatedUsers": reported["users"],
    }
    return TrainingOutcome(model=model, metrics=metrics, counts=counts), factors

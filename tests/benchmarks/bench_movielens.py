"""`make bench`: the served recommenders on a real public data set, MovieLens "latest small", against references.

The whole product path: the ratings of the train split are imported with `manage.py import_events`, each algorithm is
trained with `manage.py train` and promoted to control, and every test user is scored through the served
`GET /recommendations` of the app under gunicorn. References computed here with numpy/scipy alone, on the same train
split: popularity, popularity without the user's own train items, and EASE (Steck 2019).

Protocol: a user's ratings sorted by (timestamp, movieId); the newest ceil(20%) are held out (a user with fewer than
5 ratings keeps all in train; MovieLens small has none). Ratings of 4 and more become `book` events, 3 to 3.5 `play`,
below 3 `view`; the held-out plays and books are the user's relevant items. All timestamps are shifted by one
constant so that the newest rating is an hour old: the event API refuses times before 2000, and training reads a
window that ends now. Progress on stderr; the results replace the `movielens` section of docs/BENCHMARKS.md.
"""

import json
import math
import os
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd  # type: ignore[import-untyped]
import scipy.sparse as sp

BASE_DIR = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(BASE_DIR))

K = 10
TEST_SHARE = 5  # one rating in five, rounded up, is held out
MIN_RATINGS_TO_SPLIT = 5
EASE_LAMBDA = 500.0
BOOTSTRAP_RESAMPLES = 1000
BOOTSTRAP_SEED = 0
# The product's own check inside `manage.py train` (a chronological split): its test days cover this share of the
# newest train events.
TRAIN_CHECK_SHARE = 0.1
DATABASE = "movielens"
SERVE_TIMEOUT_SECONDS = 120.0
# Users with at least one relevant held-out item, ranked lists (movie ids, best first) for each of them.
Rankings = dict[int, list[int]]


def _progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)  # noqa: T201


@dataclass(frozen=True)
class Split:
    train: pd.DataFrame
    relevant: dict[int, set[int]]
    held_out: int


def split_ratings(ratings: pd.DataFrame) -> Split:
    """Hold out each user's newest ceil(20%) ratings (none for a user with fewer than 5); relevant: rated 3 or more."""
    ordered = ratings.sort_values(["userId", "timestamp", "movieId"], kind="stable")
    newest_first = ordered.groupby("userId").cumcount(ascending=False).to_numpy()
    count = ordered.groupby("userId")["movieId"].transform("size").to_numpy()
    held = np.where(count >= MIN_RATINGS_TO_SPLIT, (count + TEST_SHARE - 1) // TEST_SHARE, 0)
    test_mask = newest_first < held
    test = ordered[test_mask & (ordered["rating"].to_numpy() >= 3)]
    relevant = {int(user): set(group.tolist()) for user, group in test.groupby("userId")["movieId"]}
    return Split(train=ordered[~test_mask].reset_index(drop=True), relevant=relevant, held_out=int(test_mask.sum()))


def event_types(rating: np.ndarray) -> np.ndarray:
    return np.select([rating >= 4, rating >= 3], ["book", "play"], "view")


def write_events(train: pd.DataFrame, path: Path, shift: int) -> int:
    """The train ratings as JSON Lines events (userId u<id>, itemId m<id>, ISO time shifted by `shift` seconds)."""
    kinds = event_types(train["rating"].to_numpy())
    with path.open("w") as handle:
        columns = (train["userId"].tolist(), train["movieId"].tolist(), kinds.tolist(), train["timestamp"].tolist())
        for user, movie, kind, ts in zip(*columns, strict=True):
            when = datetime.fromtimestamp(ts + shift, UTC).isoformat()
            handle.write(json.dumps({"type": kind, "userId": f"u{user}", "itemId": f"m{movie}", "ts": when}) + "\n")
    return len(train)


# Metrics: binary relevance over the top K.


def user_metrics(ranked: Sequence[int], relevant: set[int]) -> tuple[float, float, float]:
    """NDCG@K (ideal: min(K, |relevant|) hits on top), recall@K (hits / |relevant|), AP@K (over min(K, |relevant|))."""
    dcg, hits, precision_sum = 0.0, 0, 0.0
    for rank, item in enumerate(ranked[:K]):
        if item in relevant:
            hits += 1
            dcg += 1.0 / math.log2(rank + 2)
            precision_sum += hits / (rank + 1)
    ideal = min(K, len(relevant))
    idcg = sum(1.0 / math.log2(rank + 2) for rank in range(ideal))
    return dcg / idcg, hits / len(relevant), precision_sum / ideal


@dataclass
class Scored:
    name: str
    ndcg: np.ndarray
    recall: float
    map: float
    seen_share: float
    train_seconds: float | None = None
    note: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


def score(name: str, rankings: Rankings, split: Split, seen: dict[int, set[int]]) -> Scored:
    users = sorted(split.relevant)
    per_user = np.array([user_metrics(rankings.get(user, []), split.relevant[user]) for user in users])
    shown = sum(len(rankings.get(user, [])[:K]) for user in users)
    already = sum(len(set(rankings.get(user, [])[:K]) & seen.get(user, set())) for user in users)
    return Scored(
        name=name,
        ndcg=per_user[:, 0],
        recall=float(per_user[:, 1].mean()),
        map=float(per_user[:, 2].mean()),
        seen_share=already / shown if shown else 0.0,
    )


# References: numpy/scipy only, on the same train split.


@dataclass(frozen=True)
class TrainMatrix:
    users: np.ndarray
    items: np.ndarray
    matrix: sp.csr_matrix  # binary users x items


def train_matrix(train: pd.DataFrame) -> TrainMatrix:
    users, user_index = np.unique(train["userId"].to_numpy(), return_inverse=True)
    items, item_index = np.unique(train["movieId"].to_numpy(), return_inverse=True)
    ones = np.ones(len(train), dtype=np.float64)
    matrix = sp.csr_matrix((ones, (user_index, item_index)), shape=(len(users), len(items)))
    matrix.data[:] = 1.0  # binary even if a user rated an item twice
    return TrainMatrix(users=users, items=items, matrix=matrix)


def top_items(scores: np.ndarray, items: np.ndarray, exclude: np.ndarray | None = None) -> list[int]:
    """The K best items, ties to the lower movie id; `exclude` (column indices) never ranked."""
    values = scores.astype(np.float64, copy=True)
    if exclude is not None:
        values[exclude] = -np.inf
    order = np.lexsort((np.arange(values.shape[0]), -values))[:K]
    return [int(items[column]) for column in order if np.isfinite(values[column])]


def reference_rankings(data: TrainMatrix, users: list[int]) -> dict[str, tuple[Rankings, float]]:
    """Each reference's top K for `users`, and the seconds its fit took."""
    row = {int(user): index for index, user in enumerate(data.users)}
    matrix = data.matrix
    counts = np.asarray(matrix.sum(axis=0)).ravel()  # train users per item, unweighted
    seen = {user: matrix.indices[matrix.indptr[row[user]] : matrix.indptr[row[user] + 1]] for user in users}
    everyone = top_items(counts, data.items)
    clock = time.perf_counter()
    gram = (matrix.T @ matrix).toarray()
    gram[np.diag_indices_from(gram)] += EASE_LAMBDA
    inverse = np.linalg.inv(gram)
    weights = inverse / -np.diag(inverse)  # B = I - P diag(1/diag(P)): column j divided by P_jj, diagonal zero
    weights[np.diag_indices_from(weights)] = 0.0
    ease_scores = matrix[[row[user] for user in users]] @ weights
    ease_seconds = time.perf_counter() - clock
    return {
        "popularity (train users per item)": (dict.fromkeys(users, everyone), 0.0),
        "popularity without the user's train items": (
            {user: top_items(counts, data.items, seen[user]) for user in users},
            0.0,
        ),
        f"EASE, λ={EASE_LAMBDA:g}, without the user's train items": (
            {user: top_items(ease_scores[index], data.items, seen[user]) for index, user in enumerate(users)},
            ease_seconds,
        ),
    }


# The product path: import, train and promote, serve.


def manage(env: dict[str, str], *args: str) -> tuple[dict[str, Any], float]:
    """Run a management command that prints a JSON summary on its last stdout line; (summary, wall seconds)."""
    clock = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "manage.py", *args], cwd=BASE_DIR, env=env, capture_output=True, text=True, check=False
    )
    seconds = time.perf_counter() - clock
    if done.returncode != 0:
        raise RuntimeError(f"manage.py {' '.join(args)} failed ({done.returncode}):\n{done.stderr[-3000:]}")
    lines = done.stdout.strip().splitlines()
    return (dict(json.loads(lines[-1])) if lines else {}), seconds


def served_list(base: str, user: int, version: str) -> list[int] | None:
    """The served top K for a user, or None while the answer comes from another version."""
    from tests.servers import http_get

    try:
        status, body = http_get(f"{base}/recommendations?userId=u{user}&limit={K}")
    except OSError:  # a worker restarted or still loading: asked again
        return None
    if status != 200:
        return None
    answer = json.loads(body)
    if answer["modelVersion"] != version:
        return None
    return [int(entry["itemId"][1:]) for entry in answer["recommendations"]]


def served_rankings(base: str, version: str, users: list[int]) -> Rankings:
    """Every user's answer from `version`, asking again (every worker refreshes its state on its own) until it is."""
    rankings: Rankings = {}
    for user in users:
        deadline = time.monotonic() + SERVE_TIMEOUT_SECONDS
        while (answer := served_list(base, user, version)) is None:
            if time.monotonic() > deadline:
                raise RuntimeError(f"{version} was not served within {SERVE_TIMEOUT_SECONDS:.0f} s")
            time.sleep(0.2)
        rankings[user] = answer
    return rankings


@dataclass(frozen=True)
class Window:
    shift: int
    lookback_days: int
    test_days: int


def window_for(ratings: pd.DataFrame, train: pd.DataFrame, now: float) -> Window:
    """Shift so the newest rating is an hour old; a lookback that covers all; test days for the newest 10%."""
    newest = int(ratings["timestamp"].max())
    shift = int(now) - 3600 - newest
    lookback = math.ceil((newest - int(ratings["timestamp"].min())) / 86400) + 2
    check_from = float(train["timestamp"].quantile(1 - TRAIN_CHECK_SHARE))
    return Window(shift=shift, lookback_days=lookback, test_days=max(1, math.ceil((newest - check_from) / 86400)))


def train_and_serve(
    algorithm: str, env: dict[str, str], base: str, window: Window, users: list[int]
) -> tuple[Rankings, dict[str, Any]]:
    """Train `algorithm`, promote it to control, and read every user's served answer from it."""
    report, seconds = manage(
        env,
        "train",
        "--lookback-days",
        str(window.lookback_days),
        "--test-days",
        str(window.test_days),
        "--algorithm",
        algorithm,
        "--promote",
        "control",
        "--json",
    )
    version, fitted = str(report["version"]), str(report.get("algorithm") or algorithm)
    own = report.get("metrics", {}).get("candidate", {}).get("ndcg@10")
    _progress(
        f"  {algorithm}: {version} ({fitted}) trained in {seconds:.1f} s on {report['counts']['events']:,} events "
        f"(NDCG@10 on its own check: {own}); scoring {len(users)} users through /recommendations ..."
    )
    clock = time.perf_counter()
    rankings = served_rankings(base, version, users)
    searched = report.get("metrics", {}).get("search") or {}
    run = {
        "version": version,
        "algorithm": fitted,
        "seconds": seconds,
        "serveSeconds": time.perf_counter() - clock,
        "search": f"{len(searched['trials'])} ({searched.get('stoppedBy', '?')})" if "trials" in searched else "—",
    }
    return rankings, run


def train_choices(env: dict[str, str]) -> list[str]:
    """What `manage.py train --algorithm` accepts beyond the fitted algorithms (such as an automatic choice)."""
    from core.recommender.algorithms import ALGORITHMS

    done = subprocess.run(
        [sys.executable, "manage.py", "train", "--help"], cwd=BASE_DIR, env=env, capture_output=True, text=True
    )
    found = re.search(r"--algorithm \{([^}]*)\}", done.stdout)
    offered = found.group(1).split(",") if found else []
    return [name for name in dict.fromkeys([*ALGORITHMS, *offered]) if name != "popularity"]


def served_models(split: Split, window: Window, seen: dict[int, set[int]]) -> tuple[list[Scored], dict[str, Any]]:
    """Import the train events into a fresh database, then train, promote and score each algorithm in turn."""
    from rideease.embedded_db import embedded_db_start, embedded_db_stop, free_port
    from tests.servers import app_env, gunicorn_app

    users = sorted(split.relevant)
    results: list[Scored] = []
    with tempfile.TemporaryDirectory(prefix="rideease-movielens-bench-") as scratch:
        var = Path(scratch)
        server = embedded_db_start(port=free_port(), storage=var / "db")
        try:
            env = {**app_env(mongodb_uri=server.uri, mongodb_db=DATABASE, var_dir=var), "PIPELINE_GIT_SHA": "bench"}
            manage(env, "migrate", "-v", "0")
            algorithms = train_choices(env)
            events = write_events(split.train, var / "events.jsonl", window.shift)
            _progress(f"importing {events:,} train events with manage.py import_events ...")
            summary, import_seconds = manage(env, "import_events", str(var / "events.jsonl"), "--json")
            imported = {"events": summary["inserted"], "rejected": summary["rejected"], "seconds": import_seconds}
            _progress(f"  {summary['stored']:,} stored in {import_seconds:.1f} s")
            served = {"DJANGO_HTTPS": "false", "DJANGO_LOG_LEVEL": "WARNING", "TRACE_RETENTION_DAYS": "0"}
            with gunicorn_app(mongodb_uri=server.uri, mongodb_db=DATABASE, var_dir=var, extra_env=served) as base:
                for algorithm in algorithms:
                    results.append(_served_one(algorithm, env, base, window, users, split, seen))
        finally:
            embedded_db_stop(server)
    return results, imported


def _served_one(
    algorithm: str,
    env: dict[str, str],
    base: str,
    window: Window,
    users: list[int],
    split: Split,
    seen: dict[int, set[int]],
) -> Scored:
    try:
        rankings, run = train_and_serve(algorithm, env, base, window, users)
    except (RuntimeError, KeyError, ValueError) as exc:
        _progress(f"  {algorithm} failed: {exc}")
        return Scored(f"served {algorithm}", np.array([]), math.nan, math.nan, math.nan, note=str(exc).splitlines()[0])
    chosen = f" → {run['algorithm']}" if run["algorithm"] != algorithm else ""
    result = score(f"served {algorithm}{chosen} ({run['version']})", rankings, split, seen)
    result.train_seconds, result.extra = run["seconds"], run
    _progress(f"  {result.name}: NDCG@10 {result.ndcg.mean():.4f} ({run['serveSeconds']:.1f} s to score)")
    return result


# Report.


def bootstrap(difference: np.ndarray) -> tuple[float, float]:
    """Paired bootstrap 95% interval of a mean per-user difference (users resampled with replacement)."""
    rng = np.random.default_rng(BOOTSTRAP_SEED)
    samples = rng.integers(difference.shape[0], size=(BOOTSTRAP_RESAMPLES, difference.shape[0]))
    means = difference[samples].mean(axis=1)
    return float(np.percentile(means, 2.5)), float(np.percentile(means, 97.5))


def _ratio(value: float, reference: float) -> str:
    return f"{value / reference:.2f}x" if reference and not math.isnan(value) else "—"


def _row(result: Scored, pop: float, ease: float) -> str:
    if result.ndcg.size == 0:
        return f"| {result.name} | failed: {result.note} | | | | | | | |"
    ndcg = float(result.ndcg.mean())
    seconds = "—" if result.train_seconds is None else f"{result.train_seconds:.1f}"
    return (
        f"| {result.name} | {ndcg:.4f} | {result.recall:.4f} | {result.map:.4f} | {_ratio(ndcg, pop)} "
        f"| {_ratio(ndcg, ease)} | {result.seen_share:.0%} | {seconds} | {result.extra.get('search', '—')} |"
    )


@dataclass(frozen=True)
class Facts:
    ratings: int
    users: int
    movies: int
    version: str
    split: Split
    window: Window
    imported: dict[str, Any]


def _interval_line(served: list[Scored], pop: Scored) -> str:
    working = [result for result in served if result.ndcg.size]
    if not working:
        return "No served model answered, so no interval."
    best = max(working, key=lambda result: float(result.ndcg.mean()))
    low, high = bootstrap(best.ndcg - pop.ndcg)
    line = (
        f"Best served model, {best.name}, minus popularity without the user's train items, NDCG@10 per user: "
        f"{float((best.ndcg - pop.ndcg).mean()):+.4f}, paired bootstrap 95% interval [{low:+.4f}, {high:+.4f}] "
        f"({BOOTSTRAP_RESAMPLES} resamples of the {best.ndcg.size} users, seed {BOOTSTRAP_SEED})."
    )
    _progress(line)
    return line


def report(facts: Facts, references: list[Scored], served: list[Scored]) -> str:
    pop, ease = references[1], references[2]
    pop_ndcg, ease_ndcg = float(pop.ndcg.mean()), float(ease.ndcg.mean())
    imported = facts.imported
    rate = imported["events"] / imported["seconds"]
    split, window = facts.split, facts.window
    lines = [
        "## Recommenders on MovieLens (`tests/benchmarks/bench_movielens.py`)",
        "",
        f"Measured {datetime.now(UTC):%Y-%m-%d} on a 2-core machine against the embedded SecantusDB. Data: MovieLens "
        f'"latest small" as Debian\'s `r-cran-dslabs` {facts.version} ships it ({facts.ratings:,} ratings, '
        f"{facts.users:,} users, {facts.movies:,} movies), fetched with `apt-get download` by `make bench-data` and "
        "read from the package's R data without R (`tests/benchmarks/movielens.py`).",
        "",
        "- **split**: each user's ratings sorted by (timestamp, movieId); the newest ceil(20%) are held out, the rest "
        f"are train (a user with fewer than {MIN_RATINGS_TO_SPLIT} ratings would keep all in train; none has). "
        f"{len(split.train):,} train ratings, {split.held_out:,} held out;",
        "- **events**: a rating of 4 or more is a `book`, 3 to 3.5 a `play`, below 3 a `view` (userId `u<userId>`, "
        "itemId `m<movieId>`); every timestamp is shifted by one constant so the newest rating is an hour old (the "
        "event API refuses times before 2000), which keeps every time between ratings;",
        f"- **relevant**: a user's held-out plays and books (rated 3 or more); the {len(split.relevant):,} users "
        "with at least one are scored;",
        "- **served**: the train events imported with `manage.py import_events`, then for each algorithm of "
        "`core.recommender.algorithms.ALGORITHMS` and any other choice of `manage.py train --algorithm` (an "
        "automatic choice) but popularity, `manage.py train --lookback-days "
        f"{window.lookback_days} --test-days {window.test_days} --algorithm ALG --promote control`, and every scored "
        f"user's `GET /recommendations?userId=..&limit={K}` from the app under gunicorn, once it answers with the new "
        "version. Train s is that command's wall time (read, fit, its own check, refit, publish, promote);",
        "- **references**, computed in the script with numpy/scipy on the same train split: popularity as the number "
        "of train users who rated the item (unweighted, any rating), the same without the user's own train items, "
        f"and EASE (B = I - P diag(1/diag(P)), P = (XᵀX + {EASE_LAMBDA:g} I)⁻¹, X the binary user x movie train "
        "matrix) without the user's train items; EASE's train s is its fit in numpy;",
        f"- **metrics**, binary relevance over the top {K}, averaged over users: NDCG@{K} (ideal: min({K}, relevant) "
        f"hits on top), recall@{K} (hits / relevant), MAP@{K} (sum of precision at each hit / min({K}, relevant)). "
        "Seen in top 10: the share of the listed items that the user already rated in train;",
        "- **search**: the trials of the parameter search inside `manage.py train` and what stopped it (`space`: "
        "all tried, `trials`: TRAINING_MAX_TRIALS, `budget`: TRAINING_BUDGET_SECONDS of wall time). A search stopped "
        "by its budget tries fewer settings on a busier machine, so its served figures can move between runs. "
        "Times are wall clock, one run each, on a machine that other work may share.",
        "",
        f"Import: {imported['events']:,} events in {imported['seconds']:.1f} s, **{rate:,.0f} events/s** "
        f"(`manage.py import_events` wall time, {imported['rejected']} rejected).",
        "",
        f"| model | NDCG@{K} | recall@{K} | MAP@{K} | / popularity without seen | / EASE | seen in top {K} | train s "
        "| search |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---|",
        *(_row(result, pop_ndcg, ease_ndcg) for result in [*references, *served]),
        "",
        _interval_line(served, pop),
    ]
    return "\n".join(lines)


def main() -> None:
    from tests.benchmarks.movielens import movielens_ratings, package_version
    from tests.benchmarks.report import write_section

    os.environ.setdefault("DJANGO_SECRET_KEY", "benchmark-only-secret-key-0123456789-abcdefghijklmnopqrstuvwxyz")
    ratings = movielens_ratings()
    split = split_ratings(ratings)
    window = window_for(ratings, split.train, time.time())
    users = sorted(split.relevant)
    _progress(f"{len(ratings):,} ratings: {len(split.train):,} train, {len(users)} users with relevant held-out items")
    data = train_matrix(split.train)
    seen = {int(user): set(group.tolist()) for user, group in split.train.groupby("userId")["movieId"]}
    references: list[Scored] = []
    for name, (rankings, seconds) in reference_rankings(data, users).items():
        references.append(score(name, rankings, split, seen))
        references[-1].train_seconds = seconds or None
        _progress(f"  {name}: NDCG@10 {references[-1].ndcg.mean():.4f}")
    served, imported = served_models(split, window, seen)
    facts = Facts(
        ratings=len(ratings),
        users=int(ratings["userId"].nunique()),
        movies=int(ratings["movieId"].nunique()),
        version=package_version(),
        split=split,
        window=window,
        imported=imported,
    )
    _progress(f"wrote {write_section('movielens', report(facts, references, served))}")


if __name__ == "__main__":
    main()

"""`make bench`: the Spark engine against the single-machine trainer, for quality and for scale.

Quality: on the demo world and on MovieLens, each rider's newest 20% of events held out (the product's per-user
split); the single-machine ALS and the Spark engine's ALS each search their parameters on the training part with the
same number of trials, fit on it, and are scored on the same held-out events, so their NDCG@10 pair rider by rider.

Scale: demo events seeded once over four times the days of the first size; each size is the window of its days back
from the end, so the sizes share their riders and items. Each
trainer runs in a fresh process (`training_run`, as `manage.py train` does) against a throwaway embedded database;
the Django-side peak is that process's own VmHWM, the whole job's peak is the sum over it and its children (Spark's
JVM) sampled every quarter second.
"""

import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

BASE_DIR = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(BASE_DIR))
SIZES = [int(size) for size in os.environ.get("BENCH_SPARK_SIZES", "1000000,4000000").split(",")]
DAYS = 30  # of history at the first size; each larger size gets proportionally more days over the same riders
RIDERS = int(os.environ.get("BENCH_SPARK_RIDERS", "30000"))
TRIALS = int(os.environ.get("BENCH_SPARK_TRIALS", "8"))
# "quality", "scale" or both: each part rewrites only its own section, so the long scale run can be repeated alone.
PARTS = set(os.environ.get("BENCH_SPARK_PARTS", "quality,scale").split(","))
END = datetime(2026, 11, 1, tzinfo=UTC)
MASTER = "local[2]"


def _progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)  # noqa: T201


# --- quality -----------------------------------------------------------------------------------------------------


def _demo_interactions() -> Any:
    from core.recommender.interactions import interactions_from_records
    from recommendations.demo_data import DemoConfig, demo_events_generate

    records = [
        (event.user_id, event.item_id, event.type, event.ts.timestamp())
        for chunk in demo_events_generate(DemoConfig(), end=END)
        for event in chunk
    ]
    return interactions_from_records(records)


def _movielens_interactions() -> Any:
    from core.recommender.interactions import interactions_from_records
    from tests.benchmarks.bench_movielens import event_types
    from tests.benchmarks.movielens import movielens_ratings

    ratings = movielens_ratings()
    kinds = event_types(ratings["rating"].to_numpy())
    columns = (ratings["userId"].tolist(), ratings["movieId"].tolist(), kinds.tolist(), ratings["timestamp"].tolist())
    return interactions_from_records(
        [(f"u{user}", f"m{movie}", kind, ts) for user, movie, kind, ts in zip(*columns, strict=True)]
    )


def _compare(name: str, data: Any, work: Path) -> dict[str, Any]:
    from core.recommender.evaluation import bootstrap_interval, score_users, user_holdout_split
    from core.recommender.pair_training import SEARCH_HALF_LIVES, train_and_evaluate_pairs
    from core.recommender.pairs import pairs_from_interactions
    from core.recommender.training import SearchRequest, train_and_evaluate
    from recommendations.spark_engine import SparkEngine

    split = user_holdout_split(data, 0.2)
    request = SearchRequest(algorithm="als", budget_seconds=3600.0, max_trials=TRIALS)
    clock = time.perf_counter()
    cutoff = int(split.train.ts.max()) + 1
    local = train_and_evaluate(split.train, algorithm="als", cutoff=cutoff, request=request)
    local_seconds = time.perf_counter() - clock
    clock = time.perf_counter()
    with SparkEngine(master=MASTER, work_uri=str(work)) as engine:
        spark, _ = train_and_evaluate_pairs(
            pairs_from_interactions(split.train, SEARCH_HALF_LIVES, request.holdout_fraction),
            request=request,
            fit=engine.fit,
        )
    spark_seconds = time.perf_counter() - clock
    local_scores, spark_scores = score_users(local.model, split), score_users(spark.model, split)
    assert local_scores.users == spark_scores.users
    local_ndcg, spark_ndcg = local_scores.metrics["ndcg@10"], spark_scores.metrics["ndcg@10"]
    row = {
        "dataset": name,
        "events": len(data),
        "riders": len(local_scores.users),
        "local": {"ndcg": round(float(local_ndcg.mean()), 4), "interval": bootstrap_interval(local_ndcg)},
        "spark": {"ndcg": round(float(spark_ndcg.mean()), 4), "interval": bootstrap_interval(spark_ndcg)},
        "difference": round(float((spark_ndcg - local_ndcg).mean()), 4),
        "differenceInterval": bootstrap_interval(spark_ndcg - local_ndcg),
        "localParams": local.model.config()["params"],
        "sparkParams": spark.model.config()["params"],
        "localSeconds": round(local_seconds, 1),
        "sparkSeconds": round(spark_seconds, 1),
    }
    # Paired rider by rider: Spark is not worse when the difference's interval reaches zero or above.
    row["verdict"] = "within or better" if row["differenceInterval"][1] >= 0 else "below"
    _progress(json.dumps(row, default=str))
    return row


# --- scale -------------------------------------------------------------------------------------------------------


def child(engine: str, lookback: str) -> None:
    """One training in this fresh process; prints {"seconds", "maxRssMb", ...} as JSON."""
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "rideease.settings")
    import django

    django.setup()
    from recommendations.training import TrainingRequest, training_run
    from tests.benchmarks.report import peak_rss_mb

    clock = time.perf_counter()
    request = TrainingRequest(
        lookback_days=int(lookback), test_days=3, algorithm="als", engine=engine, max_trials=1, now=END
    )
    report = training_run(request, stage=lambda name, message: _progress(f"  [{name}] {message}"))
    result = {
        "seconds": round(time.perf_counter() - clock, 1),
        "readSeconds": report.timings["read"],
        "maxRssMb": peak_rss_mb(),
        "events": report.counts["events"],
        "pairs": report.counts.get("pairs"),
        "ndcg": report.metrics["candidate"]["ndcg@10"],
    }
    print(json.dumps(result))  # noqa: T201 - the parent reads this line


def _children() -> dict[int, list[int]]:
    tree: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            tree.setdefault(int(fields[1]), []).append(int(entry.name))
    return tree


def _tree_rss_mb(root: int) -> float:
    tree, total, stack = _children(), 0, [root]
    while stack:
        pid = stack.pop()
        stack.extend(tree.get(pid, []))
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            continue
    return total / 1024


def _measure(env: dict[str, str], engine: str, lookback: int) -> dict[str, Any]:
    process = subprocess.Popen(
        [sys.executable, __file__, "child", engine, str(lookback)],
        cwd=BASE_DIR,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    peak = [0.0]

    def sample() -> None:
        while process.poll() is None:
            peak[0] = max(peak[0], _tree_rss_mb(process.pid))
            time.sleep(0.25)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    output, errors = process.communicate()
    sampler.join()
    if process.returncode != 0:
        raise RuntimeError(f"{engine} training failed at lookback {lookback}:\n{errors[-3000:]}")
    result = dict(json.loads(output.strip().splitlines()[-1]))
    result["jobPeakMb"] = round(peak[0], 1)
    return result


def _seed(uri: str, events: int, days: int) -> None:
    env = {**os.environ, "MONGODB_URI": uri, "MONGODB_DB": "bench_spark"}
    args = ["--users", str(RIDERS), "--events", str(events), "--days", str(days), "--end", END.isoformat()]
    subprocess.run([sys.executable, "manage.py", "migrate", "-v", "0"], cwd=BASE_DIR, env=env, check=True)
    subprocess.run(
        [sys.executable, "manage.py", "seed_demo", *args, "--replace"],
        cwd=BASE_DIR,
        env=env,
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def _scale(scratch: Path) -> list[dict[str, Any]]:
    """Seed the largest size once; each size is the window of its days back from the end, over the same riders."""
    from rideease.embedded_db import embedded_db_start, embedded_db_stop, free_port

    rows = []
    server = embedded_db_start(port=free_port(), storage=scratch / "db")
    try:
        total_days = DAYS * SIZES[-1] // SIZES[0]
        _progress(f"seeding {SIZES[-1]} events over {total_days} days ...")
        clock = time.perf_counter()
        _seed(server.uri, SIZES[-1], total_days)
        _progress(f"  seeded in {time.perf_counter() - clock:.0f}s")
        for size in SIZES:
            days = DAYS * size // SIZES[0]
            env = {
                **os.environ,
                "MONGODB_URI": server.uri,
                "MONGODB_DB": "bench_spark",
                "MODEL_REGISTRY_URI": str(scratch / f"registry-{days}"),
                "SPARK_WORK_URI": str(scratch / "spark"),
                "SPARK_MASTER": MASTER,
                "PIPELINE_GIT_SHA": "benchmark",
                # The embedded server answers the driver's heartbeat late while it serves a large read; the default
                # would take that for an outage and cancel the read.
                "MONGODB_TIMEOUT_MS": "120000",
            }
            row: dict[str, Any] = {"days": days}
            for engine in ("local", "spark"):
                _progress(f"  {engine} over {days} days ...")
                row[engine] = _measure(env, engine, days)
                _progress(f"  {json.dumps(row[engine])}")
            row["events"] = row["local"]["events"]
            rows.append(row)
    finally:
        embedded_db_stop(server)
    return rows


# --- report ------------------------------------------------------------------------------------------------------


def _quality_lines(rows: list[dict[str, Any]]) -> list[str]:
    lines = [
        "| data | events | riders scored | single-machine ALS NDCG@10 [95% CI] | Spark ALS NDCG@10 [95% CI] "
        "| Spark - single [95% CI] | verdict | single s | Spark s |",
        "|---|---:|---:|---|---|---|---|---:|---:|",
    ]
    for row in rows:
        local, spark = row["local"], row["spark"]
        lines.append(
            f"| {row['dataset']} | {row['events']:,} | {row['riders']:,} | {local['ndcg']} {list(local['interval'])} "
            f"| {spark['ndcg']} {list(spark['interval'])} | {row['difference']} {list(row['differenceInterval'])} "
            f"| {row['verdict']} | {row['localSeconds']} | {row['sparkSeconds']} |"
        )
    lines.append("")
    for row in rows:
        lines.append(
            f"- {row['dataset']}: single-machine chose `{json.dumps(row['localParams'])}`; Spark chose "
            f"`{json.dumps(row['sparkParams'])}`."
        )
    return lines


def _scale_lines(rows: list[dict[str, Any]]) -> list[str]:
    lines = [
        "| events | days | engine | wall s | read s | Django-side peak MB | whole job peak MB | pairs | NDCG@10 |",
        "|---:|---:|---|---:|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        for engine in ("local", "spark"):
            run = row[engine]
            pairs = f"{run['pairs']:,}" if run.get("pairs") else "-"
            lines.append(
                f"| {row['events']:,} | {row['days']} | {engine} | {run['seconds']} | {run['readSeconds']} "
                f"| {run['maxRssMb']} | {run['jobPeakMb']} | {pairs} | {run['ndcg']} |"
            )
    if len(rows) >= 2:
        first, last = rows[0], rows[-1]
        for engine in ("local", "spark"):
            growth = last[engine]["maxRssMb"] / first[engine]["maxRssMb"]
            verdict = "**pass**" if growth <= 1.3 else "**fail**"
            target = f" (target at most 1.3x: {verdict})" if engine == "spark" else ""
            lines.append("")
            lines.append(
                f"- {engine}: Django-side peak at {last['events']:,} events is {growth:.2f}x the one at "
                f"{first['events']:,}{target}; wall time {last[engine]['seconds'] / first[engine]['seconds']:.2f}x."
            )
    return lines


def main() -> None:
    os.environ.setdefault("DJANGO_SECRET_KEY", "benchmark-only-secret-key-0123456789-abcdefghijklmnopqrstuvwxyz")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "rideease.settings")
    with tempfile.TemporaryDirectory(prefix="rideease-bench-spark-") as scratch_dir:
        scratch = Path(scratch_dir)
        if "quality" in PARTS:
            quality = [
                _compare("demo world (100,000 events)", _demo_interactions(), scratch / "spark"),
                _compare("MovieLens latest-small", _movielens_interactions(), scratch / "spark"),
            ]
            _progress(f"wrote {report_quality(quality)}")
        if "scale" in PARTS:
            _progress(f"wrote {report_scale(_scale(scratch))}")


def report_quality(rows: list[dict[str, Any]]) -> Path:
    """Write the `spark` section of docs/BENCHMARKS.md from the rows `_compare` prints."""
    from tests.benchmarks.report import write_section

    lines = [
        "## The Spark engine against the single-machine trainer (`tests/benchmarks/bench_spark.py`)",
        "",
        f"Measured {datetime.now(UTC):%Y-%m-%d} on this project's machine kind (2 cores, shared), Spark {MASTER}.",
        "",
        "### Quality: the same per-user split",
        "",
        "Each rider's newest 20% of events held out; each engine searches its ALS parameters, event weights, decay "
        f"and exclusion rule on the training part ({TRIALS} trials each), fits on it, and is scored on the same "
        "held-out plays and books. The difference pairs rider by rider (bootstrap over riders).",
        "",
        *_quality_lines(rows),
    ]
    return write_section("spark", "\n".join(lines))


def report_scale(rows: list[dict[str, Any]]) -> Path:
    """Write the `spark-scale` section of docs/BENCHMARKS.md from the rows `_scale` prints."""
    from tests.benchmarks.report import write_section

    lines = [
        f"### Spark scale: windows of {', '.join(str(row['days']) for row in rows)} days over the same {RIDERS:,} "
        "riders and 300 items",
        "",
        f"Measured {datetime.now(UTC):%Y-%m-%d} in one run, Spark {MASTER}. Demo events seeded once over "
        f"{DAYS * SIZES[-1] // SIZES[0]} days ({SIZES[-1]:,} events); each row "
        "trains on the window of its days back from the end; one search trial each "
        "(`max_trials=1`), so the figures are the read, the evaluation and three fits. **local**: every event "
        "read into the process; **spark**: the database sums the events per rider and item (`$match`, `$group`), "
        "Spark fits. The embedded database runs both reads; a MongoDB server reads several times faster.",
        "",
        *_scale_lines(rows),
    ]
    return write_section("spark-scale", "\n".join(lines))


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "child":
        child(sys.argv[2], sys.argv[3])
    else:
        main()

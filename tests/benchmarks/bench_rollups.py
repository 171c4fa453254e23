"""`make bench`: a look at a phase from its saved aggregates against a full rebuild, at 100k and 1M events.

Per size, a fresh database holds one running experiment (`bench`, phase 1 started 10 days ago, share 0.5) and N
synthetic events of the phase written straight with pymongo: 70% exposures tagged with the experiment and phase, 30%
bookings, over a fixed population of users (the per-user state is the same at every size, so peak memory shows
whether anything grows with the events). A look an hour ago saved the state; then 10% more events arrive in the last
hour, after its watermark. **look** restores that state and reads only those; **rebuild** recomputes from every event
in the database; **scan** only iterates the phase's two event cursors. Each measurement runs in a fresh process (peak
RSS is its own), alternating, BENCH_REPEATS times; medians. The HTTP summary is read from the service under gunicorn,
before and after the new events.

BENCH_SIZES (default 100000,1000000), BENCH_REPEATS (default 3), BENCH_USERS (default 50000).
"""

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import zlib
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np

BASE_DIR = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(BASE_DIR))
SIZES = [int(size) for size in os.environ.get("BENCH_SIZES", "100000,1000000").split(",")]
REPEATS = int(os.environ.get("BENCH_REPEATS", "3"))
USERS = int(os.environ.get("BENCH_USERS", "50000"))
KEY, SLOT = "bench", "rec-engine"
CONTROL_VERSION, TREATMENT_VERSION = "v1.0.0", "v1.1.0"
PHASE_DAYS = 10
ITEMS, ITEMS_SHOWN = 300, 10
# Share of new events (after the saved watermark) a look reads, relative to the phase's events.
TAIL = 0.1
# Bookings that follow one of the user's exposures by 1 to 40 minutes, on an item it showed (the rest fall anywhere).
FOLLOWING = 0.1
HTTP_GETS = 7
# experiments/rollups.py ROLLUP_COLLECTION (this process does not set Django up).
ROLLUPS = "experiment_rollups"
BATCH = 10_000
MODES = ("look", "rebuild", "scan")


def child(mode: str) -> None:
    """One measurement in this fresh process; prints its figures as JSON on the last line."""
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "rideease.settings")
    import django

    django.setup()
    if mode == "create":
        _create()
        return
    from django.conf import settings

    from experiments.selectors import experiment_get, summary_read
    from experiments.serializers import experiment_summary_data

    now = datetime.fromisoformat(os.environ["BENCH_NOW"])
    clock = time.perf_counter()
    result: dict[str, Any] = {}
    if mode == "scan":
        result["events"] = _scan(experiment_get(key=KEY), now)
    else:
        summary = experiment_summary_data(
            summary_read(key=KEY, hours=None, phase_id=None, now=now, rebuild=mode == "rebuild")
        )
        arms = [summary["variants"][arm] for arm in ("control", "treatment")]
        result["exposed"] = sum(arm["exposedUsers"] for arm in arms)
        result["converted"] = sum(arm["convertedUsers"] for arm in arms)
        result["settleMinutes"] = settings.EXPERIMENT_ROLLUP_SETTLE_MINUTES
        result["budgetSeconds"] = getattr(settings, "EXPERIMENT_SUMMARY_BUDGET_SECONDS", None)
    result["seconds"] = round(time.perf_counter() - clock, 3)
    from tests.benchmarks.report import peak_rss_mb

    result["maxRssMb"] = peak_rss_mb()
    print(json.dumps(result))  # noqa: T201 - read by the parent


def _scan(info: Any, now: datetime) -> int:
    """Iterate the rebuild's two cursors over the same bounds, doing nothing with the events."""
    from experiments.rollups import phase_streams
    from experiments.streams import conversion_stream, exposure_stream

    streams = phase_streams(info, info.current_phase, now)
    exposures = exposure_stream(start=streams.exposures_from, end=streams.exposures_to, experiment=KEY)
    conversions = conversion_stream(
        start=streams.conversions_from, end=streams.conversions_to, types=streams.rules.event_types()
    )
    return sum(1 for _ in exposures) + sum(1 for _ in conversions)


def _create() -> None:
    """The running experiment, straight through the ORM (no validation, no serving state)."""
    from experiments.models import Experiment
    from experiments.state import Phase, phase_document

    started = datetime.fromisoformat(os.environ["BENCH_PHASE_START"])
    phase = Phase(
        id=1,
        started_at=started,
        ended_at=None,
        control_version=CONTROL_VERSION,
        treatment_version=TREATMENT_VERSION,
        treatment_share=0.5,
        salt=KEY,
        revision=1,
        reason="start",
        actor="bench",
    )
    Experiment.objects.create(
        key=KEY,
        name="Rollup benchmark",
        owner="bench",
        slot=SLOT,
        control_version=CONTROL_VERSION,
        treatment_version=TREATMENT_VERSION,
        treatment_share=0.5,
        salt=KEY,
        status="running",
        created_at=started,
        started_at=started,
        phases=[phase_document(phase)],
    )


def _variant(user: str) -> str:
    return "treatment" if zlib.crc32(user.encode()) % 2 else "control"


def _documents(rng: np.random.Generator, count: int, start: datetime, end: datetime) -> list[dict[str, Any]]:
    """`count` events with times in [start, end]: 70% tagged exposures, 30% bookings (some following an exposure)."""
    exposures = round(count * 0.7)
    bookings = count - exposures
    span = (end - start).total_seconds()
    users = rng.integers(USERS, size=exposures)
    offsets = rng.uniform(0, span, size=exposures)
    shown = rng.integers(ITEMS, size=(exposures, ITEMS_SHOWN))
    latencies = np.round(rng.lognormal(np.log(40), 0.6, size=exposures), 3)
    fallbacks = rng.random(exposures) < 0.02
    documents = []
    for n in range(exposures):
        user, ts = f"u{users[n]:06d}", start + timedelta(seconds=float(offsets[n]))
        variant = _variant(user)
        payload: dict[str, Any] = {
            "requestId": f"r{start.timestamp():.0f}-{n}",
            "variant": variant,
            "modelVersion": TREATMENT_VERSION if variant == "treatment" else CONTROL_VERSION,
            "items": [f"item-{item}" for item in shown[n]],
            "latencyMs": float(latencies[n]),
            "experiment": KEY,
            "phase": 1,
        }
        if fallbacks[n]:
            payload["fallback"] = "cold_start"
        documents.append(
            {"type": "recommend", "userId": user, "itemId": None, "ts": ts, "payload": payload, "receivedAt": ts}
        )
    following = rng.random(bookings) < FOLLOWING
    source = rng.integers(exposures, size=bookings)
    picks = rng.integers(ITEMS_SHOWN, size=bookings)
    delays = rng.uniform(60, 2400, size=bookings)
    anywhere = rng.uniform(0, span, size=bookings)
    others = rng.integers(USERS, size=bookings)
    items = rng.integers(ITEMS, size=bookings)
    for n in range(bookings):
        if following[n]:
            exposure = int(source[n])
            user, item = f"u{users[exposure]:06d}", int(shown[exposure, picks[n]])
            seconds = min(float(offsets[exposure] + delays[n]), span)
        else:
            user, item, seconds = f"u{others[n]:06d}", int(items[n]), float(anywhere[n])
        ts = start + timedelta(seconds=seconds)
        documents.append(
            {"type": "book", "userId": user, "itemId": f"item-{item}", "ts": ts, "payload": {}, "receivedAt": ts}
        )
    return documents


def _insert(uri: str, db: str, rng: np.random.Generator, count: int, start: datetime, end: datetime) -> None:
    """Write `count` events in batches, with progress on stderr."""
    import pymongo
    from pymongo.collection import Collection

    collection: Collection[dict[str, Any]] = pymongo.MongoClient(uri)[db]["raw_events"]
    clock = time.perf_counter()
    for done in range(0, count, BATCH):
        # One batch at a time: this process stays small, whatever the size.
        collection.insert_many(_documents(rng, min(BATCH, count - done), start, end), ordered=False)
        if (done + BATCH) % (10 * BATCH) == 0 or done + BATCH >= count:
            _progress(f"  {min(done + BATCH, count):,} / {count:,} events ({time.perf_counter() - clock:.0f} s)")


def _progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)  # noqa: T201


def _run(uri: str, db: str, mode: str, **extra: str) -> dict[str, Any]:
    env = {**os.environ, "MONGODB_URI": uri, "MONGODB_DB": db, **extra}
    done = subprocess.run(
        [sys.executable, __file__, "child", mode], cwd=BASE_DIR, env=env, capture_output=True, text=True
    )
    if done.returncode != 0:
        raise RuntimeError(f"{mode} failed:\n{done.stderr[-3000:]}")
    lines = done.stdout.strip().splitlines()
    return dict(json.loads(lines[-1])) if lines else {}


def _http(uri: str, db: str, scratch: Path) -> dict[str, Any]:
    """GET the phase's summary HTTP_GETS times from the service under gunicorn (the first warms the worker)."""
    from tests.servers import gunicorn_app, http_get

    env = {"DJANGO_HTTPS": "false", "DJANGO_LOG_LEVEL": "WARNING", "GUNICORN_WORKERS": "2"}
    var = scratch / f"http-{db}-{time.monotonic_ns()}"
    timeout = int(os.environ.get("GUNICORN_TIMEOUT") or 30)
    seconds, statuses = [], []
    with gunicorn_app(mongodb_uri=uri, mongodb_db=db, var_dir=var, extra_env=env) as base:
        for _ in range(HTTP_GETS):
            clock = time.perf_counter()
            try:
                status, _ = http_get(f"{base}/experiments/{KEY}/summary", timeout=4 * timeout)
            except OSError:  # the worker was killed mid-answer
                status = 0
            seconds.append(time.perf_counter() - clock)
            statuses.append(status)
    killed = (var / "gunicorn.log").read_text().count("WORKER TIMEOUT")
    warm = seconds[1:]
    return {
        "statuses": sorted(set(statuses)),
        "p50": round(statistics.median(warm), 3),
        "max": round(max(warm), 3),
        "first": round(seconds[0], 3),
        "ok": sum(1 for status in statuses if status == 200),
        "gets": len(statuses),
        "timeouts": killed,
        "workerTimeout": timeout,
    }


def _rollups(uri: str, db: str) -> Any:
    import pymongo

    return pymongo.MongoClient(uri)[db][ROLLUPS]


def _put_back(uri: str, db: str, saved: list[dict[str, Any]]) -> None:
    """Put the saved states back as they were (the next look is then one after the new events)."""
    collection = _rollups(uri, db)
    collection.delete_many({})
    collection.insert_many(saved)


def _size(uri: str, db: str, events: int, scratch: Path) -> dict[str, Any]:
    """Seed one database with `events` events of the phase, then measure every mode on it."""
    env = {"MONGODB_URI": uri, "MONGODB_DB": db}
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "-v", "0"], cwd=BASE_DIR, env={**os.environ, **env}, check=True
    )
    rng = np.random.default_rng(7)
    now = datetime.now(UTC)
    phase_start = now - timedelta(days=PHASE_DAYS)
    _run(uri, db, "create", BENCH_PHASE_START=phase_start.isoformat())
    _progress(f"seeding {events:,} events over {USERS:,} users ...")
    _insert(uri, db, rng, events, phase_start, now - timedelta(hours=2))
    # The last look was an hour ago: its state is saved up to an hour and a settle window ago, before every new event.
    first = _run(uri, db, "look", BENCH_NOW=(datetime.now(UTC) - timedelta(hours=1)).isoformat())
    _progress(f"first look, an hour ago (saves the state): {first}")
    saved = list(_rollups(uri, db).find({}))
    steady = _http(uri, db, scratch)
    _progress(f"HTTP, nothing new since the watermark: {steady}")
    _put_back(uri, db, saved)
    tail = round(events * TAIL)
    _progress(f"adding {tail:,} events in the last hour ...")
    arrived = datetime.now(UTC)
    _insert(uri, db, rng, tail, arrived - timedelta(minutes=60), arrived - timedelta(minutes=1))
    burst = _http(uri, db, scratch)
    _progress(f"HTTP, {tail:,} new events since the watermark: {burst}")
    # One clock for every measurement, a second later each time, however long the measurements take; before each look
    # the state of the look an hour ago is put back, so that every look is the first after the new events.
    clock = datetime.now(UTC)
    runs: dict[str, list[dict[str, Any]]] = {mode: [] for mode in MODES}
    for repeat in range(REPEATS):
        for index, mode in enumerate(MODES):
            now = clock + timedelta(seconds=repeat * len(MODES) + index)
            if mode == "look":
                _put_back(uri, db, saved)
            runs[mode].append(_run(uri, db, mode, BENCH_NOW=now.isoformat()))
            _progress(f"{mode}: {runs[mode][-1]}")
    figures = {(run["exposed"], run["converted"]) for mode in ("look", "rebuild") for run in runs[mode]}
    return {
        "events": events,
        "read": events + tail,
        "tail": tail,
        "exposed": runs["rebuild"][0]["exposed"],
        "agree": len(figures) == 1,
        **{mode: statistics.median(run["seconds"] for run in runs[mode]) for mode in MODES},
        **{f"{mode}Rss": statistics.median(run["maxRssMb"] for run in runs[mode]) for mode in MODES},
        "steady": steady,
        "burst": burst,
        "settleMinutes": first["settleMinutes"],
        "budgetSeconds": first["budgetSeconds"],
    }


def _verdict(ok: bool) -> str:
    return "**pass**" if ok else "**fail**"


def _report(rows: list[dict[str, Any]]) -> str:
    largest = rows[-1]
    lines = [
        "## Phase summary: a look from the saved aggregates vs a rebuild (`tests/benchmarks/bench_rollups.py`)",
        "",
        f"Measured {datetime.now(UTC):%Y-%m-%d} against the embedded SecantusDB (`make bench`, or "
        "`.venv/bin/python tests/benchmarks/bench_rollups.py`), with the default settings: the watermark trails the "
        f"clock by {largest['settleMinutes']} minutes (EXPERIMENT_ROLLUP_SETTLE_MINUTES), a web read catches up for "
        f"at most {largest['budgetSeconds']} s (EXPERIMENT_SUMMARY_BUDGET_SECONDS). Per size, a fresh database with "
        f"one running experiment whose phase started {PHASE_DAYS} days ago, and N events of that phase written with "
        f"pymongo: 70% exposures tagged with the experiment and phase ({ITEMS_SHOWN} items, latency, 2% fallbacks), "
        f"30% bookings ({FOLLOWING:.0%} of them 1-40 min after one of the user's exposures, on an item it showed), "
        f"over the phase up to 2 h ago, always over the same {USERS:,} users, so the per-user state is the same at "
        f"both sizes. A look an hour ago saved the state; then {TAIL:.0%} more events arrive, spread over the last "
        "hour, all after its watermark (24 times the phase's average rate: a worst case for a look).",
        "",
        "- **look**: `summary_read` as the API calls it, shaped by `experiment_summary_data`: restores the saved "
        "state, reads the events after its watermark (the new ones), saves again, computes;",
        "- **rebuild**: the same with `rebuild=True`: every event of the phase (and CUPED's pre-period) summed by "
        "the database's aggregation pipelines (experiments/rollup_pipeline.py), from scratch, then saved;",
        "- **scan**: only iterates the phase's two event cursors (exposures, bookings) with the same bounds and "
        "projections, building the event objects a look builds: a plain read of the same events on this server. "
        "The embedded server runs the rebuild's aggregation in Python, so rebuild / scan is mostly its cost of an "
        "aggregation against a read, not ours.",
        "",
        "Each measurement is a fresh process whose peak RSS is its own (VmHWM: getrusage's ru_maxrss survives exec "
        "and would report at least the parent's peak), the modes alternating, "
        f"{REPEATS} time{'s' if REPEATS != 1 else ''} each; medians. Every measurement uses one clock (a second "
        "later each time), however long the run takes, and before each look the state of the look an hour ago is put "
        "back, so every look is the first after the new events; looks and rebuilds give the same figures"
        f"{'' if all(row['agree'] for row in rows) else ' (**they did not in this run**)'}.",
        "",
        "| events in the phase | events a rebuild reads | exposed users | look s | rebuild s | scan s "
        "| look / rebuild | rebuild / scan | look peak RSS MB | rebuild peak RSS MB | scan peak RSS MB |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        lines.append(
            f"| {row['events']:,} | {row['read']:,} | {row['exposed']:,} | {row['look']} | {row['rebuild']} "
            f"| {row['scan']} | {row['look'] / row['rebuild']:.3f}x | {row['rebuild'] / row['scan']:.2f}x "
            f"| {row['lookRss']} | {row['rebuildRss']} | {row['scanRss']} |"
        )
    lines += [
        "",
        "HTTP: `GET /experiments/bench/summary` from the service under gunicorn (the project's config, 2 workers, "
        f"plain HTTP on loopback, worker timeout {largest['burst']['workerTimeout']} s), {HTTP_GETS} times in a row "
        "on the real clock; the first answer is shown apart, p50 is over the others, max over all. **steady**: "
        "nothing new since the saved watermark (the first answer also warms the worker); **after the new events**: "
        "the first answer catches up on the new events older than the settle window and saves them, and every answer "
        "reads again the new events of the settle window, which are never saved.",
        "",
        "| events in the phase | when | first s | p50 s | max s | 200 answers | worker timeouts |",
        "|---:|---|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        for name, http in (("steady", row["steady"]), ("after the new events", row["burst"])):
            lines.append(
                f"| {row['events']:,} | {name} | {http['first']} | {http['p50']} | {max(http['max'], http['first'])} "
                f"| {http['ok']} / {http['gets']} | {http['timeouts']} |"
            )
    ratio = largest["look"] / largest["rebuild"]
    http = largest["burst"]
    slowest = max(http["max"], http["first"], largest["steady"]["max"], largest["steady"]["first"])
    answered = all(run["ok"] == run["gets"] and not run["timeouts"] for run in (http, largest["steady"]))
    http_ok = http["p50"] < 2 and answered and slowest < http["workerTimeout"]
    lines += [
        "",
        f"Targets at {largest['events']:,} events: a look after {TAIL:.0%} new events at most 0.2x a rebuild: "
        f"{ratio:.3f}x, {_verdict(ratio <= 0.2)}; the HTTP summary under 2 s (p50) and never at the worker timeout: "
        f"p50 {http['p50']} s after the new events (steady {largest['steady']['p50']} s), slowest answer "
        f"{slowest} s, {'every answer a 200' if answered else 'not every answer a 200'}, {_verdict(http_ok)}.",
    ]
    if len(rows) >= 2:
        growth = largest["rebuildRss"] / rows[0]["rebuildRss"]
        lines[-1] += (
            f" Peak memory of a rebuild at {largest['events']:,} events within 1.2x of the one at "
            f"{rows[0]['events']:,}: {growth:.2f}x, {_verdict(growth <= 1.2)}."
        )
    reading = largest["tail"] * largest["scan"] / largest["read"]
    lines += [
        "",
        f"A look is mostly the reading of its new events: at the scan's rate, the {largest['tail']:,} new events alone "
        f"take {reading:.1f} s of the look's {largest['look']} s; the rest is restoring, saving and computing (a "
        f"steady answer, with nothing new to read, takes {largest['steady']['p50']} s).",
    ]
    if http["first"] > (largest["budgetSeconds"] or float("inf")):
        lines[-1] += (
            f" The first answer after the new events took {http['first']} s, past the {largest['budgetSeconds']} s "
            "budget: the budget bounds the reading, and restoring and saving the state come on top of it."
        )
    return "\n".join(lines)


def main() -> None:
    from rideease.embedded_db import embedded_db_start, embedded_db_stop, free_port
    from tests.benchmarks.report import write_section

    os.environ.setdefault("DJANGO_SECRET_KEY", "benchmark-only-secret-key-0123456789-abcdefghijklmnopqrstuvwxyz")
    rows = []
    with tempfile.TemporaryDirectory(prefix="rideease-rollup-bench-") as scratch:
        server = embedded_db_start(port=free_port(), storage=Path(scratch) / "db")
        try:
            for events in SIZES:
                rows.append(_size(server.uri, f"rollups_{events}", events, Path(scratch)))
                _progress(json.dumps(rows[-1]))
        finally:
            embedded_db_stop(server)
    print(write_section("rollups", _report(rows)), file=sys.stderr)  # noqa: T201


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "child":
        child(sys.argv[2])
    else:
        main()

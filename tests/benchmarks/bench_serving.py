"""`make bench`: /recommendations under load against the floor of a bare Django JSON view of the same app.

Serves the app with its production gunicorn config on loopback, over a seeded and trained throwaway database, with
traces really written (and counted afterwards). `hey` drives each endpoint flat out, then at half of that endpoint's
own maximum rate, in rounds (medians reported; a throughput ratio is the median of the rounds' own ratios). Why
hey: it holds a set rate (wrk has no rate limit) and is compiled (locust's Python would take the CPU it measures).

Two CPU layouts on this 2-core machine. **shared**: gunicorn, the database and the load generator all compete for
both cores. **database core**: the database alone on core 1, gunicorn and the load generator on core 0, as in
production where the database runs on its own machine. Gunicorn sizes its workers as in production: one per core it
may use, at least two (so two in both layouts). The embedded database is pure Python: on shared cores,
writing each answer's trace and exposure costs more CPU than answering, which a MongoDB elsewhere would not take from
the app.
"""

import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

BASE_DIR = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(BASE_DIR))
REPEATS = int(os.environ.get("BENCH_REPEATS", "3"))
DURATION = os.environ.get("BENCH_DURATION", "10s")
CONCURRENCY = 16
# Half rate with few connections: hey's per-connection tickers fire together, so many connections at a low rate
# arrive as bursts that measure hey's synchronisation rather than the service.
HALF_RATE_CONCURRENCY = 4
ENDPOINTS = {
    "bare Django JSON view (floor)": "/bench/bare",
    "DRF /healthz": "/healthz",
    "/recommendations": "/recommendations?userId=rider-000042&limit=10",
}
LAYOUTS = ("shared", "database core")
# CPU seconds a second below which the database counts as idle (its periodic housekeeping stays under it).
DATABASE_IDLE_CPU = 0.1


def hey(url: str, *, concurrency: int, rate_per_worker: float | None = None, cpu: str | None = None) -> dict[str, Any]:
    """Run hey and read its summary: requests/s, p50/p99 latency in ms, 200 answers and the others."""
    command = [*(["taskset", "-c", cpu] if cpu else []), "hey", "-z", DURATION, "-c", str(concurrency)]
    if rate_per_worker:
        command += ["-q", f"{rate_per_worker:.2f}"]
    output = subprocess.run([*command, url], capture_output=True, text=True, check=True).stdout
    found = {
        key: re.search(pattern, output)
        for key, pattern in (
            ("rps", r"Requests/sec:\s+([\d.]+)"),
            ("p50", r"50% in ([\d.]+) secs"),
            ("p99", r"99% in ([\d.]+) secs"),
        )
    }
    if not all(found.values()):
        raise RuntimeError(f"hey gave no latency figures for {url}:\n{output}")
    rps = float(found["rps"].group(1))  # type: ignore[union-attr]
    p50 = float(found["p50"].group(1)) * 1000  # type: ignore[union-attr]
    p99 = float(found["p99"].group(1)) * 1000  # type: ignore[union-attr]
    codes = {int(code): int(count) for code, count in re.findall(r"\[(\d{3})\]\s+(\d+) responses", output)}
    errors = sum(count for code, count in codes.items() if code != 200) + len(re.findall(r"Error distribution", output))
    return {"rps": rps, "p50": p50, "p99": p99, "errors": errors, "ok": codes.get(200, 0)}


def pin(pid: int, cpu: str) -> None:
    """Pin a running process and all its threads to `cpu`."""
    subprocess.run(["taskset", "-a", "-p", "-c", cpu, str(pid)], check=True, capture_output=True)


def cpu_seconds(pids: list[int]) -> float:
    """CPU time (user and system) the processes have used so far; a process that has gone counts as nothing."""
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


def gunicorn_pids(base: str) -> list[int]:
    """The gunicorn arbiter serving `base` and its workers: the processes started with its PORT."""
    port = f"PORT={base.rsplit(':', 1)[1]}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and b"gunicorn" in (entry / "cmdline").read_bytes():
                if port in (entry / "environ").read_bytes().split(b"\0"):
                    found.append(int(entry.name))
        except OSError:
            continue
    return found


def traces_kept(uri: str, db: str, spool: Path) -> tuple[int, int]:
    """After the server stopped: traces in the database, and traces in the spool for the next start to replay."""
    import pymongo

    in_database = pymongo.MongoClient(uri)[db]["prediction_traces"].count_documents({})
    in_spool = sum(line.count('"prediction_traces"') for path in spool.glob("*.jsonl") for line in path.open())
    return in_database, in_spool


def trace_backlog(base: str) -> float:
    """Traces and exposures the workers have not written yet, from the service's own gauge."""
    from tests.servers import http_get

    metrics = http_get(f"{base}/metrics")[1].decode()
    found = re.search(r"^rideease_trace_backlog_records(?:\{[^}]*\})? ([\d.e+]+)$", metrics, re.MULTILINE)
    return float(found.group(1)) if found else 0.0


def settle(base: str, database_pid: int, timeout: float = 300.0) -> float:
    """Wait until the last run's traces are written and the database is idle again, so the next run does not share
    the CPU with either.

    The embedded database stores traces more slowly than the service answers, and goes on working for a while after
    it acknowledged them; without this, on shared cores the endpoint measured after /recommendations would compete
    with the database catching up. Returns the seconds waited.
    """
    started = time.monotonic()
    time.sleep(2.5)  # the gauge is refreshed every 2 s
    while trace_backlog(base) > 0 and time.monotonic() - started < timeout:
        time.sleep(1)
    used = cpu_seconds([database_pid])
    while time.monotonic() - started < timeout:
        time.sleep(1)
        used, before = cpu_seconds([database_pid]), used
        if used - before <= DATABASE_IDLE_CPU:
            break
    return time.monotonic() - started


def measure(base: str, cpu: str | None, database_pid: int) -> dict[str, dict[str, list[dict[str, Any]]]]:
    """REPEATS rounds, each from a settled state: every endpoint flat out one after another, then each at half rate.

    The flat-out runs of one round follow each other within a minute, so a ratio taken inside a round compares the
    endpoints on the machine as it was then: on a shared VM the speed of the same code drifts by more than the gaps
    being measured. Each flat-out run also records the CPU the service and the database spent per answer, from its
    start until the traces it caused are written.
    """
    app_pids = gunicorn_pids(base)
    results: dict[str, dict[str, list[dict[str, Any]]]] = {
        name: {"warm-up": [], "max": [], "half": []} for name in ENDPOINTS
    }
    for name, path in ENDPOINTS.items():
        results[name]["warm-up"].append(hey(base + path, concurrency=CONCURRENCY, cpu=cpu))
    for _ in range(REPEATS):
        settle(base, database_pid)
        for name, path in ENDPOINTS.items():
            app, database = cpu_seconds(app_pids), cpu_seconds([database_pid])
            flat = hey(base + path, concurrency=CONCURRENCY, cpu=cpu)
            settle(base, database_pid)  # charges the run its CPU until its traces are written, and settles the next
            answers = max(flat["ok"], 1)
            flat["app_us"] = (cpu_seconds(app_pids) - app) / answers * 1e6
            flat["database_us"] = (cpu_seconds([database_pid]) - database) / answers * 1e6
            results[name]["max"].append(flat)
            print(name, flat, file=sys.stderr, flush=True)  # noqa: T201
        for name, path in ENDPOINTS.items():
            rate = results[name]["max"][-1]["rps"] / 2 / HALF_RATE_CONCURRENCY
            settle(base, database_pid)
            results[name]["half"].append(
                hey(base + path, concurrency=HALF_RATE_CONCURRENCY, rate_per_worker=rate, cpu=cpu)
            )
    return results


def main() -> None:
    from rideease.embedded_db import embedded_db_start, embedded_db_stop, free_port
    from tests.benchmarks.report import write_section
    from tests.servers import gunicorn_app, prepare_served_database

    os.environ.setdefault("DJANGO_SECRET_KEY", "benchmark-only-secret-key-0123456789-abcdefghijklmnopqrstuvwxyz")
    # No expiry: the embedded server expires traces by reading all of them once a minute (a 2.6 s pause at 150,000),
    # which MongoDB's TTL monitor, walking the index, does not; on shared cores it landed on whichever run was going.
    os.environ["TRACE_RETENTION_DAYS"] = "0"
    layouts: dict[str, dict[str, dict[str, list[dict[str, Any]]]]] = {}
    traces: dict[str, tuple[int, int, int]] = {}
    workers: dict[str, int] = {}
    for layout in LAYOUTS:
        with tempfile.TemporaryDirectory(prefix="rideease-serve-bench-") as scratch:
            var = Path(scratch)
            server = embedded_db_start(port=free_port(), storage=var / "db")
            try:
                prepare_served_database(mongodb_uri=server.uri, mongodb_db="bench", var_dir=var, events=20000)
                # Plain HTTP on loopback, as behind a TLS-terminating proxy; everything else as in production.
                env = {
                    "GUNICORN_WORKERS": "",  # the config's default: one per core gunicorn may use, at least two
                    "GUNICORN_THREADS": "4",
                    "DJANGO_LOG_LEVEL": "WARNING",
                    "DJANGO_HTTPS": "false",
                    "DJANGO_SETTINGS_MODULE": "tests.benchmarks.bench_settings",
                }
                app_cpu = "0" if layout == "database core" else None
                if app_cpu:
                    pin(server.process.pid, "1")
                with gunicorn_app(
                    mongodb_uri=server.uri, mongodb_db="bench", var_dir=var, extra_env=env, cpus=app_cpu
                ) as base:
                    layouts[layout] = measure(base, app_cpu, server.process.pid)
                answered = sum(run["ok"] for kind in layouts[layout]["/recommendations"].values() for run in kind)
                traces[layout] = (*traces_kept(server.uri, "bench", var / "spool"), answered)
                workers[layout] = (var / "gunicorn.log").read_text().count("Booting worker with pid")
            finally:
                embedded_db_stop(server)
    print(write_section("serving", _report(layouts, traces, workers)), file=sys.stderr)  # noqa: T201


def _median(runs: list[dict[str, Any]], key: str) -> float:
    return round(float(statistics.median(run[key] for run in runs)), 2)


def _rows(results: dict[str, dict[str, list[dict[str, Any]]]]) -> list[str]:
    rows = []
    for name, runs in results.items():
        flat, half = runs["max"], runs["half"]
        rows.append(
            f"| {name} | {_median(flat, 'rps')} | {_median(flat, 'p50')} | {_median(flat, 'p99')} "
            f"| {sum(r['errors'] for r in flat)} | {_median(half, 'p50')} | {_median(half, 'p99')} "
            f"| {sum(r['errors'] for r in half)} | {_median(flat, 'app_us'):.0f} | {_median(flat, 'database_us'):.0f} |"
        )
    return rows


def _ratios(results: dict[str, dict[str, list[dict[str, Any]]]], name: str) -> list[float]:
    """The endpoint's flat-out req/s over the floor's, round by round."""
    floors = results["bare Django JSON view (floor)"]["max"]
    return [run["rps"] / max(floor["rps"], 1e-9) for run, floor in zip(results[name]["max"], floors, strict=True)]


def _ratio(results: dict[str, dict[str, list[dict[str, Any]]]], name: str) -> float:
    return float(statistics.median(_ratios(results, name)))


def _listed(ratios: list[float]) -> str:
    return ", ".join(f"{ratio:.2f}" for ratio in ratios)


def _shared_budget(results: dict[str, dict[str, list[dict[str, Any]]]]) -> str:
    """What 0.8x would leave the database on shared cores, from this run's own figures.

    At 0.8x the floor's rate, the machine's cores give each answer a fixed amount of CPU in all; what the service does
    not use is all the database and `hey` may take while keeping up with the answers.
    """
    cores = len(os.sched_getaffinity(0))
    floor_rps = _median(results["bare Django JSON view (floor)"]["max"], "rps")
    budget = cores / (0.8 * floor_rps) * 1e6
    service = _median(results["/recommendations"]["max"], "app_us")
    database = _median(results["/recommendations"]["max"], "database_us")
    return (
        f"At 0.8x the floor's rate, these {cores} cores give each answer {budget:.0f} µs of CPU in all; the service "
        f"takes {service:.0f}, which leaves {max(budget - service, 0):.0f} µs for the database and `hey`, and the "
        f"database takes {database:.0f}. On shared cores a round reaches 0.8x only when the database falls behind "
        "during the run and writes the rest of its traces after it."
    )


def _report(
    layouts: dict[str, dict[str, dict[str, list[dict[str, Any]]]]],
    traces: dict[str, tuple[int, int, int]],
    workers: dict[str, int],
) -> str:
    lines = [
        "## Serving under load (`tests/benchmarks/bench_serving.py`)",
        "",
        f"Measured {datetime.now(UTC):%Y-%m-%d}: gunicorn with the production config (one worker per core it may "
        "use, at least two, 4 threads each) on "
        "loopback, the embedded SecantusDB, every answer's trace and exposure really written, `hey` as the load "
        f"generator, on a 2-core machine. Flat out: {CONCURRENCY} connections for {DURATION}; half rate: "
        f"{HALF_RATE_CONCURRENCY} connections limited to half of that endpoint's own maximum. Medians of {REPEATS} "
        "rounds; in each round the endpoints run flat out one after another, and a throughput ratio is the median of "
        "the rounds' own ratios, each comparing runs made less than a minute apart. The floor is a bare Django view "
        "returning JSON through the same middleware (no DRF, no database). Traces are kept without expiry "
        "(TRACE_RETENTION_DAYS=0): the embedded server expires traces by reading the whole collection once a minute, "
        "which a MongoDB does not do. Each "
        "run starts once the service reports no trace left to write, so no endpoint shares the CPU with the database "
        "catching up on an earlier run's traces.",
        "",
        "**shared**: gunicorn, the database and `hey` share both cores. **database core**: the database alone on "
        "core 1, gunicorn and `hey` on core 0, as in production where the database has its own machine. The embedded "
        "database is pure Python; on shared cores, storing each answer's trace and exposure takes more CPU than "
        "answering, CPU that a MongoDB server elsewhere would not take from the app. The CPU columns show it: CPU "
        "time of gunicorn's processes and of the database from the start of a flat-out run until its traces are "
        "written, per answer (medians; the floor's database figure is the database idling meanwhile). The "
        "throughput target is read on the database core, the layout that matches production; the shared layout "
        "shows what the embedded database costs a service that runs on one machine.",
    ]
    for layout, results in layouts.items():
        in_database, in_spool, answered = traces[layout]
        lines += [
            "",
            f"### {layout}",
            "",
            f"{workers[layout]} gunicorn worker{'s' if workers[layout] != 1 else ''} x 4 threads.",
            "",
            "| endpoint | max req/s | p50 ms | p99 ms | errors | at half rate: p50 ms | p99 ms | errors "
            "| CPU µs/answer: service | database |",
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
            *_rows(results),
            "",
            f"/recommendations throughput: **{_ratio(results, '/recommendations'):.2f}x** the floor (target: at "
            f"least 0.8x; rounds: {_listed(_ratios(results, '/recommendations'))}); DRF /healthz: "
            f"{_ratio(results, 'DRF /healthz'):.2f}x (rounds: {_listed(_ratios(results, 'DRF /healthz'))}). "
            f"Traces kept for the {answered:,} "
            f"answered requests: {in_database:,} in the database and {in_spool:,} spooled at shutdown for the next "
            "start to replay.",
        ]
        if layout == "shared":
            lines += ["", _shared_budget(results)]
    return "\n".join(lines)


if __name__ == "__main__":
    main()

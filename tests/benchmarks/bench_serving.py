"""`make bench`: /recommendations under load against the floor of a bare JSON view (/healthz) of the same app.

Serves the app with its production gunicorn config on loopback, over a seeded and trained throwaway database, with
traces really written. `hey` drives each endpoint flat out, then at half of that endpoint's own maximum rate;
endpoints alternate and each measurement is repeated (medians reported).
"""

import os
import re
import statistics
import subprocess
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

BASE_DIR = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(BASE_DIR))
REPEATS = int(os.environ.get("BENCH_REPEATS", "3"))
DURATION = os.environ.get("BENCH_DURATION", "10s")
CONCURRENCY = 16
ENDPOINTS = {
    "bare JSON view (/healthz)": "/healthz",
    "/recommendations": "/recommendations?userId=rider-000042&limit=10",
}


def hey(url: str, *, concurrency: int, rate_per_worker: float | None = None) -> dict[str, Any]:
    """Run hey and read its summary: requests/s, p50/p99 latency in ms, and non-200 answers."""
    command = ["hey", "-z", DURATION, "-c", str(concurrency)]
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
    return {"rps": rps, "p50": p50, "p99": p99, "errors": errors}


def main() -> None:
    from rideease.embedded_db import embedded_db_start, embedded_db_stop
    from tests.benchmarks.report import write_section
    from tests.servers import gunicorn_app, prepare_served_database

    os.environ.setdefault("DJANGO_SECRET_KEY", "benchmark-only-secret-key-0123456789-abcdefghijklmnopqrstuvwxyz")
    results: dict[str, dict[str, list[dict[str, Any]]]] = {name: {"max": [], "half": []} for name in ENDPOINTS}
    with tempfile.TemporaryDirectory(prefix="rideease-serve-bench-") as scratch:
        var = Path(scratch)
        from rideease.embedded_db import free_port

        server = embedded_db_start(port=free_port(), storage=var / "db")
        try:
            prepare_served_database(mongodb_uri=server.uri, mongodb_db="bench", var_dir=var, events=20000)
            # Plain HTTP on loopback, as behind a TLS-terminating proxy; everything else as in production.
            env = {
                "GUNICORN_WORKERS": "2",
                "GUNICORN_THREADS": "4",
                "DJANGO_LOG_LEVEL": "WARNING",
                "DJANGO_HTTPS": "false",
            }
            with gunicorn_app(mongodb_uri=server.uri, mongodb_db="bench", var_dir=var, extra_env=env) as base:
                for path in ENDPOINTS.values():
                    hey(base + path, concurrency=CONCURRENCY)  # warm up
                for _ in range(REPEATS):
                    for name, path in ENDPOINTS.items():
                        flat = hey(base + path, concurrency=CONCURRENCY)
                        results[name]["max"].append(flat)
                        half_rate = flat["rps"] / 2 / (CONCURRENCY // 2)
                        results[name]["half"].append(
                            hey(base + path, concurrency=CONCURRENCY // 2, rate_per_worker=half_rate)
                        )
                        print(name, flat, file=sys.stderr, flush=True)  # noqa: T201
        finally:
            embedded_db_stop(server)
    print(write_section("serving", _report(results)), file=sys.stderr)  # noqa: T201


def _median(runs: list[dict[str, Any]], key: str) -> float:
    return round(float(statistics.median(run[key] for run in runs)), 2)


def _report(results: dict[str, dict[str, list[dict[str, Any]]]]) -> str:
    lines = [
        "## Serving under load (`tests/benchmarks/bench_serving.py`)",
        "",
        f"Measured {datetime.now(UTC):%Y-%m-%d}: gunicorn with the production config (2 workers x 4 threads) on "
        "loopback, the embedded SecantusDB, traces and exposures really written, `hey` as the load generator on the "
        f"same 2-core machine. Flat out: {CONCURRENCY} connections for {DURATION}; half rate: "
        f"{CONCURRENCY // 2} connections limited to half of that endpoint's own maximum. Medians of {REPEATS} runs.",
        "",
        "| endpoint | max req/s | p50 ms | p99 ms | errors | at half rate: p50 ms | p99 ms | errors |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, runs in results.items():
        flat, half = runs["max"], runs["half"]
        lines.append(
            f"| {name} | {_median(flat, 'rps')} | {_median(flat, 'p50')} | {_median(flat, 'p99')} "
            f"| {sum(r['errors'] for r in flat)} | {_median(half, 'p50')} | {_median(half, 'p99')} "
            f"| {sum(r['errors'] for r in half)} |"
        )
    names = list(results)
    ratio = _median(results[names[1]]["max"], "rps") / max(_median(results[names[0]]["max"], "rps"), 1e-9)
    lines += ["", f"/recommendations throughput is **{ratio:.2f}x** the bare view's (target: at least 0.8x)."]
    return "\n".join(lines)


if __name__ == "__main__":
    main()

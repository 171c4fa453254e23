"""`make bench`: each decision rule on simulated experiments read daily, and the cost of one `analyse()` call.

The scenario of docs/EXPERIMENTS.md: 10% conversion, 1,500 users per arm a day, 14 daily looks, each run stopped at its
first ship or rollback (`core.simulation.simulate_experiments`, seeded). A/A runs (no effect) measure wrong decisions;
planted-lift runs (10% -> 11%) measure how often the lift is shipped, or wrongly rolled back. "Read once" analyses
only day 14 (the same counts as 21,000 users per arm on one day). Needs no database and no Django settings.

BENCH_RUNS (default 2000) runs per scenario; BENCH_REPEATS (default 3) timings of 10,000 `analyse()` calls, median.
Writes its section of docs/BENCHMARKS.md and prints the table (`--print-only`: print, write nothing).
"""

import math
import os
import statistics
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from core.statistics import Settings

BASE_DIR = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(BASE_DIR))
RUNS = int(os.environ.get("BENCH_RUNS", "2000"))
REPEATS = int(os.environ.get("BENCH_REPEATS", "3"))
LOOKS, USERS_PER_DAY, BASE, LIFTED = 14, 1500, 0.10, 0.11
AA_SEED, LIFT_SEED, TIMING_SEED = 101, 202, 303
CALLS = 10_000


def _rate(count: int, runs: int) -> str:
    """A rate with its 95% Monte Carlo half-width (normal approximation)."""
    rate = count / runs
    return f"{100 * rate:.1f}% ± {196 * math.sqrt(rate * (1 - rate) / runs):.1f}"


def _per_call_us(settings: "Settings", look: int | None) -> float:
    """Median over REPEATS of the time per call of CALLS `analyse()` calls on varied daily counts."""
    from core.statistics import Arm, analyse

    rng = np.random.default_rng(TIMING_SEED)
    days = rng.integers(1, LOOKS + 1, size=CALLS)
    arms = [
        (Arm(int(n), int(rng.binomial(n, BASE))), Arm(int(n), int(rng.binomial(n, LIFTED))))
        for n in days * USERS_PER_DAY
    ]
    samples = []
    for _ in range(REPEATS):
        clock = time.perf_counter()
        for control, treatment in arms:
            analyse(control, treatment, settings, look=look)
        samples.append((time.perf_counter() - clock) / CALLS * 1e6)
    return statistics.median(samples)


def main() -> str:
    from core.simulation import binomial_upper_bound, simulate_experiments
    from core.statistics import (
        FIXED_HORIZON,
        GROUP_SEQUENTIAL,
        SEQUENTIAL,
        Settings,
        min_sample_per_variant,
        spending_bounds,
    )

    scenarios = [
        ("sequential (default): confidence sequence, N* = 5,000", Settings(rule=SEQUENTIAL), LOOKS, 1),
        (f"group sequential, {LOOKS} planned looks", Settings(rule=GROUP_SEQUENTIAL, planned_looks=LOOKS), LOOKS, 1),
        ("fixed horizon, looked at daily", Settings(rule=FIXED_HORIZON), LOOKS, 1),
        (f"fixed horizon, read once at day {LOOKS}", Settings(rule=FIXED_HORIZON), 1, LOOKS),
    ]
    rows = []
    for name, settings, looks, days_per_look in scenarios:
        users = USERS_PER_DAY * days_per_look
        clock = time.perf_counter()
        aa, lift = (
            simulate_experiments(
                runs=RUNS,
                looks=looks,
                users_per_day=users,
                control_rate=BASE,
                treatment_rate=rate,
                settings=settings,
                seed=seed,
            )
            for rate, seed in ((BASE, AA_SEED), (LIFTED, LIFT_SEED))
        )
        seconds = time.perf_counter() - clock
        per_call = _per_call_us(settings, LOOKS if settings.rule == GROUP_SEQUENTIAL else None)
        decided_days = [(k + 1) * days_per_look for k, n in enumerate(lift.decision_look_counts) for _ in range(n)]
        median_day = f"{statistics.median(decided_days):g}" if decided_days else "-"
        rows.append(
            f"| {name} | {_rate(aa.decided, RUNS)} | {_rate(lift.shipped, RUNS)} | {_rate(lift.rolled_back, RUNS)} "
            f"| {median_day} | {per_call:.0f} |"
        )
        print(f"{name}: {aa} {lift} ({seconds:.1f} s)", file=sys.stderr, flush=True)  # noqa: T201
    planned = min_sample_per_variant(BASE, Settings()) or 0
    bounds = ", ".join(f"{c:.2f}" for c in spending_bounds(0.05, LOOKS))
    lines = [
        "## Decision rules on simulated experiments (`tests/benchmarks/bench_experiments.py`)",
        "",
        f"Measured {datetime.now(UTC):%Y-%m-%d}: {RUNS:,} seeded runs per scenario (A/A seed {AA_SEED}, lift seed "
        f"{LIFT_SEED}), {BASE:.0%} conversion, {USERS_PER_DAY:,} users per arm a day, {LOOKS} daily looks, each run "
        "stopped at its first ship or rollback; alpha 0.05, MDE 10% relative, power 0.8 (planned sample "
        f"{planned:,} per arm, reached on day {math.ceil(planned / USERS_PER_DAY)}). Rates with their 95% Monte Carlo "
        "half-width. **A/A wrong**: ship or rollback with no "
        f"effect (binomial 99.9% bound of alpha at {RUNS:,} runs: {binomial_upper_bound(RUNS, 0.05):.1%}). "
        f"**Lift**: {BASE:.0%} -> {LIFTED:.0%}. **µs / call**: median of {REPEATS} timings of {CALLS:,} `analyse()` "
        "calls.",
        "",
        "| rule | A/A wrong | lift shipped | lift rolled back | median day decided (lift) | µs / call |",
        "|---|---:|---:|---:|---:|---:|",
        *rows,
        "",
        f"Group-sequential bounds |z| at looks 1..{LOOKS}: {bounds}.",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    body = main()
    print(body)  # noqa: T201
    if "--print-only" not in sys.argv[1:]:
        from tests.benchmarks.report import write_section

        print(write_section("experiments", body), file=sys.stderr)  # noqa: T201

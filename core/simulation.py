"""Seeded simulations of experiments read at daily looks: how often a decision rule ships, rolls back or keeps running.

Each run draws, per arm and per day, the conversions of `users_per_day` users (binomial, all runs and days in one
vectorised draw), accumulates them, and calls `analyse` at every look (passing `look=k`, which only the group-sequential
rule uses) until the first ship or rollback: what a daily cron that acts on the decision would do.
"""

from dataclasses import dataclass

import numpy as np
from scipy.stats import binom

from core.statistics import KEEP_RUNNING, ROLLBACK, SHIP, Arm, Settings, analyse


@dataclass(frozen=True)
class SimulationOutcome:
    runs: int
    shipped: int
    rolled_back: int
    kept_running: int
    decision_look_counts: tuple[int, ...]  # runs decided (ship or rollback) at look 1, 2, ...
    analyse_calls: int

    @property
    def decided(self) -> int:
        return self.shipped + self.rolled_back

    @property
    def ship_rate(self) -> float:
        return self.shipped / self.runs

    @property
    def rollback_rate(self) -> float:
        return self.rolled_back / self.runs

    @property
    def decided_rate(self) -> float:
        """Ship or rollback: under no effect (an A/A test), the rate of wrong decisions."""
        return self.decided / self.runs


def simulate_experiments(
    *,
    runs: int,
    looks: int,
    users_per_day: int,
    control_rate: float,
    treatment_rate: float,
    settings: Settings,
    seed: int,
) -> SimulationOutcome:
    """`runs` experiments of `looks` days, `users_per_day` new users per arm a day, decided by `analyse` daily."""
    if runs < 1 or looks < 1 or users_per_day < 1:
        raise ValueError("runs, looks and users_per_day must be at least 1")
    rng = np.random.default_rng(seed)
    control = rng.binomial(users_per_day, control_rate, size=(runs, looks)).cumsum(axis=1)
    treatment = rng.binomial(users_per_day, treatment_rate, size=(runs, looks)).cumsum(axis=1)
    shipped = rolled_back = calls = 0
    by_look = [0] * looks
    for run in range(runs):
        for day in range(looks):
            exposed = users_per_day * (day + 1)
            result = analyse(
                Arm(exposed, int(control[run, day])), Arm(exposed, int(treatment[run, day])), settings, look=day + 1
            )
            calls += 1
            if result.decision != KEEP_RUNNING:
                shipped += result.decision == SHIP
                rolled_back += result.decision == ROLLBACK
                by_look[day] += 1
                break
    return SimulationOutcome(
        runs=runs,
        shipped=shipped,
        rolled_back=rolled_back,
        kept_running=runs - shipped - rolled_back,
        decision_look_counts=tuple(by_look),
        analyse_calls=calls,
    )


def binomial_upper_bound(runs: int, rate: float, quantile: float = 0.999) -> float:
    """The `quantile` of the share of `runs` independent events of probability `rate` (binom.ppf / runs).

    A simulated error rate above it is evidence, at level 1 - quantile, that the true rate exceeds `rate`.
    """
    return float(binom.ppf(quantile, runs, rate)) / runs

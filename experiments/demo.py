"""Demo experiments for `make run`: one finished and one running, each with days of tagged exposures and bookings.

The events follow what serving would have written: each rider is assigned by the experiment's salt and the phase's
share, sees a few items, and books one of them within the conversion window with the arm's rate scaled by the rider's
habit; some riders come back on later days, so a phase after a ramp has returning riders to leave out. Riders differ,
as real ones do: a habit (mean 1) sets both how often they booked in the week before their first visit and how likely
they book now, which is what CUPED's pre-period covariate uses.
"""

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta

import numpy as np

from core.assignment import variant_assign
from core.variants import CONTROL
from recommendations.events import EventInput

DAY = timedelta(days=1)


@dataclass(frozen=True)
class DemoPhase:
    start: datetime
    end: datetime
    share: float
    id: int


@dataclass(frozen=True)
class DemoTraffic:
    """Riders per day and the booking rate per arm."""

    riders_per_day: int
    control_rate: float
    treatment_rate: float
    returning: float = 0.15
    # Bookings per rider in the week before their first visit, at a habit of 1.
    prior_bookings: float = 2.0


# Riders' habits: gamma with mean 1 and variance 2, so a few book often and most rarely.
HABIT_SHAPE, HABIT_SCALE = 0.5, 2.0
MAX_BOOKING_RATE = 0.9
PRE_PERIOD = timedelta(days=7)
# Answer latencies: lognormal around a few milliseconds, the same for both arms (a healthy treatment).
LATENCY_LOG_MEDIAN = 1.0


def demo_events(
    *,
    key: str,
    phases: list[DemoPhase],
    versions: dict[str, str],
    items: list[str],
    traffic: DemoTraffic,
    seed: int,
) -> Iterator[EventInput]:
    """Exposures tagged with `key` and their phase, and the bookings that follow some of them."""
    rng = np.random.default_rng(seed)
    seen: list[str] = []
    habits: dict[str, float] = {}
    for phase in phases:
        day = phase.start
        while day < phase.end:
            span = min(day + DAY, phase.end) - day
            riders = max(1, round(traffic.riders_per_day * span / DAY))
            returning = min(len(seen), round(riders * traffic.returning))
            fresh = [f"{key}-rider-{len(seen) + n:06d}" for n in range(riders - returning)]
            old = [seen[i] for i in rng.choice(len(seen), size=returning, replace=False)] if returning else []
            seen += fresh
            for rider in fresh:
                habits[rider] = float(rng.gamma(HABIT_SHAPE, HABIT_SCALE))
                yield from _history(rng, rider, day, habits[rider], items, traffic)
            for rider in fresh + old:
                yield from _visit(rng, key, phase, day, span, rider, habits[rider], versions, items, traffic)
            day += DAY


def _history(
    rng: np.random.Generator, rider: str, day: datetime, habit: float, items: list[str], traffic: DemoTraffic
) -> Iterator[EventInput]:
    """The rider's bookings in the week before the day of their first visit."""
    for _ in range(int(rng.poisson(traffic.prior_bookings * habit))):
        at = day - PRE_PERIOD * float(rng.uniform(0.01, 1.0))
        yield EventInput("book", rider, at, items[int(rng.integers(len(items)))])


def _visit(
    rng: np.random.Generator,
    key: str,
    phase: DemoPhase,
    day: datetime,
    span: timedelta,
    rider: str,
    habit: float,
    versions: dict[str, str],
    items: list[str],
    traffic: DemoTraffic,
) -> Iterator[EventInput]:
    variant = variant_assign(rider, treatment_share=phase.share, salt=key)
    at = day + span * float(rng.random())
    shown = [items[i] for i in rng.choice(len(items), size=5, replace=False)]
    payload = {
        "requestId": f"demo-{key}-{rider}-{at.timestamp():.0f}",
        "variant": variant,
        "modelVersion": versions[variant],
        "items": shown,
        "experiment": key,
        "phase": phase.id,
        "latencyMs": round(float(rng.lognormal(LATENCY_LOG_MEDIAN, 0.5)), 3),
    }
    yield EventInput("recommend", rider, at, None, payload)
    rate = traffic.control_rate if variant == CONTROL else traffic.treatment_rate
    if rng.random() < min(MAX_BOOKING_RATE, rate * habit):
        yield EventInput("book", rider, at + timedelta(minutes=float(rng.uniform(1, 20))), shown[0])

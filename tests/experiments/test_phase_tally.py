"""A phase's tally saved and restored between looks gives the figures of one pass over the whole stream."""

import random
from datetime import UTC, datetime, timedelta

import orjson
import pytest

from core.metrics import BOOKINGS_PER_USER, CONVERSION_24H, MODEL_ERROR, PLAYS_PER_USER
from experiments.exposures import CONVERSION, EXPOSURE, Event, PhaseTally, Rules

T0 = datetime(2026, 11, 1, tzinfo=UTC)
PHASE_START = T0 + timedelta(days=8)
END = PHASE_START + timedelta(days=3)
RULES = Rules(
    window=timedelta(minutes=30),
    conversion_types=frozenset({"book"}),
    phase=2,
    phase_start=PHASE_START,
    secondary=(BOOKINGS_PER_USER, PLAYS_PER_USER, CONVERSION_24H, "event:skip"),
    pre_period=timedelta(days=7),
)
ITEMS = "abcdefgh"
ARMS = ("control", "treatment")


def random_stream(seed: int, users: int = 300, events: int = 3000) -> list[Event]:
    """Exposures in phases 1 and 2 and conversions of several types, many of a user's within minutes of each other
    (so conversions land in the window of an exposure before a look, after it)."""
    rng = random.Random(seed)
    stream = []
    for _ in range(events):
        user = f"u{rng.randrange(users)}"
        ts = T0 + timedelta(seconds=rng.randrange(int((END - T0).total_seconds())))
        if rng.random() < 0.5:
            # Exposures: a few in phase 1, the day before phase 2 starts.
            ts = PHASE_START + timedelta(seconds=rng.randrange(-86_400 // 4, int((END - PHASE_START).total_seconds())))
            stream.append(
                Event(
                    ts,
                    EXPOSURE,
                    user,
                    # Each rider's own arm, but a few are served the other one (or another variant) too.
                    rng.choice(["control", "treatment", "other"]) if rng.random() < 0.05 else ARMS[int(user[1:]) % 2],
                    rng.choice(["v1", "v2"]),
                    frozenset(rng.sample(ITEMS, 3)),
                    # A few answers after the switch still come from workers on phase 1.
                    phase=1 if ts < PHASE_START or rng.random() < 0.03 else 2,
                    latency_ms=rng.lognormvariate(1, 1) if rng.random() < 0.9 else None,
                    fallback=rng.choice(["", "", "", "cold_start", MODEL_ERROR]),
                )
            )
            # A conversion soon after, so some fall either side of a look.
            if rng.random() < 0.5:
                later = ts + timedelta(minutes=rng.uniform(0, 40))
                kind = rng.choice(["book", "book", "play", "skip", "view"])
                stream.append(Event(later, CONVERSION, user, item_id=rng.choice(ITEMS), event_type=kind))
        else:
            kind = rng.choice(["book", "play", "skip", "view"])
            stream.append(Event(ts, CONVERSION, user, item_id=rng.choice(ITEMS), event_type=kind))
    return sorted(stream, key=lambda event: (event.ts, event.kind))


def in_looks(stream: list[Event], cuts: list[int]) -> PhaseTally:
    """Feed the stream in pieces, saving the state as JSON and restoring it between pieces, as looks do."""
    tally = PhaseTally(RULES)
    start = 0
    for cut in [*cuts, len(stream)]:
        tally.feed(stream[start:cut])
        tally = PhaseTally.restore(RULES, orjson.loads(orjson.dumps(tally.state())))
        start = cut
    return tally


@pytest.mark.parametrize("seed", range(25))
def test_looks_that_resume_give_the_figures_of_one_pass(seed: int) -> None:
    stream = random_stream(seed)
    whole = PhaseTally(RULES)
    whole.feed(stream)
    rng = random.Random(seed)
    cuts = sorted(rng.sample(range(1, len(stream)), rng.randrange(1, 8)))
    assert in_looks(stream, cuts).counts(end=END) == whole.counts(end=END)


def test_the_streams_exercise_what_the_property_is_about() -> None:
    """Converted users, users from the earlier phase, a pre-period, secondary values and answers in both arms."""
    counts = PhaseTally(RULES)
    counts.feed(random_stream(0))
    figures = counts.counts(end=END)
    assert figures.control.converted_users > 0 and figures.treatment.converted_users > 0
    assert figures.users_from_earlier_phases > 0 and figures.users_in_both > 0
    assert figures.primary["control"].sum_x > 0 and figures.primary["control"].sum_xy >= 0
    assert all(figures.secondary[name]["treatment"].sum_y > 0 for name in RULES.secondary)
    assert figures.requests["treatment"].errors > 0 and figures.requests["control"].fallbacks > 0
    assert [point.at for point in figures.cumulative] == [
        PHASE_START + timedelta(days=1),
        PHASE_START + timedelta(days=2),
    ]


def test_a_conversion_after_a_look_matches_an_exposure_before_it() -> None:
    shown = Event(PHASE_START + timedelta(hours=1), EXPOSURE, "u1", "treatment", "v2", frozenset("a"), phase=2)
    booked = Event(PHASE_START + timedelta(hours=1, minutes=20), CONVERSION, "u1", item_id="a", event_type="book")
    assert in_looks([shown, booked], [1]).counts(end=END).treatment.converted_users == 1


def test_the_pre_period_counts_conversions_in_the_week_before_the_first_exposure() -> None:
    first = PHASE_START + timedelta(hours=2)
    events = [
        Event(first - timedelta(days=8), CONVERSION, "u1", item_id="a", event_type="book"),  # too early
        Event(first - timedelta(days=6), CONVERSION, "u1", item_id="a", event_type="book"),
        Event(first - timedelta(hours=1), CONVERSION, "u1", item_id="b", event_type="book"),
        Event(first - timedelta(hours=1), CONVERSION, "u1", item_id="b", event_type="play"),  # not a conversion
        Event(first, EXPOSURE, "u1", "control", "v1", frozenset("a"), phase=2),
        Event(first + timedelta(hours=30), CONVERSION, "u1", item_id="z", event_type="book"),  # after 24 h
    ]
    figures = in_looks(events, [2, 4]).counts(end=END)
    assert figures.primary["control"].sum_x == 2
    assert figures.secondary[BOOKINGS_PER_USER]["control"].sum_y == 1
    assert figures.secondary[CONVERSION_24H]["control"].sum_y == 0

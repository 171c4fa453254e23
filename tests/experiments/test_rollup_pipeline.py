"""A phase's rollup rebuilt by the database equals one client-side pass over the events (`PhaseTally`).

Randomized exposures in two phases and conversions of several types on the embedded server, plus hand-made events on
the edges: a conversion exactly one conversion window after its exposure and one a millisecond later, an exposure at
the phase's end, a conversion of an item the exposure did not list, riders with a single event, latencies on the
histogram's edges. The rebuild is taken at several instants; looks then go on from it as from a saved state.
"""

from collections.abc import Iterator
from datetime import datetime, timedelta
from math import inf, nextafter

import pytest

from core.guardrails import LATENCY_EDGES_MS
from core.variants import CONTROL, TREATMENT
from experiments.exposures import CONVERSION, EXPOSURE, Event, PhaseTally, merged
from experiments.rollup_pipeline import rebuilt_tally, user_facts
from experiments.rollups import phase_streams
from experiments.state import experiment_info
from experiments.streams import PhaseStreams, conversion_stream, exposure_stream
from recommendations.selectors import raw_event_collection
from tests.experiments.test_phase_tally import END, PHASE_START, random_stream
from tests.experiments.test_rollups import KEY, document, experiment

pytestmark = pytest.mark.django_db
WINDOW = timedelta(minutes=30)


def _edges() -> list[Event]:
    at = PHASE_START + timedelta(hours=5)
    return [
        Event(at, EXPOSURE, "edge-window", CONTROL, "v1", frozenset({"a"}), phase=2),
        Event(at + WINDOW, CONVERSION, "edge-window", item_id="a", event_type="book"),
        Event(at, EXPOSURE, "edge-late", TREATMENT, "v2", frozenset({"a"}), phase=2),
        Event(at + WINDOW + timedelta(milliseconds=1), CONVERSION, "edge-late", item_id="a", event_type="book"),
        Event(at, EXPOSURE, "edge-other-item", TREATMENT, "v2", frozenset({"a"}), phase=2),
        Event(at + timedelta(minutes=1), CONVERSION, "edge-other-item", item_id="b", event_type="book"),
        Event(at, EXPOSURE, "edge-same-instant", CONTROL, "v1", frozenset({"c"}), phase=2),
        Event(at, CONVERSION, "edge-same-instant", item_id="c", event_type="book"),
        Event(at, EXPOSURE, "single-exposure", CONTROL, "v1", frozenset({"a"}), phase=2),
        Event(at, CONVERSION, "single-conversion", item_id="a", event_type="book"),
        Event(END, EXPOSURE, "edge-at-end", CONTROL, "v1", frozenset({"a"}), phase=2),
        Event(END - timedelta(milliseconds=1), EXPOSURE, "edge-before-end", TREATMENT, "v2", frozenset(), phase=2),
        Event(PHASE_START - timedelta(hours=1), EXPOSURE, "edge-earlier", CONTROL, "v1", frozenset({"a"}), phase=1),
        Event(PHASE_START + timedelta(hours=1), EXPOSURE, "edge-earlier", CONTROL, "v1", frozenset({"a"}), phase=2),
        Event(PHASE_START + timedelta(hours=2), EXPOSURE, "edge-later-phase", CONTROL, "v1", frozenset({"a"}), phase=3),
        Event(PHASE_START + timedelta(hours=3), CONVERSION, "edge-earlier", item_id="a", event_type="book"),
        *(
            Event(at, EXPOSURE, f"edge-latency-{ms}", CONTROL, "v1", frozenset({"a"}), phase=2, latency_ms=ms)
            for ms in (
                0.0,
                1.0,
                10.0,
                120_001.0,
                3.7,
                *LATENCY_EDGES_MS[:6],
                *LATENCY_EDGES_MS[300:306],
                nextafter(LATENCY_EDGES_MS[5], inf),
            )
        ),
    ]


def _stored(seed: int) -> PhaseStreams:
    info = experiment_info(experiment())
    events = [*random_stream(seed), *_edges()]
    raw_event_collection().delete_many({})
    raw_event_collection().insert_many([document(event) for event in events])
    return phase_streams(info, info.phases[1], END)


def _one_pass(streams: PhaseStreams, until: datetime) -> PhaseTally:
    """The client-side computation: every event of the phase's streams before `until`, in time order, in one tally."""
    tally = PhaseTally(streams.rules)
    tally.feed(_events(streams, min(streams.exposures_from, streams.conversions_from), until))
    return tally


def _events(streams: PhaseStreams, start: datetime, end: datetime) -> Iterator[Event]:
    exposures = exposure_stream(
        start=max(start, streams.exposures_from), end=min(end, streams.exposures_to), experiment=KEY
    )
    conversions = conversion_stream(
        start=max(start, streams.conversions_from),
        end=min(end, streams.conversions_to),
        types=streams.rules.event_types(),
    )
    return merged(exposures, conversions)


@pytest.mark.parametrize("seed", [11, 12, 13])
def test_the_rebuild_leaves_the_state_and_figures_of_one_pass(seed: int) -> None:
    streams = _stored(seed)
    for until in (PHASE_START - timedelta(hours=1), PHASE_START + timedelta(hours=30, minutes=7), END):
        expected, rebuilt = _one_pass(streams, until), rebuilt_tally(streams, until)
        assert rebuilt.users == expected.users, until
        assert rebuilt.values == expected.values, until
        assert rebuilt.counts(end=streams.exposures_to) == expected.counts(end=streams.exposures_to), until
        # A look goes on from the rebuild as from a saved state: the events after it give one pass's figures.
        rebuilt.feed(_events(streams, until, streams.conversions_to))
        expected.feed(_events(streams, until, streams.conversions_to))
        assert rebuilt.counts(end=streams.exposures_to) == expected.counts(end=streams.exposures_to), until


def test_the_edges_of_the_window_and_the_phase() -> None:
    streams = _stored(0)
    users = {user.user_id: user for user in user_facts(streams, streams.conversions_to)}
    assert users["edge-window"].converted_at and users["edge-same-instant"].converted_at
    assert not users["edge-late"].converted_at and not users["edge-other-item"].converted_at
    assert users["single-exposure"].first_here and not users["single-exposure"].converted_at
    assert "single-conversion" not in users and "edge-at-end" not in users and "edge-later-phase" not in users
    assert users["edge-before-end"].first_here == END - timedelta(milliseconds=1)
    assert users["edge-earlier"].earlier and users["edge-earlier"].conversions_after_first_any == 1
    # Latencies on the histogram's edges land in the buckets core.guardrails gives them.
    counted = _one_pass(streams, streams.conversions_to).counts().requests[CONTROL]
    assert rebuilt_tally(streams, streams.conversions_to).counts().requests[CONTROL] == counted

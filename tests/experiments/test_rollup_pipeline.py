"""The database's per-rider aggregation of a phase equals one client-side pass over the events (`PhaseTally`).

Randomized exposures in two phases and conversions of several types on the embedded server, plus hand-made events on
the edges: a conversion exactly one conversion window after its exposure and one a millisecond later, an exposure at
the phase's end, a conversion of an item the exposure did not list, riders with a single event.
"""

from datetime import timedelta

import pytest

from core.variants import CONTROL, TREATMENT
from experiments.exposures import CONVERSION, EXPOSURE, Event, PhaseTally, from_micros, merged
from experiments.rollup_pipeline import phase_user_counts, phase_users
from experiments.rollups import PhaseStreams, phase_streams
from experiments.state import experiment_info
from experiments.streams import conversion_stream, exposure_stream
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
    ]


def _stored(seed: int) -> PhaseStreams:
    info = experiment_info(experiment())
    events = [*random_stream(seed), *_edges()]
    raw_event_collection().delete_many({})
    raw_event_collection().insert_many([document(event) for event in events])
    return phase_streams(info, info.phases[1], END)


def _one_pass(streams: PhaseStreams) -> PhaseTally:
    """The client-side computation: every event of the phase's streams read in time order into one tally."""
    rules = streams.rules
    tally = PhaseTally(rules)
    exposures = exposure_stream(start=streams.exposures_from, end=streams.exposures_to, experiment=KEY)
    conversions = conversion_stream(
        start=streams.conversions_from, end=streams.conversions_to, types=rules.event_types()
    )
    tally.feed(merged(exposures, conversions))
    return tally


@pytest.mark.parametrize("seed", [11, 12, 13])
def test_the_pipeline_gives_each_riders_facts_of_one_pass(seed: int) -> None:
    streams = _stored(seed)
    tally = _one_pass(streams)
    users = {user.user_id: user for user in phase_users(streams, batch_size=37)}
    counted = {user_id for user_id, user in users.items() if user.counted}
    assert counted == set(tally.values)
    for user_id in counted:
        assert users[user_id].first_exposure == from_micros(tally.values[user_id][0]), user_id
        assert users[user_id].converted == bool(tally.users[user_id] & 8), user_id
    counts, expected = phase_user_counts(iter(users.values())), tally.counts(end=streams.exposures_to)
    assert counts.control == (expected.control.exposed_users, expected.control.converted_users)
    assert counts.treatment == (expected.treatment.exposed_users, expected.treatment.converted_users)
    assert counts.users_in_both == expected.users_in_both
    assert counts.users_from_earlier_phases == expected.users_from_earlier_phases


def test_the_edges_of_the_window_and_the_phase() -> None:
    users = {user.user_id: user for user in phase_users(_stored(0))}
    assert users["edge-window"].converted and users["edge-same-instant"].converted
    assert not users["edge-late"].converted and not users["edge-other-item"].converted
    assert users["single-exposure"].counted and not users["single-exposure"].converted
    assert "single-conversion" not in users and "edge-at-end" not in users and "edge-later-phase" not in users
    assert users["edge-before-end"].counted
    assert users["edge-earlier"].earlier and not users["edge-earlier"].counted

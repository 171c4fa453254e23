"""Looks that resume from the saved aggregates give the figures of a rebuild, on events stored between looks."""

import random
from datetime import timedelta
from typing import Any

import pytest
from django.test import override_settings
from rest_framework.test import APIClient

from core.errors import ApplicationError
from experiments.exposures import EXPOSURE, Event
from experiments.models import Experiment, ExperimentStatus
from experiments.rollups import ROLLUP_COLLECTION, phase_counts
from experiments.state import experiment_info
from recommendations.selectors import raw_event_collection
from tests.experiments.test_phase_tally import END, PHASE_START, RULES, T0, random_stream

pytestmark = pytest.mark.django_db
KEY = "rollup-test"


def document(event: Event) -> dict[str, Any]:
    if event.kind == EXPOSURE:
        payload = {
            "variant": event.variant,
            "modelVersion": event.model_version,
            "items": sorted(event.items),
            "experiment": KEY,
            "phase": event.phase,
        }
        if event.latency_ms is not None:
            payload["latencyMs"] = event.latency_ms
        if event.fallback:
            payload["fallback"] = event.fallback
        return {"type": "recommend", "userId": event.user_id, "itemId": None, "ts": event.ts, "payload": payload}
    return {"type": event.event_type, "userId": event.user_id, "itemId": event.item_id, "ts": event.ts, "payload": {}}


def experiment() -> Experiment:
    """The same experiment in every test; the saved aggregates of the one before are not a model's, so not flushed."""
    raw_event_collection().database[ROLLUP_COLLECTION].delete_many({})
    phases = [
        {"id": 1, "startedAt": (T0 + timedelta(days=7)).isoformat(), "endedAt": PHASE_START.isoformat()},
        {"id": 2, "startedAt": PHASE_START.isoformat(), "endedAt": None},
    ]
    for phase in phases:
        phase |= {"controlVersion": "v1", "treatmentVersion": "v2", "treatmentShare": 0.5, "salt": KEY}
        phase |= {"revision": phase["id"], "reason": "", "actor": "t"}
    return Experiment.objects.create(
        key=KEY,
        name=KEY,
        control_version="v1",
        treatment_version="v2",
        status=ExperimentStatus.RUNNING,
        created_at=T0,
        started_at=T0 + timedelta(days=7),
        phases=phases,
        secondary_metrics=list(RULES.secondary),
        primary_metric={"name": "conversion", "windowMinutes": 30, "eventTypes": ["book"]},
    )


@pytest.mark.parametrize("seed", range(3))
@override_settings(EXPERIMENT_ROLLUP_SETTLE_MINUTES=0)
def test_looks_over_events_stored_between_them_equal_a_rebuild(seed: int) -> None:
    info = experiment_info(experiment())
    phase = info.phases[1]
    stream = [event for event in random_stream(seed) if event.ts < END]
    rng = random.Random(seed)
    # In whole seconds: the database keeps milliseconds, so an event stored after a look is never behind it.
    looks = sorted(
        PHASE_START + timedelta(seconds=rng.randrange(int((END - PHASE_START).total_seconds()))) for _ in "1234"
    )
    stored = 0
    for at in [*looks, END]:
        # What has happened by `at` is stored, then looked at: conversions of exposures before the last look arrive
        # after it, and riders seen before come back.
        arrived = [document(event) for event in stream[stored:] if event.ts < at]
        if arrived:
            raw_event_collection().insert_many(arrived)
        stored += len(arrived)
        looked = phase_counts(info=info, phase=phase, now=at)
    assert stored == len(stream)
    rebuilt = phase_counts(info=info, phase=phase, now=END, rebuild=True)
    assert looked == rebuilt
    assert rebuilt.control.converted_users > 0 and rebuilt.users_from_earlier_phases > 0
    assert phase_counts(info=info, phase=phase, now=END) == rebuilt  # and a look after the rebuild


@override_settings(EXPERIMENT_ROLLUP_SETTLE_MINUTES=0)
def test_a_look_reads_only_what_came_after_the_previous_one() -> None:
    """An event stored late, behind a look's watermark, is counted only by a rebuild: proof that looks resume."""
    info = experiment_info(experiment())
    phase = info.phases[1]
    raw_event_collection().insert_many([document(event) for event in random_stream(1)])
    first = phase_counts(info=info, phase=phase, now=END)
    late = Event(PHASE_START + timedelta(hours=5), EXPOSURE, "late-rider", "control", "v1", frozenset("a"), phase=2)
    raw_event_collection().insert_one(document(late))
    assert phase_counts(info=info, phase=phase, now=END).control.exposed_users == first.control.exposed_users
    rebuilt = phase_counts(info=info, phase=phase, now=END, rebuild=True)
    assert rebuilt.control.exposed_users == first.control.exposed_users + 1
    head = raw_event_collection().database[ROLLUP_COLLECTION].find_one({"_id": f"{KEY}:2"})
    assert head is not None and head["generation"] == 2  # one state per save, the old chunks gone
    chunks = raw_event_collection().database[ROLLUP_COLLECTION].count_documents({"head": f"{KEY}:2"})
    assert chunks == 1


@override_settings(EXPERIMENT_ROLLUP_SETTLE_MINUTES=0, EXPERIMENT_SUMMARY_BUDGET_SECONDS=0)
def test_a_web_read_out_of_time_saves_its_progress_and_asks_to_retry(api_client: APIClient) -> None:
    info = experiment_info(experiment())
    phase = info.phases[1]
    raw_event_collection().insert_many([document(event) for event in random_stream(2) if event.ts < END])
    answer = api_client.get(f"/experiments/{KEY}/summary")
    assert (answer.status_code, answer.json()["error"], answer["Retry-After"]) == (503, "summary_computing", "5")
    # Each read goes on from where the one before stopped, until it is done.
    progress = [answer.json()["details"]["readUpTo"]]
    for _ in range(100):
        try:
            looked = phase_counts(info=info, phase=phase, now=END, budget_seconds=0)
            break
        except ApplicationError as exc:
            assert exc.details is not None
            progress.append(exc.details["readUpTo"])
    assert progress == sorted(set(progress)) and len(progress) > 10
    assert looked == phase_counts(info=info, phase=phase, now=END, rebuild=True)

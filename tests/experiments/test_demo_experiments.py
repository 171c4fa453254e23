"""The demo's experiments: a finished and a running one, with real summaries on a fresh database."""

import math
from dataclasses import replace
from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import call_command
from django.utils import timezone

from experiments.models import Experiment
from experiments.selectors import experiment_get, experiment_phase_summary
from registry.models import ServingState

pytestmark = pytest.mark.django_db


def test_seeding_leaves_a_decided_experiment_and_a_ramped_running_one(served: None) -> None:
    out = StringIO()
    call_command("seed_experiments", stdout=out)
    finished, running = Experiment.objects.order_by("created_at")
    assert (finished.status, running.status) == ("stopped", "running")
    assert finished.result == "rolled_back" and "significant_harm" in finished.result_reasons
    assert [p["treatmentShare"] for p in running.phases] == [0.1, 0.5]
    state = ServingState.objects.get()
    assert (state.running_experiment, state.phase, state.treatment_share) == (running.key, 2, 0.5)

    summary = experiment_phase_summary(info=experiment_get(key=running.key), now=timezone.now())
    assert summary.phase is not None and summary.phase.id == 2
    assert summary.users_from_earlier_phases > 0
    assert summary.control.exposed_users > 500 and summary.treatment.exposed_users > 500
    assert summary.stats.srm_ok
    assert len(summary.cumulative) == math.ceil((summary.end - summary.start) / timedelta(days=1))  # one a day
    # Riders' bookings of the week before narrow the interval (CUPED), and the figures match a rebuild.
    assert summary.stats.cuped_applied and summary.stats.variance_reduction is not None
    assert summary.stats.variance_reduction > 0.1
    info = experiment_get(key=running.key)
    plain = experiment_phase_summary(info=replace(info, cuped=False), now=timezone.now())
    assert summary.stats.ci_upper - summary.stats.ci_lower < plain.stats.ci_upper - plain.stats.ci_lower
    assert experiment_phase_summary(info=info, now=timezone.now(), rebuild=True).stats == summary.stats
    history = experiment_phase_summary(info=experiment_get(key=finished.key), now=timezone.now())
    assert history.stats.decision == "rollback" and len(history.cumulative) == 11

    again = StringIO()
    call_command("seed_experiments", stdout=again)
    assert "not seeding" in again.getvalue() and Experiment.objects.count() == 2

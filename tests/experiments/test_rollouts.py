"""Safe rollouts end to end: answers served through /recommendations, looks by `experiment_summary --apply`.

The treatment's model is wrapped in the serving runtime (slower, or falling back for half the riders), as a bad
version would behave; everything else is the product's own path: exposures written by the trace writer, the phase's
aggregates, the guardrails, the ramp's steps through the serving-state write, the history, the admin and /metrics.
"""

import json
import time
import zlib
from collections.abc import Iterator
from dataclasses import replace
from io import StringIO
from typing import Any

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import Client
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families
from pymongo.errors import AutoReconnect, OperationFailure
from rest_framework.test import APIClient

from core.recommender.algorithms import Recommender
from experiments.models import Experiment
from experiments.services import experiment_create, experiment_start
from recommendations.events import EventInput
from recommendations.models import RawEvent
from recommendations.runtime import runtime_shutdown, serving_runtime
from recommendations.services import raw_event_store_many
from registry.models import ServingState, ServingStateChange

pytestmark = [pytest.mark.django_db, pytest.mark.slow]


class Slow:
    """A model that answers like `model`, `factor` times slower."""

    def __init__(self, model: Recommender, factor: float) -> None:
        self.model, self.factor = model, factor
        self.algorithm, self.item_ids = model.algorithm, model.item_ids

    def recommend(self, user_id: str, k: int) -> list[tuple[str, float]]:
        started = time.perf_counter()
        answer = self.model.recommend(user_id, k)
        time.sleep(max((time.perf_counter() - started) * (self.factor - 1), 0.002))
        return answer

    def knows(self, user_id: str) -> bool:
        return self.model.knows(user_id)


class HalfCold(Slow):
    """A model that does not know every other rider (by a stable hash), so it falls back to popularity for them."""

    def __init__(self, model: Recommender) -> None:
        super().__init__(model, 1.0)

    def recommend(self, user_id: str, k: int) -> list[tuple[str, float]]:
        return self.model.recommend(user_id if self.knows(user_id) else "never-seen", k)

    def knows(self, user_id: str) -> bool:
        return zlib.crc32(user_id.encode()) % 2 == 0 and self.model.knows(user_id)


def wrap_treatment(wrapper: Any) -> None:
    """Serve the treatment's version through `wrapper` in this process's runtime (the state is unchanged)."""
    runtime = serving_runtime()
    runtime.refresh()
    snapshot = runtime.snapshot
    assert snapshot.treatment is not None and snapshot.experiment is not None
    runtime._snapshot = replace(
        snapshot, treatment=replace(snapshot.treatment, model=wrapper(snapshot.treatment.model))
    )


def serve(users: list[str], rounds: int = 1) -> dict[str, str]:
    """Ask for each rider's recommendations `rounds` times; wait until every exposure is written. Rider -> variant."""
    client, variants = APIClient(), {}
    for _ in range(rounds):
        for user in users:
            answer = client.get("/recommendations", {"userId": user, "limit": 5})
            assert answer.status_code == 200, answer.content
            variants[user] = answer.json()["variant"]
    runtime_shutdown()  # flushes every queued exposure
    return variants


def book_recommended(users: list[str], rate: dict[str, float], variants: dict[str, str]) -> None:
    """The first `rate[variant]` share of each variant's riders books the first item they were shown."""
    by_variant: dict[str, list[str]] = {}
    for user in users:
        by_variant.setdefault(variants[user], []).append(user)
    now, events = timezone.now(), []
    for variant, members in by_variant.items():
        for user in members[: round(rate[variant] * len(members))]:
            shown = RawEvent.objects.filter(type="recommend", user_id=user).order_by("-ts").first()
            assert shown is not None
            events.append(EventInput("book", user, now, shown.payload["items"][0]))
    raw_event_store_many(events=events)


def look(key: str, *flags: str) -> dict[str, Any]:
    """The cron job's look (`--apply`), or what it would do (`--dry-run`)."""
    out, flags = StringIO(), flags or ("--apply",)
    call_command("experiment_summary", key, "--json", "--actor", "cron", *flags, stdout=out, stderr=StringIO())
    summary: dict[str, Any] = json.loads(out.getvalue())
    return summary


def riders(prefix: str, n: int) -> list[str]:
    return [f"{prefix}-{index:06d}" for index in range(n)]  # as the demo world names its riders


def started(key: str, ramp: list[dict[str, Any]]) -> str:
    fields = {"key": key, "name": key, "control_version": "v1.0.0", "treatment_version": "v1.1.0", "ramp": ramp}
    experiment_create(fields=fields | {"treatment_share": 0.5}, actor="ops")
    experiment_start(key=key, actor="ops")
    return key


@pytest.fixture
def experiment(served: None) -> Iterator[str]:
    """An experiment at half the traffic."""
    yield started("half", [])
    runtime_shutdown()


@pytest.fixture
def ramped(served: None) -> Iterator[str]:
    """An experiment on a 5% / 25% / 50% ramp."""
    ramp = [
        {"share": 0.05, "minHours": 0, "minUsers": 3},
        {"share": 0.25, "minHours": 0, "minUsers": 10},
        {"share": 0.5, "minHours": 0, "minUsers": 50},
    ]
    yield started("ramped", ramp)
    runtime_shutdown()


def test_a_treatment_three_times_slower_is_rolled_back_at_the_first_look_that_shows_it(experiment: str) -> None:
    wrap_treatment(lambda model: Slow(model, 3.0))
    serve(riders("rider", 100))
    early = look(experiment)  # a hundred answers cannot bound a p95 yet: the look holds
    assert early["applied"]["action"] == "hold", early["guardrails"]
    wrap_treatment(lambda model: Slow(model, 3.0))
    serve(riders("rider", 100), rounds=11)
    summary = look(experiment)
    latency = {result["metric"]: result for result in summary["guardrails"]}
    assert latency["latency_p95"]["status"] == "failing", latency
    assert summary["applied"]["action"] == "rollback"
    state = ServingState.objects.get()
    assert (state.control_version, state.treatment_share, state.running_experiment) == ("v1.0.0", 0.0, None)
    change = ServingStateChange.objects.get(revision=state.revision)
    assert (change.actor, change.action) == ("cron", "experiment_rolled_back")
    assert "guardrail latency_p95 failing" in change.reason
    record = Experiment.objects.get(key=experiment)
    assert record.result == "rolled_back" and "latency_p95" in record.result_reasons
    assert record.decisions == {"hold": 1, "rollback": 1}
    assert record.last_look["guardrails"]["latency_p95"] == "failing"


def test_a_treatment_that_falls_back_for_half_its_riders_is_rolled_back(experiment: str) -> None:
    wrap_treatment(HalfCold)
    serve(riders("rider", 100), rounds=6)
    before = look(experiment, "--dry-run")
    assert before["plan"]["action"] == "rollback" and before["applied"] is None
    assert Experiment.objects.get(key=experiment).status == "running"  # a dry run changes nothing
    summary = look(experiment)
    fallback = next(result for result in summary["guardrails"] if result["metric"] == "fallback_rate")
    assert fallback["status"] == "failing" and fallback["treatment"] - fallback["control"] > 0.2
    change = ServingStateChange.objects.get(revision=ServingState.objects.get().revision)
    assert change.action == "experiment_rolled_back" and "guardrail fallback_rate failing" in change.reason


def test_a_healthy_better_treatment_ramps_step_by_step_and_ships(
    ramped: str, staff_client: Client, api_client: APIClient
) -> None:
    experiment = ramped
    waiting = look(experiment)
    assert waiting["applied"]["action"] == "hold" and "0 of 3 treatment users" in waiting["plan"]["reason"]
    first = riders("step1", 200)
    variants = serve(first)
    assert look(experiment)["applied"]["action"] == "advance"
    second = riders("step2", 200)
    variants = serve(second)
    planned = look(experiment, "--dry-run")
    assert planned["plan"]["action"] == "advance" and planned["phase"]["treatmentShare"] == 0.25
    assert look(experiment)["applied"]["action"] == "advance"
    third = riders("step3", 700)
    variants = serve(third)
    book_recommended(third, {"control": 0.3, "treatment": 0.6}, variants)
    shipped = look(experiment)
    assert shipped["applied"]["action"] == "ship", shipped["plan"]
    record = Experiment.objects.get(key=experiment)
    assert (record.status, record.result, record.ramp_step) == ("stopped", "shipped", 2)
    assert record.decisions == {"hold": 1, "advance": 2, "ship": 1}
    assert [phase["treatmentShare"] for phase in record.phases] == [0.05, 0.25, 0.5]
    history = ServingStateChange.objects.order_by("revision")
    steps = [(change.action, change.after["treatmentShare"]) for change in history if change.actor == "cron"]
    assert steps == [("experiment_phase", 0.25), ("experiment_phase", 0.5), ("experiment_shipped", 0.0)]
    assert ServingState.objects.get().control_version == "v1.1.0"
    shown = staff_client.get("/admin/ui/registry/servingstatechange/").content.decode()
    assert "advance on phase 1" in shown and "advance on phase 2" in shown and "ship on phase 3" in shown
    record_page = staff_client.get(f"/admin/ui/experiments/experiment/{experiment}/summary/").content.decode()
    assert '<table id="ramp">' in record_page and "advance 2" in record_page and "ship 1" in record_page
    decisions = scraped(api_client, "rideease_experiment_decisions_total", experiment)
    assert (decisions["advance"], decisions["ship"], decisions["rollback"], decisions["hold"]) == (2, 1, 0, 1)


def scraped(client: APIClient, name: str, experiment: str) -> dict[str, float]:
    """One family's samples for the experiment from /metrics, by their last label (action, metric) if any."""
    text = client.get("/metrics").content.decode()
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and sample.labels.get("experiment") == experiment:
                found[sample.labels.get("action") or sample.labels.get("metric") or ""] = sample.value
    return found


def test_a_look_that_cannot_read_retries_then_counts_failures_and_never_switches(
    experiment: str, api_client: APIClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    before = ServingState.objects.get().revision
    calls = []

    def unreachable(**kwargs: Any) -> None:
        calls.append(kwargs)
        raise AutoReconnect("connection refused")

    monkeypatch.setattr("experiments.selectors.phase_counts", unreachable)
    for failures in range(1, 5):
        with pytest.raises(CommandError, match="database_unavailable: AutoReconnect"):
            look(experiment, "--apply", "--retry-delay", "0")
        assert len(calls) == 3 * failures  # three attempts a look
        assert Experiment.objects.get(key=experiment).look_failures == failures
    assert scraped(api_client, "rideease_experiment_look_failures", experiment) == {"": 4.0}
    assert scraped(api_client, "rideease_experiment_look_failure_limit", experiment) == {"": 4.0}
    record = Experiment.objects.get(key=experiment)
    assert record.last_look["outcome"] == "failed" and "AutoReconnect" in record.last_look["error"]
    assert (record.status, ServingState.objects.get().revision) == ("running", before)  # nothing switched
    monkeypatch.undo()
    assert look(experiment)["applied"]["action"] == "hold"
    assert Experiment.objects.get(key=experiment).look_failures == 0


def test_a_rebuild_the_database_refuses_says_so_at_once_and_counts_as_a_failed_look(
    experiment: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    before = ServingState.objects.get().revision
    calls = []

    def refused(*args: Any) -> None:
        calls.append(args)
        raise OperationFailure("Exceeded memory limit", code=292, details={"errmsg": "Exceeded memory limit"})

    monkeypatch.setattr("experiments.rollups.rebuilt_tally", refused)
    with pytest.raises(CommandError, match=r"database_rejected: the database refused the read \(code 292\)"):
        look(experiment, "--apply", "--rebuild", "--retry-delay", "0")
    assert len(calls) == 1  # a refusal is not retried
    record = Experiment.objects.get(key=experiment)
    assert record.look_failures == 1 and "code 292" in record.last_look["error"]
    assert ServingState.objects.get().revision == before

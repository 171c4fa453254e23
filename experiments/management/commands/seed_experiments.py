"""manage.py seed_experiments: the demo's experiment history (one finished, one running), when there is none yet."""

from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from core.statistics import ROLLBACK, SHIP
from core.variants import CONTROL, TREATMENT
from experiments.demo import DemoPhase, DemoTraffic, demo_events
from experiments.models import Experiment, ExperimentResult
from experiments.selectors import experiment_get, experiment_phase_summary
from experiments.services import experiment_change, experiment_create, experiment_start, experiment_stop
from experiments.state import phase_document
from recommendations.demo_data import DemoConfig, demo_world_build
from recommendations.services import raw_event_store_many
from registry.selectors import serving_state_current

ACTOR = "demo (seed_experiments)"
DAY = timedelta(days=1)
RESULTS = {SHIP: ExperimentResult.SHIPPED, ROLLBACK: ExperimentResult.ROLLED_BACK}


class Command(BaseCommand):
    help = (
        "Seed the demo's experiments on the served versions: a finished one (stopped on its own decision) and a "
        "running one ramped from 10% to 50%, each with days of tagged exposures and bookings. Does nothing when "
        "any experiment exists."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        if Experiment.objects.exists():
            self.stdout.write("Experiments: some exist; not seeding demo experiments.")
            return
        state = serving_state_current()
        if state is None or state.treatment_version is None:
            raise CommandError("seed_experiments needs a served control and treatment version (run bootstrap).")
        versions = {CONTROL: state.control_version, TREATMENT: state.treatment_version}
        items = demo_world_build(DemoConfig()).item_ids
        now = timezone.now()
        finished = self._experiment(
            "ranker-svd-november",
            "SVD against item-kNN, first try",
            versions,
            items,
            shares=[(now - 30 * DAY, 0.1), (now - 29 * DAY, 0.5)],
            end=now - 18 * DAY,
            traffic=DemoTraffic(riders_per_day=400, control_rate=0.12, treatment_rate=0.07),
        )
        self.stdout.write(f"Experiments: {finished}")
        running = self._experiment(
            "ranker-svd-december",
            "SVD against item-kNN, retuned",
            versions,
            items,
            shares=[(now - 6 * DAY, 0.1), (now - 5 * DAY, 0.5)],
            end=None,
            traffic=DemoTraffic(riders_per_day=500, control_rate=0.10, treatment_rate=0.115),
        )
        self.stdout.write(f"Experiments: {running}")

    def _experiment(
        self,
        key: str,
        name: str,
        versions: dict[str, str],
        items: list[str],
        *,
        shares: list[tuple[datetime, float]],
        end: datetime | None,
        traffic: DemoTraffic,
    ) -> str:
        """Run the experiment through the services, move its phases to the planned days, and plant its traffic."""
        (first_start, first_share), later = shares[0], shares[1:]
        fields = {
            "key": key,
            "name": name,
            "hypothesis": "Latent factors find rides that riders book more often than item neighbours do.",
            "control_version": versions[CONTROL],
            "treatment_version": versions[TREATMENT],
            "treatment_share": first_share,
            "secondary_metrics": ["bookings_per_user", "conversion_24h"],
        }
        experiment_create(fields=fields, actor=ACTOR, now=first_start - DAY)
        experiment_start(key=key, actor=ACTOR, reason="demo: start at 10%")
        for _, share in later:
            experiment_change(key=key, changes={"treatment_share": share}, actor=ACTOR, reason="demo: ramp to 50%")
        info = experiment_get(key=key)
        starts = [start for start, _ in shares]
        ends: list[datetime | None] = [*starts[1:], end]
        phases = [replace(p, started_at=s, ended_at=e) for p, s, e in zip(info.phases, starts, ends, strict=True)]
        Experiment.objects.filter(key=key).update(started_at=first_start, phases=[phase_document(p) for p in phases])
        now = timezone.now()
        planned = [DemoPhase(p.started_at, p.ended_at or now, p.treatment_share, p.id) for p in phases]
        events = list(demo_events(key=key, phases=planned, versions=versions, items=items, traffic=traffic, seed=7))
        raw_event_store_many(events=events)
        if end is None:
            return f"{key} running ({len(events)} events over {len(phases)} phases)"
        # Decided by its own summary, as the daily job would have done on its last day.
        summary = experiment_phase_summary(info=experiment_get(key=key), now=end)
        result = RESULTS.get(summary.stats.decision, ExperimentResult.INCONCLUSIVE)
        experiment_stop(key=key, result=result, actor=ACTOR, reason="demo: decided", reasons=summary.stats.reasons)
        last = replace(phases[-1], ended_at=end)
        Experiment.objects.filter(key=key).update(
            stopped_at=end, phases=[phase_document(p) for p in [*phases[:-1], last]]
        )
        return f"{key} stopped, {result} ({len(events)} events over {len(phases)} phases)"

"""The experiments' contribution to /metrics: each recent experiment's ramp, guardrails and automatic looks, per scrape.

Every family is labelled {experiment, slot} and covers the experiments running now or stopped in the last
REPORTED_DAYS, so a rollback or a ship stays visible for a week after it stopped the experiment. Read with one small
query at each scrape; while the database is unreachable the families have no samples rather than wrong ones.
"""

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

from django.conf import settings
from django.db.models import Q
from django.utils import timezone
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

from common.errors import DATABASE_ERRORS
from core.guardrails import GUARDRAIL_FAILING
from core.rollout import LOOK_ACTIONS
from experiments.models import Experiment, ExperimentStatus

REPORTED_DAYS = 7
LABELS = ["experiment", "slot"]
FIELDS = (
    "key",
    "slot",
    "status",
    "treatment_share",
    "ramp",
    "ramp_step",
    "guardrails",
    "look_failures",
    "last_look",
    "decisions",
    "started_at",
)


def _reported_experiments(now: datetime) -> list[dict[str, Any]]:
    """The experiments running, or stopped since REPORTED_DAYS ago: only the fields the metrics need."""
    recent = Q(status=ExperimentStatus.STOPPED, stopped_at__gte=now - timedelta(days=REPORTED_DAYS))
    rows = Experiment.objects.filter(Q(status=ExperimentStatus.RUNNING) | recent).order_by("key").values(*FIELDS)
    return list(rows)


def _timestamp(value: object) -> float | None:
    """Unix seconds of an ISO-8601 time (naive: UTC), or None when absent or unreadable."""
    if not isinstance(value, str):
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return None
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()


class ExperimentCollector(Collector):
    """rideease_experiment_*: ramp step and share, running, start, guardrail status, looks and their decisions."""

    def collect(self) -> Iterator[Metric]:
        try:
            experiments = _reported_experiments(timezone.now())
        except DATABASE_ERRORS:
            return  # no sample rather than a wrong one; the database alerts say why
        gauges = {
            "ramp_step": GaugeMetricFamily(
                "rideease_experiment_ramp_step",
                "The ramp step serving, counted from 1; 0 for an experiment without a ramp.",
                labels=LABELS,
            ),
            "ramp_steps": GaugeMetricFamily(
                "rideease_experiment_ramp_steps", "Steps in the experiment's ramp (0: no ramp).", labels=LABELS
            ),
            "share": GaugeMetricFamily(
                "rideease_experiment_treatment_share", "The experiment's treatment share now.", labels=LABELS
            ),
            "running": GaugeMetricFamily(
                "rideease_experiment_running", "1 while the experiment runs, 0 once stopped.", labels=LABELS
            ),
            "failures": GaugeMetricFamily(
                "rideease_experiment_look_failures",
                "Consecutive automatic looks that failed (0 after one that worked).",
                labels=LABELS,
            ),
            "limit": GaugeMetricFamily(
                "rideease_experiment_look_failure_limit",
                "Consecutive failed looks at which an alert fires (EXPERIMENT_LOOK_FAILURE_LIMIT).",
                labels=LABELS,
            ),
            "last_look": GaugeMetricFamily(
                "rideease_experiment_last_look_timestamp_seconds",
                "Unix time of the experiment's last automatic look (no sample before the first).",
                labels=LABELS,
            ),
            # So that an experiment never looked at is seen as stale too: its age counts from its start.
            "started": GaugeMetricFamily(
                "rideease_experiment_started_timestamp_seconds",
                "Unix time at which the experiment started.",
                labels=LABELS,
            ),
        }
        failing = GaugeMetricFamily(
            "rideease_experiment_guardrail_failing",
            "1 when the guardrail failed in the last look, else 0; one series per configured guardrail.",
            labels=[*LABELS, "metric"],
        )
        decisions = CounterMetricFamily(
            "rideease_experiment_decisions",
            "Automatic looks by what they did (hold, advance, rollback, ship, failed).",
            labels=[*LABELS, "action"],
        )
        limit = float(settings.EXPERIMENT_LOOK_FAILURE_LIMIT)
        for row in experiments:
            labels = [row["key"], row["slot"]]
            ramp, last_look = row["ramp"] or [], row["last_look"] or {}
            gauges["ramp_step"].add_metric(labels, row["ramp_step"] + 1 if ramp else 0)
            gauges["ramp_steps"].add_metric(labels, len(ramp))
            gauges["share"].add_metric(labels, row["treatment_share"])
            gauges["running"].add_metric(labels, 1 if row["status"] == ExperimentStatus.RUNNING else 0)
            gauges["failures"].add_metric(labels, row["look_failures"])
            gauges["limit"].add_metric(labels, limit)
            looked_at = _timestamp(last_look.get("at"))
            if looked_at is not None:
                gauges["last_look"].add_metric(labels, looked_at)
            if row["started_at"] is not None:
                gauges["started"].add_metric(labels, row["started_at"].timestamp())
            statuses = last_look.get("guardrails") or {}
            for guardrail in row["guardrails"] or []:
                metric = guardrail["metric"]
                failing.add_metric([*labels, metric], 1 if statuses.get(metric) == GUARDRAIL_FAILING else 0)
            counts = row["decisions"] or {}
            for action in LOOK_ACTIONS:
                decisions.add_metric([*labels, action], counts.get(action, 0))
        yield from gauges.values()
        yield failing
        yield decisions

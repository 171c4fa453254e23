"""manage.py train: learn a recommender from raw_events, evaluate it against popularity, publish and register it."""

import json
import time
from dataclasses import asdict
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser
from pymongo.errors import OperationFailure
from tqdm import tqdm

from common.errors import DATABASE_ERRORS
from core.errors import ApplicationError
from recommendations.training import (
    ENGINES,
    PROMOTE_TARGETS,
    TRAINING_ALGORITHMS,
    TrainingReport,
    TrainingRequest,
    training_run,
)


def _params(raw: list[str]) -> dict[str, Any]:
    params: dict[str, Any] = {}
    for item in raw:
        name, _, value = item.partition("=")
        if not name or not value:
            raise CommandError(f"--param expects NAME=VALUE, got {item!r}")
        try:
            params[name] = json.loads(value)
        except json.JSONDecodeError:
            params[name] = value
    return params


class Command(BaseCommand):
    help = (
        "Train a recommender on the last --lookback-days of events, evaluate it against popularity on the last "
        "--test-days, publish its artifacts to MODEL_REGISTRY_URI and register the version. Exit 1 on failure."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--lookback-days", type=int, default=settings.TRAINING_LOOKBACK_DAYS)
        parser.add_argument("--test-days", type=int, default=settings.TRAINING_TEST_DAYS)
        parser.add_argument(
            "--engine",
            choices=ENGINES,
            default=settings.TRAIN_ENGINE,
            help="local: read every event here; spark: the database sums them per rider and item, Spark fits ALS "
            "on SPARK_MASTER",
        )
        parser.add_argument(
            "--algorithm",
            choices=TRAINING_ALGORITHMS,
            help="the model to fit; auto searches them all and keeps the best on validation (default: "
            "TRAINING_ALGORITHM, or als with --engine spark)",
        )
        parser.add_argument(
            "--param", action="append", default=[], help="model parameter NAME=VALUE, held fixed in the search"
        )
        parser.add_argument(
            "--budget-seconds",
            type=float,
            default=settings.TRAINING_BUDGET_SECONDS,
            help="time for the parameter search on validation (one trial always runs)",
        )
        parser.add_argument("--trials", type=int, default=settings.TRAINING_MAX_TRIALS, help="most search trials")
        parser.add_argument("--seed", type=int, default=settings.TRAINING_SEED, help="the search's order")
        parser.add_argument(
            "--model-version", default=settings.MODEL_VERSION, help="explicit vX.Y.Z (default: minor bump)"
        )
        parser.add_argument("--dry-run", action="store_true", help="read, fit and evaluate; publish nothing")
        parser.add_argument("--promote", choices=PROMOTE_TARGETS, default="none", help="serve the new version")
        parser.add_argument(
            "--require-better-than-baseline",
            action="store_true",
            default=settings.TRAINING_REQUIRE_BETTER_THAN_BASELINE,
            help="refuse to publish a model whose NDCG@10 is not above popularity's beyond its 95%% interval",
        )
        parser.add_argument("--json", action="store_true", help="print the final report as JSON on stdout")

    def handle(self, *args: Any, **options: Any) -> None:
        request = TrainingRequest(
            lookback_days=options["lookback_days"],
            test_days=options["test_days"],
            algorithm=options["algorithm"] or ("als" if options["engine"] == "spark" else settings.TRAINING_ALGORITHM),
            engine=options["engine"],
            params=_params(options["param"]),
            dry_run=options["dry_run"],
            promote=options["promote"],
            require_better_than_baseline=options["require_better_than_baseline"],
            budget_seconds=options["budget_seconds"],
            max_trials=options["trials"],
            seed=options["seed"],
            requested_version=options["model_version"],
        )
        started = time.monotonic()
        unit = "rider-item pairs" if request.engine == "spark" else "events"
        bar = tqdm(desc=f"read {unit}", unit=f" {unit}", file=self.stderr, mininterval=1.0)

        def progress(read: int) -> None:
            bar.update(read - bar.n)

        def stage(name: str, message: str) -> None:
            if name == "read":
                bar.close()
            self.stderr.write(f"[{name}] {message}")

        try:
            report = training_run(request, stage=stage, progress=progress)
        except ApplicationError as exc:
            raise CommandError(f"training failed ({exc.code}): {exc.message}") from exc
        except OperationFailure as exc:
            # The server answered but refused the read (a stage it lacks, a memory limit): not an outage.
            reason = (exc.details or {}).get("errmsg") or str(exc)
            message = f"the database refused the training read (code {exc.code}): {reason}"
            raise CommandError(f"training failed (database_rejected): {message}"[:2000]) from exc
        except DATABASE_ERRORS as exc:
            raise CommandError(f"training failed (database_unavailable): {type(exc).__name__}: {exc}") from exc
        finally:
            bar.close()
        self._summary(report, time.monotonic() - started, options["json"])

    def _summary(self, report: TrainingReport, elapsed: float, as_json: bool) -> None:
        if as_json:
            document = {
                "version": report.published.version if report.published else None,
                "artifactUri": report.published.artifact_uri if report.published else None,
                "algorithm": report.algorithm,
                "dryRun": report.dry_run,
                "window": report.window,
                "counts": report.counts,
                "metrics": report.metrics,
                "provenance": asdict(report.provenance) if report.provenance else None,
                "promoted": report.promoted.revision if report.promoted else None,
                "timings": report.timings,
                "seconds": round(elapsed, 3),
            }
            self.stdout.write(json.dumps(document, default=str))
            return
        candidate, gate = report.metrics["candidate"], report.metrics["gate"]
        where = (
            f"published {report.published.version} to {report.published.artifact_uri}"
            if report.published
            else "dry run: nothing published"
        )
        self.stdout.write(
            f"{where}; {report.algorithm} NDCG@10 {candidate['ndcg@10']} {candidate['ndcg@10Interval']}, "
            f"recall@10 {candidate['recall@10']}, MAP@10 {candidate['map@10']}; vs {gate['baseline']}: "
            f"{gate['difference']} {gate['interval']}; "
            f"{report.counts['events']} events, {report.counts['users']} users; {elapsed:.1f}s"
        )

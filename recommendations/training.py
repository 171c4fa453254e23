"""The training run behind `manage.py train`: read the window, fit and evaluate, gate, publish, register, promote.

The one place training is orchestrated; the fitting and evaluation themselves are pure (core.recommender).
"""

import hashlib
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, NamedTuple

from django.conf import settings
from django.utils import timezone

from core.errors import ApplicationError
from core.recommender.algorithms import ALGORITHMS
from core.recommender.pair_training import half_lives_needed, train_and_evaluate_pairs
from core.recommender.pairs import Pairs, PairsBuilder
from core.recommender.training import AUTO, SearchRequest, TrainingOutcome, train_and_evaluate
from core.recommender.training_data import InteractionsBuilder, TrainingData
from core.variants import VARIANTS
from recommendations.selectors import training_events_iter, training_pairs_iter
from registry.services import Provenance, PublishedVersion, VersionDraft, model_version_create, serving_state_switch
from registry.state import ServingStateInfo

PROGRESS_EVERY = 50_000
PROMOTE_TARGETS = ("none", *VARIANTS)
TRAINING_ALGORITHMS = (*ALGORITHMS, AUTO)
ENGINES = ("local", "spark")
# What the Spark engine fits: its ALS (AUTO searches its parameters).
SPARK_ALGORITHMS = ("als", AUTO)


@dataclass(frozen=True)
class TrainingRequest:
    lookback_days: int
    test_days: int
    algorithm: str
    params: dict[str, Any] = field(default_factory=dict)
    engine: str = "local"
    dry_run: bool = False
    promote: str = "none"
    require_better_than_baseline: bool = False
    budget_seconds: float | None = None
    max_trials: int | None = None
    seed: int | None = None
    requested_version: str | None = None
    actor: str = "manage.py train"
    now: datetime | None = None


@dataclass
class TrainingReport:
    algorithm: str
    window: dict[str, Any]
    dry_run: bool
    timings: dict[str, float] = field(default_factory=dict)
    counts: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    provenance: Provenance | None = None
    published: PublishedVersion | None = None
    promoted: ServingStateInfo | None = None


Stage = Callable[[str, str], None]
Progress = Callable[[int], None]


def _git(*args: str) -> str | None:
    try:
        result = subprocess.run(["git", "-C", str(settings.BASE_DIR), *args], capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return None
    return result.stdout.strip() if result.returncode == 0 else None


def _git_source() -> tuple[str, str] | None:
    """The checkout's commit, and whether the working tree differed from it (the code that ran is then not HEAD)."""
    sha = _git("rev-parse", "HEAD")
    if not sha:
        return None
    dirty = bool(_git("status", "--porcelain", "--untracked-files=no"))
    return sha, "git rev-parse HEAD" + (" (working tree had uncommitted changes)" if dirty else "")


def provenance_resolve(
    *, window: dict[str, Any], events: int, digest: str, engine: str = "local (numpy, scipy, scikit-learn, implicit)"
) -> Provenance:
    """Each provenance value, and where it came from; never a silent "unknown"."""
    sources: dict[str, str] = {}
    if settings.DATA_SNAPSHOT_ID:
        snapshot, sources["dataSnapshotId"] = settings.DATA_SNAPSHOT_ID, "env DATA_SNAPSHOT_ID"
    else:
        basis = f"{window['start']}|{window['end']}|{events}|{digest}"
        snapshot = "snap-" + hashlib.sha256(basis.encode()).hexdigest()[:20]
        sources["dataSnapshotId"] = "computed: sha256 of window start, end, event count and event digest"
    git = None if settings.PIPELINE_GIT_SHA else _git_source()
    if settings.PIPELINE_GIT_SHA:
        sha, sources["pipelineGitSha"] = settings.PIPELINE_GIT_SHA, "env PIPELINE_GIT_SHA"
    elif git:
        sha, sources["pipelineGitSha"] = git
    else:
        sha, sources["pipelineGitSha"] = "unavailable", "unavailable: PIPELINE_GIT_SHA unset and no git checkout"
    if settings.CONTAINER_IMAGE_DIGEST:
        image, sources["containerImageDigest"] = settings.CONTAINER_IMAGE_DIGEST, "env CONTAINER_IMAGE_DIGEST"
    else:
        image = "unavailable"
        sources["containerImageDigest"] = "unavailable: CONTAINER_IMAGE_DIGEST unset (not run from a built image)"
    sources["trainingEngine"] = engine
    return Provenance(data_snapshot_id=snapshot, pipeline_git_sha=sha, container_image_digest=image, sources=sources)


def _check_request(request: TrainingRequest) -> None:
    if request.algorithm not in TRAINING_ALGORITHMS:
        choices = ", ".join(TRAINING_ALGORITHMS)
        raise ApplicationError("invalid_algorithm", f"algorithm must be one of {choices}.", status=400)
    if request.promote not in PROMOTE_TARGETS:
        raise ApplicationError("invalid_promote", f"promote must be one of {', '.join(PROMOTE_TARGETS)}.", status=400)
    if request.engine not in ENGINES:
        raise ApplicationError("invalid_engine", f"engine must be one of {', '.join(ENGINES)}.", status=400)
    if request.engine == "spark" and request.algorithm not in SPARK_ALGORITHMS:
        raise ApplicationError(
            "invalid_algorithm", "the Spark engine fits ALS: use --algorithm als (or auto).", status=400
        )
    if request.test_days >= request.lookback_days:
        raise ApplicationError("invalid_window", "test days must be fewer than lookback days.", status=400)


def _read(start: datetime, end: datetime, progress: Progress | None) -> TrainingData:
    builder = InteractionsBuilder()
    for event in training_events_iter(start=start, end=end):
        builder.add(*event)
        if progress and len(builder) % PROGRESS_EVERY == 0:
            progress(len(builder))
    if progress:
        progress(len(builder))
    return builder.build()


def _read_pairs(span: "_Span", fixed: dict[str, Any], fraction: float, progress: Progress | None) -> Pairs:
    half_lives = half_lives_needed(fixed)
    builder = PairsBuilder(half_lives)
    for pair in training_pairs_iter(start=span.start, end=span.end, half_lives=half_lives, fraction=fraction):
        builder.add(pair)
        if progress and len(builder) % PROGRESS_EVERY == 0:
            progress(len(builder))
    if progress:
        progress(len(builder))
    return builder.build()


def _spark_outcome(search: SearchRequest, pairs: Pairs) -> tuple[TrainingOutcome, str]:
    """Search, judge and fit on Spark; returns the outcome and the engine's description for the provenance."""
    from recommendations.spark_engine import SparkEngine  # the trainer's alone: the web service never loads Spark

    with SparkEngine(master=settings.SPARK_MASTER, work_uri=settings.SPARK_WORK_URI) as engine:
        try:
            outcome, factors = train_and_evaluate_pairs(pairs, request=search, fit=engine.fit)
        except ValueError as exc:
            raise ApplicationError("training_failed", str(exc)) from exc
    about = factors.about
    outcome.metrics["engine"] = about
    return outcome, f"spark {about['sparkVersion']} (master {about['master']})"


def _publish(request: TrainingRequest, report: TrainingReport, outcome: TrainingOutcome) -> PublishedVersion:
    assert report.provenance is not None
    provenance = report.provenance

    def draft_for(version: str) -> VersionDraft:
        return VersionDraft(
            version=version,
            model_name=settings.MODEL_NAME,
            model=outcome.model,
            metrics=outcome.metrics,
            training_window=report.window,
            counts=outcome.counts,
            provenance=provenance,
            trained_at=timezone.now(),
        )

    return model_version_create(requested=request.requested_version, draft_for=draft_for)


def _gate_words(gate: dict[str, Any]) -> str:
    low, high = gate["interval"]
    return f"difference {gate['difference']}, 95% interval [{low}, {high}]"


class _Span(NamedTuple):
    start: datetime
    end: datetime
    cutoff: datetime


def _no_events(span: _Span) -> ApplicationError:
    return ApplicationError(
        "no_events", f"No interaction events between {span.start:%Y-%m-%d} and {span.end:%Y-%m-%d}."
    )


def _local_run(
    request: TrainingRequest,
    report: TrainingReport,
    search: SearchRequest,
    span: _Span,
    stage: Stage,
    progress: Progress | None,
) -> TrainingOutcome:
    """Every event of the window read into this process, then searched, judged and fitted here."""
    clock = time.monotonic()
    data = _read(span.start, span.end, progress)
    report.timings["read"] = round(time.monotonic() - clock, 3)
    events = len(data.interactions)
    if events == 0:
        raise _no_events(span)
    stage("read", f"{events} events, {len(data.interactions.user_ids)} users in {report.timings['read']}s")
    report.provenance = provenance_resolve(window=report.window, events=events, digest=data.events_digest)
    try:
        return train_and_evaluate(
            data.interactions,
            algorithm=request.algorithm,
            params=request.params,
            cutoff=int(span.cutoff.timestamp()),
            request=search,
        )
    except ValueError as exc:
        raise ApplicationError("training_failed", str(exc)) from exc


def _spark_run(
    request: TrainingRequest,
    report: TrainingReport,
    search: SearchRequest,
    span: _Span,
    stage: Stage,
    progress: Progress | None,
) -> TrainingOutcome:
    """The window summed per (rider, item) in the database, then searched, judged and fitted on Spark."""
    clock = time.monotonic()
    pairs = _read_pairs(span, request.params, search.holdout_fraction, progress)
    report.timings["read"] = round(time.monotonic() - clock, 3)
    if len(pairs) == 0:
        raise _no_events(span)
    if pairs.matrix().nnz == 0:
        raise ApplicationError(
            "no_interactions",
            f"The {pairs.events} events between {span.start:%Y-%m-%d} and {span.end:%Y-%m-%d} leave no interaction "
            "with a positive weight (skips only?): nothing to train on.",
        )
    stage(
        "read",
        f"{pairs.events} events in {len(pairs)} rider-item pairs, {len(pairs.user_ids)} users, summed by the "
        f"database in {report.timings['read']}s",
    )
    outcome, engine = _spark_outcome(search, pairs)
    report.provenance = provenance_resolve(
        window=report.window, events=pairs.events, digest=pairs.digest, engine=engine
    )
    return outcome


def training_run(request: TrainingRequest, *, stage: Stage, progress: Progress | None = None) -> TrainingReport:
    """Run one training; `stage(name, message)` is told as each stage ends. Raises ApplicationError on failure."""
    _check_request(request)
    end = request.now or timezone.now()
    start = end - timedelta(days=request.lookback_days)
    cutoff = end - timedelta(days=request.test_days)
    window = {
        "start": start.isoformat(),
        "end": end.isoformat(),
        "lookbackDays": request.lookback_days,
        "testDays": request.test_days,
        "cutoff": cutoff.isoformat(),
    }
    report = TrainingReport(algorithm=request.algorithm, window=window, dry_run=request.dry_run)
    search = SearchRequest(
        algorithm=request.algorithm,
        fixed=request.params,
        budget_seconds=settings.TRAINING_BUDGET_SECONDS if request.budget_seconds is None else request.budget_seconds,
        max_trials=request.max_trials or settings.TRAINING_MAX_TRIALS,
        seed=settings.TRAINING_SEED if request.seed is None else request.seed,
        holdout_fraction=settings.TRAINING_HOLDOUT_FRACTION,
        chronological_seconds=request.test_days * 86_400,
        margin=settings.TRAINING_GATE_MARGIN,
    )
    clock = time.monotonic()
    span = _Span(start, end, cutoff)
    run = _spark_run if request.engine == "spark" else _local_run
    outcome = run(request, report, search, span, stage, progress)
    report.timings["fit_and_evaluate"] = round(time.monotonic() - clock - report.timings["read"], 3)
    report.metrics, report.counts = outcome.metrics, outcome.counts
    report.algorithm = outcome.model.algorithm
    candidate, gate = outcome.metrics["candidate"], outcome.metrics["gate"]
    searched = outcome.metrics["search"]
    stage(
        "evaluate",
        f"{report.algorithm} chosen from {len(searched['trials'])} trial(s); NDCG@10 {candidate['ndcg@10']} vs "
        f"{gate['baseline']} {_gate_words(gate)} ({candidate['users']} users) in {report.timings['fit_and_evaluate']}s",
    )
    if request.require_better_than_baseline and not outcome.beats_baseline:
        raise ApplicationError(
            "quality_gate",
            f"{report.algorithm} is not better than {gate['baseline']} on NDCG@10 beyond its interval "
            f"({_gate_words(gate)}, margin {gate['margin']}); nothing published.",
            details={"candidate": candidate["ndcg@10"], **gate},
        )
    if request.dry_run:
        stage("publish", "skipped (dry run)")
        return report

    clock = time.monotonic()
    report.published = _publish(request, report, outcome)
    report.timings["publish"] = round(time.monotonic() - clock, 3)
    stage("publish", f"{report.published.version} at {report.published.artifact_uri} in {report.timings['publish']}s")
    if request.promote != "none":
        report.promoted = serving_state_switch(
            version=report.published.version,
            target=request.promote,
            actor=request.actor,
            reason=f"promoted by training run ({report.algorithm})",
        )
        stage(
            "promote", f"{report.published.version} now serves {request.promote} (revision {report.promoted.revision})"
        )
    return report

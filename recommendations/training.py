"""The training run behind `manage.py train`: read the window, fit and evaluate, gate, publish, register, promote.

The one place training is orchestrated; the fitting and evaluation themselves are pure (core.recommender).
"""

import hashlib
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.utils import timezone

from core.errors import ApplicationError
from core.recommender.algorithms import ALGORITHMS
from core.recommender.training import AUTO, SearchRequest, TrainingOutcome, train_and_evaluate
from core.recommender.training_data import InteractionsBuilder, TrainingData
from core.variants import VARIANTS
from recommendations.selectors import training_events_iter
from registry.services import Provenance, PublishedVersion, VersionDraft, model_version_create, serving_state_switch
from registry.state import ServingStateInfo

PROGRESS_EVERY = 50_000
PROMOTE_TARGETS = ("none", *VARIANTS)
TRAINING_ALGORITHMS = (*ALGORITHMS, AUTO)


@dataclass(frozen=True)
class TrainingRequest:
    lookback_days: int
    test_days: int
    algorithm: str
    params: dict[str, Any] = field(default_factory=dict)
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


def provenance_resolve(*, window: dict[str, Any], events: int, digest: str) -> Provenance:
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
    return Provenance(data_snapshot_id=snapshot, pipeline_git_sha=sha, container_image_digest=image, sources=sources)


def _check_request(request: TrainingRequest) -> None:
    if request.algorithm not in TRAINING_ALGORITHMS:
        choices = ", ".join(TRAINING_ALGORITHMS)
        raise ApplicationError("invalid_algorithm", f"algorithm must be one of {choices}.", status=400)
    if request.promote not in PROMOTE_TARGETS:
        raise ApplicationError("invalid_promote", f"promote must be one of {', '.join(PROMOTE_TARGETS)}.", status=400)
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
    clock = time.monotonic()
    data = _read(start, end, progress)
    report.timings["read"] = round(time.monotonic() - clock, 3)
    events = len(data.interactions)
    if events == 0:
        raise ApplicationError("no_events", f"No interaction events between {start:%Y-%m-%d} and {end:%Y-%m-%d}.")
    stage("read", f"{events} events, {len(data.interactions.user_ids)} users in {report.timings['read']}s")
    report.provenance = provenance_resolve(window=window, events=events, digest=data.events_digest)

    clock = time.monotonic()
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
    try:
        outcome = train_and_evaluate(
            data.interactions,
            algorithm=request.algorithm,
            params=request.params,
            cutoff=int(cutoff.timestamp()),
            request=search,
        )
    except ValueError as exc:
        raise ApplicationError("training_failed", str(exc)) from exc
    report.timings["fit_and_evaluate"] = round(time.monotonic() - clock, 3)
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

"""manage.py train: stages, summary, exit codes, dry runs, the quality gate and promotion."""

import json
import os
import re
import subprocess
import sys
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import override_settings

from registry.models import ModelVersion, ServingState, ServingStateChange
from rideease.embedded_db import free_port
from tests.servers import BASE_DIR

pytestmark = pytest.mark.django_db


@pytest.fixture
def demo_events() -> None:
    args = ["--users", "300", "--items", "60", "--days", "20", "--events", "8000", "--seed", "11"]
    call_command("seed_demo", *args, stdout=StringIO(), stderr=StringIO())


@pytest.fixture
def registry_dir(tmp_path: Path) -> Path:
    path = tmp_path / "registry"
    with override_settings(MODEL_REGISTRY_URI=str(path), MODEL_CACHE_DIR=tmp_path / "cache"):
        yield path


def train(*args: str) -> tuple[str, str]:
    out, err = StringIO(), StringIO()
    call_command("train", *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def test_train_publishes_a_version_that_beats_popularity(demo_events: None, registry_dir: Path) -> None:
    out, err = train("--lookback-days", "20", "--require-better-than-baseline")
    for stage in ("[read]", "[evaluate]", "[publish]"):
        assert stage in err
    assert out.startswith(f"published v1.0.0 to file://{registry_dir}/v1.0.0; itemknn NDCG@10")
    record = ModelVersion.objects.get()
    assert record.metrics["candidate"]["ndcg@10"] > record.metrics["baseline"]["ndcg@10"]
    assert set(record.metrics["candidate"]["segments"]) == {"cold", "light", "heavy"}
    assert record.counts["events"] == 8000
    assert record.data_snapshot_id.startswith("snap-")
    assert record.provenance_sources["containerImageDigest"].startswith("unavailable")
    metadata = json.loads((registry_dir / "v1.0.0" / "metadata.json").read_text())
    assert metadata["dataSnapshotId"] == record.data_snapshot_id
    assert metadata["counts"]["users"] == record.counts["users"]


def test_a_second_run_bumps_the_minor_version_and_json_reports_it(demo_events: None, registry_dir: Path) -> None:
    train("--lookback-days", "20")
    report = json.loads(train("--lookback-days", "20", "--algorithm", "svd", "--json")[0])
    assert report["version"] == "v1.1.0"
    assert report["algorithm"] == "svd"
    assert report["metrics"]["baseline"]["ndcg@10"] is not None
    assert set(report["timings"]) == {"read", "fit_and_evaluate", "publish"}


def test_environment_provenance_and_explicit_version_are_used(demo_events: None, registry_dir: Path) -> None:
    with override_settings(PIPELINE_GIT_SHA="deadbeef", CONTAINER_IMAGE_DIGEST="sha256:abc", DATA_SNAPSHOT_ID="snap-x"):
        train("--lookback-days", "20", "--model-version", "v3.1.4")
    record = ModelVersion.objects.get(version="v3.1.4")
    assert (record.pipeline_git_sha, record.container_image_digest, record.data_snapshot_id) == (
        "deadbeef",
        "sha256:abc",
        "snap-x",
    )
    assert record.provenance_sources == {
        "dataSnapshotId": "env DATA_SNAPSHOT_ID",
        "pipelineGitSha": "env PIPELINE_GIT_SHA",
        "containerImageDigest": "env CONTAINER_IMAGE_DIGEST",
        "trainingEngine": "local (numpy, scipy, scikit-learn, implicit)",
    }


def test_dry_run_publishes_nothing(demo_events: None, registry_dir: Path) -> None:
    out, err = train("--lookback-days", "20", "--dry-run")
    assert "dry run: nothing published" in out
    assert "[publish] skipped (dry run)" in err
    assert not ModelVersion.objects.exists()
    assert not registry_dir.exists()


def test_the_quality_gate_refuses_a_model_that_does_not_beat_popularity(demo_events: None, registry_dir: Path) -> None:
    # A broken model: every event weighs nothing, so it learns nothing and ranks by its popularity fill alone.
    broken = ["--algorithm", "itemknn", "--param", 'weights={"view": 0, "play": 0, "book": 0, "skip": 0}']
    with pytest.raises(CommandError) as refused:
        train("--lookback-days", "20", *broken, "--require-better-than-baseline")
    message = str(refused.value)
    assert message.startswith("training failed (quality_gate): itemknn is not better than popularity")
    figures = re.search(r"difference (-?[\d.]+), 95% interval \[(-?[\d.]+), (-?[\d.]+)\], margin 0.0", message)
    assert figures is not None, message
    difference, low, high = map(float, figures.groups())
    assert low <= difference <= high and low <= 0.0
    assert not ModelVersion.objects.exists()
    # Popularity itself is no better than popularity either.
    with pytest.raises(CommandError, match=r"popularity is not better than popularity on NDCG@10 beyond its interval"):
        train("--lookback-days", "20", "--algorithm", "popularity", "--require-better-than-baseline")


def test_no_events_is_a_clear_failure(registry_dir: Path) -> None:
    with pytest.raises(CommandError, match=r"training failed \(no_events\)"):
        train()


def test_an_unusable_registry_uri_is_a_clear_failure(demo_events: None) -> None:
    with (
        override_settings(MODEL_REGISTRY_URI="ftp://example.com/models"),
        pytest.raises(CommandError, match=r"training failed \(storage_unavailable\)"),
    ):
        train("--lookback-days", "20")
    assert not ModelVersion.objects.exists()


def test_promote_serves_the_new_version_and_records_the_change(demo_events: None, registry_dir: Path) -> None:
    _, err = train("--lookback-days", "20", "--promote", "control")
    assert "[promote] v1.0.0 now serves control (revision 1)" in err
    train("--lookback-days", "20", "--algorithm", "svd", "--promote", "treatment")
    state = ServingState.objects.get()
    assert (state.control_version, state.treatment_version, state.revision) == ("v1.0.0", "v1.1.0", 2)
    change = ServingStateChange.objects.get(revision=2)
    assert change.before["treatment"] is None and change.after["treatment"] == "v1.1.0"
    assert change.actor == "manage.py train"


def test_bad_arguments_are_refused() -> None:
    with pytest.raises(CommandError, match="--param expects NAME=VALUE"):
        train("--param", "neighbors")
    with pytest.raises(CommandError, match="invalid_window"):
        train("--lookback-days", "3", "--test-days", "3")


def test_with_the_database_down_train_exits_1_with_a_message() -> None:
    env = {
        **os.environ,
        "MONGODB_URI": f"mongodb://127.0.0.1:{free_port()}/",
        "MONGODB_TIMEOUT_MS": "300",
    }
    result = subprocess.run(
        [sys.executable, "manage.py", "train"], cwd=BASE_DIR, env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 1
    assert "training failed (database_unavailable)" in result.stderr
    assert "Traceback" not in result.stderr

"""What a worker keeps: the serving state on disk, for starting while the database is unreachable, and its models."""

from pathlib import Path

import pytest
from django.test import override_settings
from pymongo.errors import ServerSelectionTimeoutError

from core.recommender.algorithms import recommender_fit
from core.recommender.interactions import interactions_from_records
from core.recommender.prepared import PrecomputedRankings
from recommendations import runtime
from registry.loading import LoadedModel
from registry.state import ServingStateInfo

FIRST = ServingStateInfo(revision=1, control_version="v1", treatment_version=None, treatment_share=0.5)
SECOND = ServingStateInfo(revision=2, control_version="v1", treatment_version="v2", treatment_share=0.1)


def test_the_state_is_saved_when_it_changes_and_used_while_the_database_is_down(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    database: list[ServingStateInfo | None] = [FIRST]

    def serving_state_current() -> ServingStateInfo | None:
        if database[0] is None:
            raise ServerSelectionTimeoutError("database unreachable")
        return database[0]

    monkeypatch.setattr(runtime, "serving_state_current", serving_state_current)
    monkeypatch.setattr(runtime, "_on_cached_state", False)
    monkeypatch.setattr(runtime, "_last_saved", None)
    with override_settings(MODEL_CACHE_DIR=tmp_path):
        saved = tmp_path / runtime.STATE_FILE
        assert runtime._read_state() == FIRST
        written = saved.stat().st_ino  # each write replaces the file, so a new one means it was written again
        assert runtime._read_state() == FIRST
        assert saved.stat().st_ino == written, "an unchanged state is not written again on every poll"

        database[0] = SECOND
        assert runtime._read_state() == SECOND
        database[0] = None
        assert runtime._read_state() == SECOND, "while the database is down, the last state seen serves"


def test_a_state_that_cannot_be_saved_is_served_all_the_same(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(runtime, "serving_state_current", lambda: FIRST)
    monkeypatch.setattr(runtime, "_last_saved", None)
    not_a_folder = tmp_path / "cache"
    not_a_folder.write_text("a file where the cache folder should be")
    with override_settings(MODEL_CACHE_DIR=not_a_folder):
        assert runtime._read_state() == FIRST


@pytest.mark.parametrize(("megabytes", "prepared"), [(32, True), (0, False)])
def test_a_loaded_model_serves_prepared_rankings_within_the_memory_setting(
    megabytes: int, prepared: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    records = [(f"rider-{n % 7}", f"item-{n % 11}", "view", n) for n in range(60)]
    model = recommender_fit("svd", interactions_from_records(records), {"factors": 3})
    loaded = LoadedModel("v1", model, "sha", "snapshot", "git", "digest")
    monkeypatch.setattr(runtime, "model_version_load", lambda *, version: loaded)
    with override_settings(RANKINGS_PRECOMPUTE_BYTES=megabytes * 1024 * 1024):
        served = runtime._load_model("v1")
    assert isinstance(served.model, PrecomputedRankings) is prepared
    assert (served.version, served.artifact_sha256, served.data_snapshot_id) == ("v1", "sha", "snapshot")
    for rider in ("rider-3", "a new rider"):
        assert served.model.recommend(rider, 5) == model.recommend(rider, 5)

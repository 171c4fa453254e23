"""Publishing and loading model versions: safe publication, version numbers, verified loads."""

import shutil
import threading
import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest
from django.db import IntegrityError, connections
from django.test import override_settings

from core.artifacts import METADATA_FILE, sha256_hex
from core.errors import ApplicationError
from core.recommender.algorithms import ItemKNNModel
from core.recommender.interactions import interactions_from_records
from registry.loading import model_version_load, model_version_load_cached
from registry.models import ModelVersion, ServingStateChange, VersionReservation
from registry.services import (
    Provenance,
    VersionDraft,
    model_version_publish,
    model_version_release,
    model_version_reserve,
)
from registry.storage import ArtifactStore, ArtifactStoreError, artifact_store_from_uri
from registry.versions import version_key
from tests.registry.conftest import GCS_BUCKET
from tests.s3_server import S3_BUCKET

pytestmark = pytest.mark.django_db
RECORDS = [
    ("a", "x", "book", 1),
    ("a", "y", "view", 2),
    ("b", "x", "book", 3),
    ("b", "y", "book", 4),
    ("c", "z", "view", 5),
]
MODEL = ItemKNNModel.fit(interactions_from_records(RECORDS))
PROVENANCE = Provenance("snap-1", "abc123", "sha256:feed", {"dataSnapshotId": "test"})


def draft(version: str) -> VersionDraft:
    return VersionDraft(
        version=version,
        model_name="rec-engine",
        model=MODEL,
        metrics={"candidate": {"ndcg@10": 0.5}},
        training_window={"start": "2026-10-01T00:00:00+00:00", "end": "2026-10-31T00:00:00+00:00"},
        counts={"events": len(RECORDS)},
        provenance=PROVENANCE,
        trained_at=datetime(2026, 11, 1, tzinfo=UTC),
    )


def register(version: str) -> None:
    ModelVersion.objects.create(
        model_name="rec-engine",
        version=version,
        version_key=version_key(version),
        algorithm="itemknn",
        data_snapshot_id="s",
        pipeline_git_sha="g",
        container_image_digest="d",
        artifact_uri="file:///nowhere",
        trained_at=datetime(2026, 11, 1, tzinfo=UTC),
        created_at=datetime(2026, 11, 1, tzinfo=UTC),
    )


def test_the_first_version_is_v1_0_0_and_the_next_a_minor_bump_of_the_highest() -> None:
    assert model_version_reserve() == "v1.0.0"
    register("v1.9.0")
    register("v1.10.0")
    # the reservation of v1.0.0 is still held, and v1.10.0 is higher than v1.9.0 numerically
    assert model_version_reserve() == "v1.11.0"
    assert model_version_reserve() == "v1.12.0"


def test_an_explicit_version_is_validated_and_refused_when_taken() -> None:
    register("v2.0.0")
    with pytest.raises(ApplicationError) as invalid:
        model_version_reserve(requested="2.1")
    assert invalid.value.code == "invalid_version"
    with pytest.raises(ApplicationError) as taken:
        model_version_reserve(requested="v2.0.0")
    assert (taken.value.code, taken.value.status) == ("version_exists", 409)
    assert model_version_reserve(requested="v2.1.0") == "v2.1.0"
    with pytest.raises(ApplicationError, match="being published"):
        model_version_reserve(requested="v2.1.0")


def test_concurrent_trainers_never_get_the_same_version() -> None:
    results: list[str] = []
    barrier = threading.Barrier(6)

    def reserve() -> None:
        barrier.wait()
        try:
            results.append(model_version_reserve())
        finally:
            connections.close_all()

    threads = [threading.Thread(target=reserve) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(results, key=version_key) == [f"v1.{minor}.0" for minor in range(6)]


def test_publish_writes_verified_files_then_registers_and_loads_back(tmp_path: Path) -> None:
    store = artifact_store_from_uri(str(tmp_path / "registry"))
    published = model_version_publish(store=store, draft=draft("v1.0.0"))
    files = sorted(path.name for path in (tmp_path / "registry" / "v1.0.0").iterdir())
    assert files == ["arrays.npz", "metadata.json", "model.json"]
    for name in files:
        assert sha256_hex((tmp_path / "registry" / "v1.0.0" / name).read_bytes()) == published.artifact_sha256[name]
    record = ModelVersion.objects.get(version="v1.0.0")
    assert record.status == "ready"
    assert record.artifact_uri == f"file://{tmp_path}/registry/v1.0.0"
    assert published.metadata["artifactSha256"].keys() == {"model.json", "arrays.npz"}
    assert published.metadata["provenanceSources"] == {"dataSnapshotId": "test"}
    loaded = model_version_load(version="v1.0.0", cache_dir=tmp_path / "cache")
    assert loaded.model.recommend("a", 3) == MODEL.recommend("a", 3)
    assert loaded.artifact_sha256 == published.artifact_sha256[METADATA_FILE]
    assert (tmp_path / "cache" / "v1.0.0" / "arrays.npz").exists()


class FailingStore:
    """A real local store that fails on one file, as a full disk or a revoked credential would."""

    def __init__(self, inner: ArtifactStore, fail_on: str) -> None:
        self.inner, self.fail_on, self.uri = inner, fail_on, inner.uri

    def __getattr__(self, name: str) -> object:
        return getattr(self.inner, name)

    def put_bytes(self, key: str, data: bytes) -> str:
        if key.endswith(self.fail_on):
            raise ArtifactStoreError(f"{self.uri}/{key}: no space left on device")
        return self.inner.put_bytes(key, data)


def test_a_failure_mid_publish_leaves_nothing_registered_and_no_files(tmp_path: Path) -> None:
    store = FailingStore(artifact_store_from_uri(str(tmp_path / "registry")), fail_on=METADATA_FILE)
    with pytest.raises(ApplicationError) as failure:
        model_version_publish(store=store, draft=draft("v1.0.0"))  # type: ignore[arg-type]
    assert failure.value.code == "publish_failed"
    assert failure.value.details == {"version": "v1.0.0", "stage": "upload"}
    assert "no space left on device" in failure.value.message
    assert not ModelVersion.objects.exists()
    assert store.inner.list_keys("") == []


def test_a_failure_while_registering_removes_the_uploaded_files(tmp_path: Path) -> None:
    register("v1.0.0")  # a record appears under this version meanwhile: the unique index refuses ours
    store = artifact_store_from_uri(str(tmp_path / "registry"))
    with pytest.raises(ApplicationError) as failure:
        model_version_publish(store=store, draft=draft("v1.0.0"))
    assert failure.value.details["stage"] == "register"
    assert store.list_keys("") == []


def test_a_released_reservation_frees_the_number() -> None:
    version = model_version_reserve()
    model_version_release(version=version)
    assert not VersionReservation.objects.exists()
    assert model_version_reserve() == version


@pytest.mark.parametrize("damage", ["flip", "truncate"])
def test_a_tampered_or_truncated_artifact_is_refused(tmp_path: Path, damage: str) -> None:
    store = artifact_store_from_uri(str(tmp_path / "registry"))
    model_version_publish(store=store, draft=draft("v1.0.0"))
    path = tmp_path / "registry" / "v1.0.0" / "arrays.npz"
    data = path.read_bytes()
    path.write_bytes(data[:-10] + bytes([data[-10] ^ 1]) + data[-9:] if damage == "flip" else data[: len(data) // 2])
    with pytest.raises(ApplicationError) as refused:
        model_version_load(version="v1.0.0", cache_dir=tmp_path / "cache")
    assert refused.value.code == "artifact_corrupt"
    assert refused.value.details["file"] == "arrays.npz"
    assert not (tmp_path / "cache" / "v1.0.0" / "arrays.npz").exists()


def test_a_tampered_cache_is_replaced_from_the_store(tmp_path: Path) -> None:
    store = artifact_store_from_uri(str(tmp_path / "registry"))
    model_version_publish(store=store, draft=draft("v1.0.0"))
    model_version_load(version="v1.0.0", cache_dir=tmp_path / "cache")
    (tmp_path / "cache" / "v1.0.0" / "model.json").write_text("{}")
    loaded = model_version_load(version="v1.0.0", cache_dir=tmp_path / "cache")
    assert loaded.model.recommend("a", 1) == MODEL.recommend("a", 1)


def test_loading_an_unknown_version_is_a_404() -> None:
    with pytest.raises(ApplicationError) as missing:
        model_version_load(version="v9.9.9")
    assert (missing.value.code, missing.value.status) == ("version_not_found", 404)


@pytest.mark.parametrize("scheme", ["s3", "gs"])
def test_publish_to_object_storage_then_load_with_verification(
    request: pytest.FixtureRequest, tmp_path: Path, scheme: str
) -> None:
    if scheme == "s3":
        endpoint: str | None = request.getfixturevalue("s3_endpoint")
        request.getfixturevalue("aws_env")
        root = f"s3://{S3_BUCKET}/publish-{uuid.uuid4().hex}"
    else:
        request.getfixturevalue("gcs_env")
        endpoint = None
        root = f"gs://{GCS_BUCKET}/publish-{uuid.uuid4().hex}"
    store = artifact_store_from_uri(root, s3_endpoint_url=endpoint)
    published = model_version_publish(store=store, draft=draft("v1.0.0"))
    assert published.artifact_uri == f"{root}/v1.0.0"
    assert store.list_keys("v1.0.0") == ["v1.0.0/arrays.npz", "v1.0.0/metadata.json", "v1.0.0/model.json"]
    with override_settings(MODEL_REGISTRY_S3_ENDPOINT_URL=endpoint):
        loaded = model_version_load(version="v1.0.0", cache_dir=tmp_path / "cache")
        assert loaded.model.recommend("b", 3) == MODEL.recommend("b", 3)
        # Tamper with the stored copy and drop the cache: the next load must refuse it.
        store.put_bytes("v1.0.0/model.json", b'{"format": "rideease-recommender"}')
        shutil.rmtree(tmp_path / "cache")
        with pytest.raises(ApplicationError) as refused:
            model_version_load(version="v1.0.0", cache_dir=tmp_path / "cache")
    assert refused.value.code == "artifact_corrupt"


def test_the_history_refuses_two_records_with_the_same_revision() -> None:
    now = datetime(2026, 11, 1, tzinfo=UTC)
    ServingStateChange.objects.create(revision=1, changed_at=now, actor="a", action="switch", target="control")
    with pytest.raises(IntegrityError):
        ServingStateChange.objects.create(revision=1, changed_at=now, actor="b", action="switch", target="control")
    assert ServingStateChange.objects.count() == 1


def test_a_version_loaded_once_can_be_loaded_from_the_cache_alone(tmp_path: Path) -> None:
    store = artifact_store_from_uri(str(tmp_path / "registry"))
    model_version_publish(store=store, draft=draft("v1.0.0"))
    online = model_version_load(version="v1.0.0", cache_dir=tmp_path / "cache")
    shutil.rmtree(tmp_path / "registry")
    offline = model_version_load_cached(version="v1.0.0", cache_dir=tmp_path / "cache")
    assert offline.model.recommend("a", 3) == online.model.recommend("a", 3)
    assert offline.artifact_sha256 == online.artifact_sha256
    (tmp_path / "cache" / "v1.0.0" / "arrays.npz").write_bytes(b"tampered")
    with pytest.raises(ApplicationError, match="fails its sha256 check"):
        model_version_load_cached(version="v1.0.0", cache_dir=tmp_path / "cache")
    with pytest.raises(ApplicationError, match="not in the local cache"):
        model_version_load_cached(version="v9.0.0", cache_dir=tmp_path / "cache")

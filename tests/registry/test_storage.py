"""The artifact store behaves the same on a local folder, S3 (moto's server) and GCS (an emulator), all on loopback."""

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from registry.storage import (
    ArtifactStore,
    ArtifactStoreError,
    GcsArtifactStore,
    S3ArtifactStore,
    artifact_store_from_uri,
)
from tests.registry.conftest import GCS_BUCKET, emulator_client
from tests.s3_server import FAKE_AWS_SECRET, S3_BUCKET

ALL_BYTES = bytes(range(256)) * 4
TRAVERSAL_KEYS = ["", "/etc/passwd", "../outside", "v1/../../outside", "v1/..", "a\\b", "v1//model.json", "v1/", "./a"]
TRAVERSAL_PREFIXES = ["/", "../", "..", "v1/../..", "a//b", "/etc", "a\\b"]


@dataclass(frozen=True)
class Backend:
    store: ArtifactStore
    root_uri: str


def unique_prefix() -> str:
    return f"runs/{uuid.uuid4().hex}"


@pytest.fixture(params=["local", "s3", "gs"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    """The same store behaviours on each backend; object stores get a fresh prefix in a shared bucket per test."""
    if request.param == "local":
        root = tmp_path / "artifacts"
        return Backend(artifact_store_from_uri(str(root)), root.resolve().as_uri())
    if request.param == "s3":
        endpoint = request.getfixturevalue("s3_endpoint")
        request.getfixturevalue("aws_env")
        root_uri = f"s3://{S3_BUCKET}/{unique_prefix()}"
        return Backend(artifact_store_from_uri(root_uri, s3_endpoint_url=endpoint), root_uri)
    request.getfixturevalue("gcs_env")
    root_uri = f"gs://{GCS_BUCKET}/{unique_prefix()}"
    return Backend(artifact_store_from_uri(root_uri), root_uri)


def put_all(store: ArtifactStore, keys: list[str]) -> None:
    for key in keys:
        store.put_bytes(key, key.encode())


def test_binary_data_round_trips_unchanged(backend: Backend) -> None:
    uri = backend.store.put_bytes("v1.3.0/arrays.npz", ALL_BYTES)

    assert uri == f"{backend.root_uri}/v1.3.0/arrays.npz"
    assert backend.store.get_bytes("v1.3.0/arrays.npz") == ALL_BYTES


def test_writing_again_replaces_the_object(backend: Backend) -> None:
    backend.store.put_bytes("v1/model.json", b"first")
    backend.store.put_bytes("v1/model.json", b"second")

    assert backend.store.get_bytes("v1/model.json") == b"second"
    assert backend.store.list_keys("v1") == ["v1/model.json"]


def test_empty_objects_are_stored(backend: Backend) -> None:
    backend.store.put_bytes("v1/empty", b"")

    assert backend.store.exists("v1/empty")
    assert backend.store.get_bytes("v1/empty") == b""


def test_exists_tells_stored_keys_from_missing_ones(backend: Backend) -> None:
    backend.store.put_bytes("v1/model.json", b"{}")

    assert backend.store.exists("v1/model.json")
    assert not backend.store.exists("v1/metadata.json")
    assert not backend.store.exists("v1")  # a folder is not an object


def test_list_keys_gives_sorted_keys_relative_to_the_root_under_a_folder(backend: Backend) -> None:
    put_all(backend.store, ["v2/model.json", "v1/model.json", "v1/arrays/b.npy", "v1/arrays/a.npy", "v10/model.json"])

    assert backend.store.list_keys("v1") == ["v1/arrays/a.npy", "v1/arrays/b.npy", "v1/model.json"]
    assert backend.store.list_keys("v1/") == backend.store.list_keys("v1")
    assert backend.store.list_keys("v1/arrays") == ["v1/arrays/a.npy", "v1/arrays/b.npy"]
    assert backend.store.list_keys("") == [
        "v1/arrays/a.npy",
        "v1/arrays/b.npy",
        "v1/model.json",
        "v10/model.json",
        "v2/model.json",
    ]
    assert backend.store.list_keys("v3") == []


def test_delete_prefix_removes_exactly_that_folder_and_counts_it(backend: Backend) -> None:
    put_all(backend.store, ["v1/model.json", "v1/arrays/a.npy", "v10/model.json", "v2/model.json"])

    assert backend.store.delete_prefix("v1") == 2

    assert backend.store.list_keys("") == ["v10/model.json", "v2/model.json"]
    assert not backend.store.exists("v1/model.json")
    assert backend.store.delete_prefix("v1") == 0


def test_reading_a_missing_key_says_not_found_with_its_uri(backend: Backend) -> None:
    with pytest.raises(ArtifactStoreError, match="not found") as caught:
        backend.store.get_bytes("v9/model.json")

    assert f"{backend.root_uri}/v9/model.json" in str(caught.value)


def test_keys_that_could_escape_the_root_are_refused(backend: Backend) -> None:
    for key in TRAVERSAL_KEYS:
        with pytest.raises(ArtifactStoreError, match="refused"):
            backend.store.put_bytes(key, b"x")
        with pytest.raises(ArtifactStoreError, match="refused"):
            backend.store.get_bytes(key)
        with pytest.raises(ArtifactStoreError, match="refused"):
            backend.store.exists(key)
        with pytest.raises(ArtifactStoreError, match="refused"):
            backend.store.uri_for(key)
    assert backend.store.list_keys("") == []


def test_prefixes_that_could_escape_the_root_are_refused(backend: Backend) -> None:
    for prefix in TRAVERSAL_PREFIXES:
        with pytest.raises(ArtifactStoreError, match="refused"):
            backend.store.list_keys(prefix)
        with pytest.raises(ArtifactStoreError, match="refused"):
            backend.store.delete_prefix(prefix)


def test_uri_for_names_the_object_under_the_root_with_the_backend_scheme(backend: Backend) -> None:
    scheme = backend.root_uri.split("://")[0]

    assert backend.store.uri == backend.root_uri
    assert backend.store.uri_for("v1.3.0/model.json") == f"{backend.root_uri}/v1.3.0/model.json"
    assert backend.store.uri_for("v1.3.0/model.json").startswith(f"{scheme}://")


@pytest.mark.parametrize(
    "uri", ["ftp://example.com/models", "gcs://bucket/models", "https://user:hunter2@example.com/models"]
)
def test_unknown_schemes_are_refused_naming_the_supported_ones(uri: str) -> None:
    with pytest.raises(ArtifactStoreError) as caught:
        artifact_store_from_uri(uri)

    message = str(caught.value)
    assert all(scheme in message for scheme in ("file://", "s3://", "gs://"))
    assert "hunter2" not in message


@pytest.mark.parametrize("uri", ["s3://user:hunter2@bucket/models", "gs://user:hunter2@bucket/models"])
def test_bucket_uris_with_credentials_are_refused_without_echoing_them(uri: str) -> None:
    with pytest.raises(ArtifactStoreError) as caught:
        artifact_store_from_uri(uri)

    assert "hunter2" not in str(caught.value)


@pytest.mark.parametrize(
    "uri", ["s3://bucket/models/../other", "gs://bucket//models", "file://server/share", "file:relative/path", "s3://"]
)
def test_root_uris_that_are_ambiguous_or_escape_are_refused(uri: str) -> None:
    with pytest.raises(ArtifactStoreError):
        artifact_store_from_uri(uri)


def test_a_file_uri_stores_files_at_that_path(tmp_path: Path) -> None:
    root = tmp_path / "file store"
    store = artifact_store_from_uri(root.as_uri())

    uri = store.put_bytes("v1/model.json", b"{}")

    assert (root / "v1" / "model.json").read_bytes() == b"{}"
    assert uri == (root / "v1" / "model.json").as_uri()
    assert store.uri == root.as_uri()
    assert artifact_store_from_uri(f"file:{root}").get_bytes("v1/model.json") == b"{}"


def test_a_relative_path_is_resolved_against_base_dir_or_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = artifact_store_from_uri("var/models", base_dir=tmp_path)
    store.put_bytes("v1/model.json", b"{}")
    assert (tmp_path / "var" / "models" / "v1" / "model.json").read_bytes() == b"{}"

    monkeypatch.chdir(tmp_path / "var")
    assert artifact_store_from_uri("models").get_bytes("v1/model.json") == b"{}"


def test_a_local_write_leaves_no_partial_file_even_when_it_fails(tmp_path: Path) -> None:
    store = artifact_store_from_uri(str(tmp_path))
    store.put_bytes("v1/model.json", b"{}")

    with pytest.raises(ArtifactStoreError, match="cannot write"):
        store.put_bytes("v1", b"a folder is in the way")

    assert sorted(path.name for path in tmp_path.rglob("*")) == ["model.json", "v1"]


def test_a_local_delete_removes_the_emptied_folders_but_keeps_the_root(tmp_path: Path) -> None:
    store = artifact_store_from_uri(str(tmp_path / "root"))
    store.put_bytes("v1/arrays/a.npy", b"a")

    assert store.delete_prefix("") == 1

    assert list((tmp_path / "root").iterdir()) == []


def test_a_local_listing_skips_partial_files_left_by_a_crash(tmp_path: Path) -> None:
    store = artifact_store_from_uri(str(tmp_path))
    store.put_bytes("v1/model.json", b"{}")
    (tmp_path / "v1" / ".partial-arrays.npz.0123456789abcdef").write_bytes(b"half")

    assert store.list_keys("v1") == ["v1/model.json"]
    assert store.delete_prefix("v1") == 1
    assert not (tmp_path / "v1").exists()


@pytest.mark.usefixtures("aws_env")
def test_s3_listing_and_deletion_follow_every_page(s3_endpoint: str) -> None:
    store = S3ArtifactStore(f"s3://{S3_BUCKET}/{unique_prefix()}", endpoint_url=s3_endpoint, page_size=2)
    keys = [f"v1/part-{index}" for index in range(5)]
    put_all(store, keys)

    assert store.list_keys("v1") == keys
    assert store.delete_prefix("v1") == 5
    assert store.list_keys("") == []


@pytest.mark.usefixtures("aws_env")
def test_s3_with_a_missing_bucket_raises_a_store_error(s3_endpoint: str) -> None:
    store = artifact_store_from_uri("s3://no-such-bucket/models", s3_endpoint_url=s3_endpoint)

    operations: list[Callable[[], object]] = [
        lambda: store.put_bytes("v1/model.json", b"{}"),
        lambda: store.get_bytes("v1/model.json"),
        lambda: store.list_keys("v1"),
        lambda: store.delete_prefix("v1"),
    ]
    for operation in operations:
        with pytest.raises(ArtifactStoreError, match="no-such-bucket") as caught:
            operation()
        assert "does not exist" in str(caught.value)
        assert FAKE_AWS_SECRET not in str(caught.value)


@pytest.mark.usefixtures("gcs_env")
def test_gcs_with_a_missing_bucket_raises_a_store_error() -> None:
    store = GcsArtifactStore("gs://no-such-bucket/models")

    with pytest.raises(ArtifactStoreError, match="gs://no-such-bucket/models/v1/model.json"):
        store.put_bytes("v1/model.json", b"{}")
    with pytest.raises(ArtifactStoreError, match="not found"):
        store.list_keys("v1")


@pytest.mark.usefixtures("gcs_env")
def test_gcs_writes_to_the_emulator_named_by_storage_emulator_host(gcs_endpoint: str) -> None:
    prefix = unique_prefix()
    store = artifact_store_from_uri(f"gs://{GCS_BUCKET}/{prefix}")

    store.put_bytes("v1/model.json", b"{}")

    blob = emulator_client(gcs_endpoint).bucket(GCS_BUCKET).blob(f"{prefix}/v1/model.json")
    assert blob.download_as_bytes() == b"{}"

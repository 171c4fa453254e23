"""Loading a registered version for serving: download to a local cache, verify every sha256, rebuild the model."""

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from django.conf import settings

from core.artifacts import ARRAYS_FILE, METADATA_FILE, MODEL_FILE, ArtifactFormatError, model_files_load, sha256_hex
from core.errors import ApplicationError
from core.files import write_atomically
from core.recommender.algorithms import Recommender
from registry.models import ModelStatus, ModelVersion
from registry.storage import ArtifactStore, ArtifactStoreError, artifact_store_from_uri

ARTIFACT_FILES = (MODEL_FILE, ARRAYS_FILE, METADATA_FILE)


@dataclass(frozen=True)
class LoadedModel:
    """A verified, ready-to-score model version."""

    version: str
    model: Recommender
    # sha256 of metadata.json, which itself lists the sha256 of every other file: one value pins the whole version.
    artifact_sha256: str
    data_snapshot_id: str
    pipeline_git_sha: str
    container_image_digest: str


def _fetch_verified(store: ArtifactStore, cache: Path, name: str, expected: str, version: str) -> bytes:
    cached = cache / name
    if cached.exists():
        data = cached.read_bytes()
        if sha256_hex(data) == expected:
            return data
    try:
        data = store.get_bytes(name)
    except ArtifactStoreError as exc:
        raise ApplicationError("artifact_unavailable", f"{version}/{name}: {exc}", status=409) from exc
    actual = sha256_hex(data)
    if actual != expected:
        raise ApplicationError(
            "artifact_corrupt",
            f"{version}/{name} does not match its registered sha256; refusing to load it.",
            status=409,
            details={"version": version, "file": name, "expected": expected, "actual": actual},
        )
    write_atomically(cached, data)
    return data


def model_version_load(*, version: str, cache_dir: Path | None = None) -> LoadedModel:
    """Load a ready version, verifying every artifact file against the sha256 registered with it."""
    record = ModelVersion.objects.filter(version=version).first()
    if record is None:
        raise ApplicationError("version_not_found", f"Version {version} is not registered.", status=404)
    if record.status != ModelStatus.READY:
        raise ApplicationError("version_not_ready", f"Version {version} is {record.status}.", status=409)
    missing = [name for name in ARTIFACT_FILES if name not in record.artifact_sha256]
    if missing:
        raise ApplicationError("artifact_corrupt", f"{version} has no registered sha256 for {missing}.", status=409)
    store = artifact_store_from_uri(record.artifact_uri, s3_endpoint_url=settings.MODEL_REGISTRY_S3_ENDPOINT_URL)
    cache = (cache_dir or Path(settings.MODEL_CACHE_DIR)) / version
    files = {
        name: _fetch_verified(store, cache, name, record.artifact_sha256[name], version) for name in ARTIFACT_FILES
    }
    facts = {
        "artifactSha256": record.artifact_sha256,
        "dataSnapshotId": record.data_snapshot_id,
        "pipelineGitSha": record.pipeline_git_sha,
        "containerImageDigest": record.container_image_digest,
    }
    # What the registry said about this version, so a worker can start from the cache while the database is down.
    write_atomically(cache / RECORD_FILE, json.dumps(facts, sort_keys=True).encode())
    return _build(version, files, facts)


RECORD_FILE = "record.json"


def _build(version: str, files: dict[str, bytes], facts: dict[str, Any]) -> LoadedModel:
    try:
        model = model_files_load(files[MODEL_FILE], files[ARRAYS_FILE])
    except ArtifactFormatError as exc:
        raise ApplicationError("artifact_corrupt", f"{version}: {exc}", status=409) from exc
    return LoadedModel(
        version=version,
        model=model,
        artifact_sha256=facts["artifactSha256"][METADATA_FILE],
        data_snapshot_id=facts["dataSnapshotId"],
        pipeline_git_sha=facts["pipelineGitSha"],
        container_image_digest=facts["containerImageDigest"],
    )


def model_version_load_cached(*, version: str, cache_dir: Path | None = None) -> LoadedModel:
    """Load a version verified earlier from the local cache alone, checking every file against its recorded sha256.

    For a worker that starts while the database is down: it can serve what this machine served before.
    """
    cache = (cache_dir or Path(settings.MODEL_CACHE_DIR)) / version
    try:
        facts = json.loads((cache / RECORD_FILE).read_text())
        files = {name: (cache / name).read_bytes() for name in ARTIFACT_FILES}
    except (OSError, ValueError) as exc:
        raise ApplicationError("artifact_unavailable", f"{version} is not in the local cache.", status=409) from exc
    for name, data in files.items():
        if sha256_hex(data) != facts["artifactSha256"].get(name):
            raise ApplicationError("artifact_corrupt", f"cached {version}/{name} fails its sha256 check.", status=409)
    return _build(version, files, facts)

"""Artifact storage for the model registry: one small interface, one backend per URI scheme (path, file, s3, gs)."""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import unquote, urlsplit

from registry.storage.base import SUPPORTED_LOCATIONS, ArtifactStore, ArtifactStoreError
from registry.storage.gcs import GCS_EMULATOR_PROJECT, GcsArtifactStore
from registry.storage.local import LocalArtifactStore
from registry.storage.s3 import S3ArtifactStore

__all__ = [
    "GCS_EMULATOR_PROJECT",
    "SUPPORTED_LOCATIONS",
    "ArtifactStore",
    "ArtifactStoreError",
    "GcsArtifactStore",
    "LocalArtifactStore",
    "S3ArtifactStore",
    "artifact_store_from_uri",
]

_SCHEME_PATTERN = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")


def artifact_store_from_uri(
    uri: str, *, s3_endpoint_url: str | None = None, base_dir: Path | None = None
) -> ArtifactStore:
    """Open the store that `uri` names: a path (relative ones from `base_dir`, default cwd), file://, s3:// or gs://.

    `s3_endpoint_url` points s3:// at an S3-compatible server instead of AWS (MODEL_REGISTRY_S3_ENDPOINT_URL).
    """
    if uri[:5].lower() == "file:":
        # file:/abs/path (one slash) is a valid file URI too, not a relative folder named "file:".
        return LocalArtifactStore(_file_uri_path(uri))
    match = _SCHEME_PATTERN.match(uri)
    if match is None:
        if not uri.strip():
            raise ArtifactStoreError(f"the artifact store location is empty: use {SUPPORTED_LOCATIONS}")
        path = Path(uri).expanduser()
        return LocalArtifactStore(path if path.is_absolute() else (base_dir or Path.cwd()) / path)
    scheme = match.group(1).lower()
    if scheme == "s3":
        return S3ArtifactStore(uri, endpoint_url=s3_endpoint_url)
    if scheme == "gs":
        return GcsArtifactStore(uri)
    # Only the scheme is echoed: the rest of an unknown URI may carry a password.
    raise ArtifactStoreError(f"unsupported artifact store scheme {scheme}://: use {SUPPORTED_LOCATIONS}")


def _file_uri_path(uri: str) -> Path:
    parts = urlsplit(uri)
    if parts.netloc not in ("", "localhost") or parts.query or parts.fragment:
        raise ArtifactStoreError("a file URI must look like file:///absolute/path (no host, query or fragment)")
    path = Path(unquote(parts.path))
    if not path.is_absolute():
        raise ArtifactStoreError("a file URI must look like file:///absolute/path")
    return path

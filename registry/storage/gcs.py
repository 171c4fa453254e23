"""Artifacts as objects in a Google Cloud Storage bucket (or the emulator that STORAGE_EMULATOR_HOST names)."""

from __future__ import annotations

import os

from google.api_core.exceptions import GoogleAPICallError, GoogleAPIError, NotFound
from google.auth.credentials import AnonymousCredentials
from google.auth.exceptions import GoogleAuthError
from google.cloud import storage  # type: ignore[import-untyped]
from google.cloud.storage.exceptions import DataCorruption, InvalidResponse  # type: ignore[import-untyped]

from registry.storage.base import ArtifactStoreError, check_key, folder_prefix, split_bucket_uri

# The emulator needs some project to talk to; it is never a real one.
GCS_EMULATOR_PROJECT = "rideease-local"

_GOOGLE_ERRORS = (GoogleAPIError, GoogleAuthError, InvalidResponse, DataCorruption, OSError)


class GcsArtifactStore:
    """Artifacts as objects under gs://bucket/prefix; anonymous on the emulator that STORAGE_EMULATOR_HOST names."""

    def __init__(self, uri: str, *, page_size: int = 1000) -> None:
        self.bucket, self.prefix = split_bucket_uri(uri, "gs")
        self.uri = f"gs://{self.bucket}/{self.prefix}" if self.prefix else f"gs://{self.bucket}"
        self._root = f"{self.prefix}/" if self.prefix else ""
        self._page_size = page_size
        try:
            self._client = _gcs_client()
        except (*_GOOGLE_ERRORS, ValueError) as exc:
            raise ArtifactStoreError(f"cannot open {self.uri}: {_gcs_reason(exc)}") from exc
        self._bucket = self._client.bucket(self.bucket)

    def put_bytes(self, key: str, data: bytes) -> str:
        """Upload one object (replacing any) and return its gs:// URI."""
        uri = self.uri_for(key)
        try:
            self._bucket.blob(self._root + key).upload_from_string(data, content_type="application/octet-stream")
        except _GOOGLE_ERRORS as exc:
            raise ArtifactStoreError(f"cannot write {uri}: {_gcs_reason(exc)}") from exc
        return uri

    def get_bytes(self, key: str) -> bytes:
        """Download one object; a missing one raises ArtifactStoreError saying "not found"."""
        uri = self.uri_for(key)
        try:
            data: bytes = self._bucket.blob(self._root + key).download_as_bytes()
        except _GOOGLE_ERRORS as exc:
            raise ArtifactStoreError(f"cannot read {uri}: {_gcs_reason(exc)}") from exc
        return data

    def exists(self, key: str) -> bool:
        """Whether an object is stored under this key."""
        uri = self.uri_for(key)
        try:
            found: bool = self._bucket.blob(self._root + key).exists()
        except _GOOGLE_ERRORS as exc:
            raise ArtifactStoreError(f"cannot check {uri}: {_gcs_reason(exc)}") from exc
        return found

    def list_keys(self, prefix: str) -> list[str]:
        """Keys of the objects under the folder `prefix`, relative to the root and sorted."""
        return sorted(name.removeprefix(self._root) for name in self._object_names(prefix))

    def delete_prefix(self, prefix: str) -> int:
        """Delete the objects under the folder `prefix`; return how many were deleted."""
        deleted = 0
        for name in self._object_names(prefix):
            try:
                self._bucket.delete_blob(name)
            except NotFound:
                continue  # deleted by someone else meanwhile: the goal is reached all the same
            except _GOOGLE_ERRORS as exc:
                raise ArtifactStoreError(
                    f"cannot delete gs://{self.bucket}/{name}: {_gcs_reason(exc)} ({deleted} deleted)"
                ) from exc
            deleted += 1
        return deleted

    def uri_for(self, key: str) -> str:
        """The gs:// URI of the object stored under this key."""
        check_key(key, self.uri)
        return f"{self.uri}/{key}"

    def _object_names(self, prefix: str) -> list[str]:
        full_prefix = self._root + folder_prefix(prefix, self.uri)
        try:
            blobs = self._client.list_blobs(self._bucket, prefix=full_prefix, page_size=self._page_size)
            return [str(blob.name) for blob in blobs]
        except _GOOGLE_ERRORS as exc:
            raise ArtifactStoreError(f"cannot list gs://{self.bucket}/{full_prefix}: {_gcs_reason(exc)}") from exc


def _gcs_client() -> storage.Client:
    if os.environ.get("STORAGE_EMULATOR_HOST"):
        # The client reads the emulator's address from the variable itself; it only needs not to look for credentials.
        return storage.Client(project=GCS_EMULATOR_PROJECT, credentials=AnonymousCredentials())  # type: ignore[no-untyped-call]
    # Objects need no project, and letting the client infer one would refuse default credentials that carry none.
    return storage.Client(project=None)


def _gcs_reason(exc: BaseException) -> str:
    if isinstance(exc, GoogleAPICallError):
        message = exc.message or type(exc).__name__
        if exc.code == 404:
            return f"not found ({message})"
        if exc.code in (401, 403):
            return f"access denied ({message}): check the Google credentials and the bucket's permissions"
        return f"HTTP {exc.code}: {message}"
    return f"{type(exc).__name__}: {exc}"

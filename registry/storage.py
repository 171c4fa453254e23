"""Artifact storage for the model registry: one small interface, one backend per URI scheme (path, file, s3, gs)."""

from __future__ import annotations

import contextlib
import os
import re
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Protocol
from urllib.parse import unquote, urlsplit

import boto3  # type: ignore[import-untyped]
from botocore.config import Config  # type: ignore[import-untyped]
from botocore.exceptions import BotoCoreError, ClientError  # type: ignore[import-untyped]
from google.api_core.exceptions import GoogleAPICallError, GoogleAPIError, NotFound
from google.auth.credentials import AnonymousCredentials
from google.auth.exceptions import GoogleAuthError
from google.cloud import storage  # type: ignore[import-untyped]
from google.cloud.storage.exceptions import DataCorruption, InvalidResponse  # type: ignore[import-untyped]

SUPPORTED_LOCATIONS = "a local path, file:///absolute/path, s3://bucket/prefix or gs://bucket/prefix"
# The emulator needs some project to talk to; it is never a real one.
GCS_EMULATOR_PROJECT = "rideease-local"
S3_PAGE_SIZE = 1000  # the most S3 returns per list call and accepts per delete call

_SCHEME_PATTERN = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")
_CONTROL_CHARACTERS = re.compile(r"[\x00-\x1f\x7f]")
_BUCKET_PATTERN = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?$")
# A crash between writing and renaming can leave such a file behind; listings skip it so it never looks published.
_PARTIAL_PREFIX = ".partial-"
_S3_NOT_FOUND_CODES = frozenset({"404", "NoSuchKey", "NotFound"})
_GOOGLE_ERRORS = (GoogleAPIError, GoogleAuthError, InvalidResponse, DataCorruption, OSError)


class ArtifactStoreError(Exception):
    """Storage refused or failed an operation; the message says which URI and why (never credentials)."""


class ArtifactStore(Protocol):
    """Where model artifacts live: objects named by keys such as "v1.3.0/model.json" under one root URI."""

    uri: str

    def put_bytes(self, key: str, data: bytes) -> str:
        """Write (or replace) one object and return its full URI."""
        ...

    def get_bytes(self, key: str) -> bytes:
        """Read one object; a missing one raises ArtifactStoreError saying "not found"."""
        ...

    def exists(self, key: str) -> bool:
        """Whether an object is stored under this key."""
        ...

    def list_keys(self, prefix: str) -> list[str]:
        """Keys under the folder `prefix` ("" for all), relative to the root and sorted."""
        ...

    def delete_prefix(self, prefix: str) -> int:
        """Delete every object under the folder `prefix` ("" for all) and return how many were deleted."""
        ...

    def uri_for(self, key: str) -> str:
        """The full URI of the object stored under this key."""
        ...


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


def _relative_path_problem(path: str) -> str | None:
    if not path:
        return "it is empty"
    if path.startswith("/"):
        return "it is absolute"
    if "\\" in path:
        return "it contains a backslash"
    if ".." in path:
        return "it contains '..'"
    if _CONTROL_CHARACTERS.search(path):
        return "it contains a control character"
    if any(segment in ("", ".") for segment in path.split("/")):
        return "it has an empty or '.' segment"
    return None


def _check_key(key: str, root_uri: str) -> None:
    problem = _relative_path_problem(key)
    if problem is not None:
        raise ArtifactStoreError(f"key {key!r} refused for {root_uri}: {problem}")


def _folder_prefix(prefix: str, root_uri: str) -> str:
    """'' (everything) or the prefix with one trailing slash, so "v1" never matches "v10/..."."""
    if prefix == "":
        return ""
    folder = prefix.removesuffix("/")
    problem = _relative_path_problem(folder)
    if problem is not None:
        raise ArtifactStoreError(f"prefix {prefix!r} refused for {root_uri}: {problem}")
    return folder + "/"


def _file_uri_path(uri: str) -> Path:
    parts = urlsplit(uri)
    if parts.netloc not in ("", "localhost") or parts.query or parts.fragment:
        raise ArtifactStoreError("a file URI must look like file:///absolute/path (no host, query or fragment)")
    path = Path(unquote(parts.path))
    if not path.is_absolute():
        raise ArtifactStoreError("a file URI must look like file:///absolute/path")
    return path


def _split_bucket_uri(uri: str, scheme: str) -> tuple[str, str]:
    """("bucket", "prefix/in/bucket" or "") from scheme://bucket/prefix, refusing anything that could escape."""
    parts = urlsplit(uri)
    if "@" in parts.netloc:
        raise ArtifactStoreError(f"a {scheme}:// URI must not carry credentials: give them through the environment")
    if not _BUCKET_PATTERN.match(parts.netloc) or parts.query or parts.fragment:
        raise ArtifactStoreError(f"{uri!r} is not a valid {scheme}://bucket/prefix URI")
    prefix = parts.path.strip("/")
    if prefix:
        problem = _relative_path_problem(prefix)
        if problem is not None:
            raise ArtifactStoreError(f"prefix of {uri!r} refused: {problem}")
    return parts.netloc, prefix


def _os_reason(exc: OSError) -> str:
    return exc.strerror or str(exc)


class LocalArtifactStore:
    """Artifacts as files under one directory; each write lands whole or not at all."""

    def __init__(self, root: Path) -> None:
        self.root = root.resolve()
        self.uri = self.root.as_uri()

    def _path(self, key: str) -> Path:
        _check_key(key, self.uri)
        return self.root.joinpath(*key.split("/"))

    def put_bytes(self, key: str, data: bytes) -> str:
        """Write atomically: a temporary file in the target's directory, fsynced, then renamed over the target."""
        path = self._path(key)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            _write_atomically(path, data)
        except OSError as exc:
            raise ArtifactStoreError(f"cannot write {path.as_uri()}: {_os_reason(exc)}") from exc
        return path.as_uri()

    def get_bytes(self, key: str) -> bytes:
        """Read one file; a missing one raises ArtifactStoreError saying "not found"."""
        path = self._path(key)
        try:
            return path.read_bytes()
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError) as exc:
            raise ArtifactStoreError(f"cannot read {path.as_uri()}: not found") from exc
        except OSError as exc:
            raise ArtifactStoreError(f"cannot read {path.as_uri()}: {_os_reason(exc)}") from exc

    def exists(self, key: str) -> bool:
        """Whether a file is stored under this key."""
        return self._path(key).is_file()

    def list_keys(self, prefix: str) -> list[str]:
        """Keys of the files under the folder `prefix`, relative to the root and sorted."""
        start = self._folder(prefix)
        try:
            return sorted(path.relative_to(self.root).as_posix() for path in _files_under(start))
        except OSError as exc:
            raise ArtifactStoreError(f"cannot list {start.as_uri()}: {_os_reason(exc)}") from exc

    def delete_prefix(self, prefix: str) -> int:
        """Delete the files under the folder `prefix` (and the folders left empty); return how many were deleted."""
        start = self._folder(prefix)
        deleted = 0
        try:
            for path in _files_under(start, include_partial=True):
                with contextlib.suppress(FileNotFoundError):
                    path.unlink()
                    if not path.name.startswith(_PARTIAL_PREFIX):
                        deleted += 1
            _remove_empty_folders(start, keep=self.root)
        except OSError as exc:
            raise ArtifactStoreError(f"cannot delete under {start.as_uri()}: {_os_reason(exc)}") from exc
        return deleted

    def uri_for(self, key: str) -> str:
        """The file:// URI of the file stored under this key."""
        return self._path(key).as_uri()

    def _folder(self, prefix: str) -> Path:
        folder = _folder_prefix(prefix, self.uri)
        return self.root.joinpath(*folder.split("/")[:-1])


def _write_atomically(path: Path, data: bytes) -> None:
    # os.open with 0o666 honours the umask, as a plain open() would; mkstemp would make every artifact 0600.
    partial = path.with_name(f"{_PARTIAL_PREFIX}{path.name}.{secrets.token_hex(8)}")
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(fd, "wb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        os.replace(partial, path)
    except BaseException:
        with contextlib.suppress(OSError):
            partial.unlink()
        raise
    # The rename lives in the directory: without this a crash could lose an artifact already reported as written.
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)


def _raise(exc: OSError) -> None:
    raise exc


def _files_under(start: Path, *, include_partial: bool = False) -> Iterator[Path]:
    if not start.is_dir():
        return
    # os.walk hides errors by default; a listing that silently misses files would publish a partial model.
    for dirpath, _dirnames, filenames in os.walk(start, onerror=_raise):
        for name in filenames:
            if include_partial or not name.startswith(_PARTIAL_PREFIX):
                yield Path(dirpath, name)


def _remove_empty_folders(start: Path, *, keep: Path) -> None:
    if not start.is_dir():
        return
    for dirpath, _dirnames, _filenames in os.walk(start, topdown=False, onerror=_raise):
        folder = Path(dirpath)
        if folder != keep:
            # A folder that is not empty (another writer got there first) is simply kept.
            with contextlib.suppress(OSError):
                folder.rmdir()


class S3ArtifactStore:
    """Artifacts as objects under s3://bucket/prefix, through boto3 (credentials and region from AWS_* or profiles)."""

    def __init__(self, uri: str, *, endpoint_url: str | None = None, page_size: int = S3_PAGE_SIZE) -> None:
        self.bucket, self.prefix = _split_bucket_uri(uri, "s3")
        self.uri = f"s3://{self.bucket}/{self.prefix}" if self.prefix else f"s3://{self.bucket}"
        self._root = f"{self.prefix}/" if self.prefix else ""
        self._page_size = min(page_size, S3_PAGE_SIZE)
        config = Config(
            connect_timeout=10,
            read_timeout=60,
            retries={"max_attempts": 3, "mode": "standard"},
            # Self-hosted S3-compatible servers rarely have wildcard DNS for bucket.host names.
            s3={"addressing_style": "path"} if endpoint_url else None,
        )
        try:
            self._client = boto3.session.Session().client("s3", endpoint_url=endpoint_url, config=config)
        except (BotoCoreError, ValueError) as exc:
            raise ArtifactStoreError(f"cannot open {self.uri}: {exc}") from exc

    def put_bytes(self, key: str, data: bytes) -> str:
        """Upload one object (replacing any) and return its s3:// URI."""
        uri = self.uri_for(key)
        try:
            self._client.put_object(Bucket=self.bucket, Key=self._root + key, Body=data)
        except (ClientError, BotoCoreError) as exc:
            raise ArtifactStoreError(f"cannot write {uri}: {_s3_reason(exc, self.bucket)}") from exc
        return uri

    def get_bytes(self, key: str) -> bytes:
        """Download one object; a missing one raises ArtifactStoreError saying "not found"."""
        uri = self.uri_for(key)
        try:
            response = self._client.get_object(Bucket=self.bucket, Key=self._root + key)
            data: bytes = response["Body"].read()
        except (ClientError, BotoCoreError) as exc:
            raise ArtifactStoreError(f"cannot read {uri}: {_s3_reason(exc, self.bucket)}") from exc
        return data

    def exists(self, key: str) -> bool:
        """Whether an object is stored under this key."""
        uri = self.uri_for(key)
        try:
            self._client.head_object(Bucket=self.bucket, Key=self._root + key)
        except ClientError as exc:
            if _s3_code(exc) in _S3_NOT_FOUND_CODES:
                return False
            raise ArtifactStoreError(f"cannot check {uri}: {_s3_reason(exc, self.bucket)}") from exc
        except BotoCoreError as exc:
            raise ArtifactStoreError(f"cannot check {uri}: {exc}") from exc
        return True

    def list_keys(self, prefix: str) -> list[str]:
        """Keys of the objects under the folder `prefix`, relative to the root and sorted."""
        return sorted(name.removeprefix(self._root) for name in self._object_names(prefix))

    def delete_prefix(self, prefix: str) -> int:
        """Delete the objects under the folder `prefix`, in batches; return how many were deleted."""
        names = self._object_names(prefix)
        deleted = 0
        for start in range(0, len(names), self._page_size):
            batch = names[start : start + self._page_size]
            try:
                response = self._client.delete_objects(
                    Bucket=self.bucket, Delete={"Objects": [{"Key": name} for name in batch], "Quiet": True}
                )
            except (ClientError, BotoCoreError) as exc:
                raise ArtifactStoreError(f"cannot delete under {self.uri}: {_s3_reason(exc, self.bucket)}") from exc
            errors = response.get("Errors", [])
            deleted += len(batch) - len(errors)
            if errors:
                first = errors[0]
                raise ArtifactStoreError(
                    f"cannot delete s3://{self.bucket}/{first.get('Key')}: {first.get('Code')}: "
                    f"{first.get('Message')} ({len(errors)} objects refused, {deleted} deleted)"
                )
        return deleted

    def uri_for(self, key: str) -> str:
        """The s3:// URI of the object stored under this key."""
        _check_key(key, self.uri)
        return f"{self.uri}/{key}"

    def _object_names(self, prefix: str) -> list[str]:
        full_prefix = self._root + _folder_prefix(prefix, self.uri)
        names: list[str] = []
        try:
            pages = self._client.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=full_prefix, PaginationConfig={"PageSize": self._page_size}
            )
            for page in pages:
                names.extend(item["Key"] for item in page.get("Contents", []))
        except (ClientError, BotoCoreError) as exc:
            raise ArtifactStoreError(
                f"cannot list s3://{self.bucket}/{full_prefix}: {_s3_reason(exc, self.bucket)}"
            ) from exc
        return names


def _s3_code(exc: ClientError) -> str:
    code: str = exc.response.get("Error", {}).get("Code", "")
    return code


def _s3_reason(exc: ClientError | BotoCoreError, bucket: str) -> str:
    if not isinstance(exc, ClientError):
        return str(exc)
    code = _s3_code(exc)
    if code == "NoSuchBucket":
        return f"not found: bucket {bucket!r} does not exist"
    if code in _S3_NOT_FOUND_CODES:
        return "not found"
    if code in ("AccessDenied", "403", "InvalidAccessKeyId", "SignatureDoesNotMatch"):
        return f"access denied ({code}): check the AWS credentials and the bucket's policy"
    message = exc.response.get("Error", {}).get("Message", "")
    return f"{code}: {message}" if message else code or str(exc)


class GcsArtifactStore:
    """Artifacts as objects under gs://bucket/prefix; anonymous on the emulator that STORAGE_EMULATOR_HOST names."""

    def __init__(self, uri: str, *, page_size: int = 1000) -> None:
        self.bucket, self.prefix = _split_bucket_uri(uri, "gs")
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
        _check_key(key, self.uri)
        return f"{self.uri}/{key}"

    def _object_names(self, prefix: str) -> list[str]:
        full_prefix = self._root + _folder_prefix(prefix, self.uri)
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

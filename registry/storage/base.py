"""The artifact store interface and the key, prefix and bucket-URI checks every backend shares."""

from __future__ import annotations

import re
from typing import Protocol
from urllib.parse import urlsplit

SUPPORTED_LOCATIONS = "a local path, file:///absolute/path, s3://bucket/prefix or gs://bucket/prefix"

_CONTROL_CHARACTERS = re.compile(r"[\x00-\x1f\x7f]")
_BUCKET_PATTERN = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?$")


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


def check_key(key: str, root_uri: str) -> None:
    """Refuse a key that could escape the root or name something odd (absolute, '..', empty segments...)."""
    problem = _relative_path_problem(key)
    if problem is not None:
        raise ArtifactStoreError(f"key {key!r} refused for {root_uri}: {problem}")


def folder_prefix(prefix: str, root_uri: str) -> str:
    """'' (everything) or the prefix with one trailing slash, so "v1" never matches "v10/..."."""
    if prefix == "":
        return ""
    folder = prefix.removesuffix("/")
    problem = _relative_path_problem(folder)
    if problem is not None:
        raise ArtifactStoreError(f"prefix {prefix!r} refused for {root_uri}: {problem}")
    return folder + "/"


def split_bucket_uri(uri: str, scheme: str) -> tuple[str, str]:
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

"""Artifacts as files under one local directory, each written whole or not at all."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

from core.files import PARTIAL_PREFIX, write_atomically
from registry.storage.base import ArtifactStoreError, check_key, folder_prefix


def _os_reason(exc: OSError) -> str:
    return exc.strerror or str(exc)


class LocalArtifactStore:
    """Artifacts as files under one directory; each write lands whole or not at all."""

    def __init__(self, root: Path) -> None:
        self.root = root.resolve()
        self.uri = self.root.as_uri()

    def _path(self, key: str) -> Path:
        check_key(key, self.uri)
        return self.root.joinpath(*key.split("/"))

    def put_bytes(self, key: str, data: bytes) -> str:
        """Write atomically: a temporary file in the target's directory, fsynced, then renamed over the target."""
        path = self._path(key)
        try:
            write_atomically(path, data)
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
                    if not path.name.startswith(PARTIAL_PREFIX):
                        deleted += 1
            _remove_empty_folders(start, keep=self.root)
        except OSError as exc:
            raise ArtifactStoreError(f"cannot delete under {start.as_uri()}: {_os_reason(exc)}") from exc
        return deleted

    def uri_for(self, key: str) -> str:
        """The file:// URI of the file stored under this key."""
        return self._path(key).as_uri()

    def _folder(self, prefix: str) -> Path:
        folder = folder_prefix(prefix, self.uri)
        return self.root.joinpath(*folder.split("/")[:-1])


def _raise(exc: OSError) -> None:
    raise exc


def _files_under(start: Path, *, include_partial: bool = False) -> Iterator[Path]:
    if not start.is_dir():
        return
    # os.walk hides errors by default; a listing that silently misses files would publish a partial model.
    for dirpath, _dirnames, filenames in os.walk(start, onerror=_raise):
        for name in filenames:
            if include_partial or not name.startswith(PARTIAL_PREFIX):
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

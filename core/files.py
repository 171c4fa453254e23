"""Files written whole or not at all, for artifacts, the model cache and the saved serving state."""

import contextlib
import os
import secrets
from pathlib import Path

# A crash between writing and renaming can leave such a file behind; readers that list a folder skip it.
PARTIAL_PREFIX = ".partial-"


def write_atomically(path: Path, data: bytes) -> None:
    """Write `data` to `path` through a uniquely named partial file beside it, fsynced, then renamed over `path`.

    Each writer has its own partial file, so processes writing the same path at once never move each other's away;
    readers see the old content or the new, never a mix.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f"{PARTIAL_PREFIX}{path.name}.{secrets.token_hex(8)}")
    # os.open with 0o666 honours the umask, as a plain open() would; mkstemp would make every file 0600.
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
    # The rename lives in the directory: without this a crash could lose a file already reported as written.
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)

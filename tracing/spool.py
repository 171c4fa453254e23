"""The trace writer's durable spool: records the database could not take, on local disk until they are replayed."""

import logging
import os
import time
from collections.abc import Callable
from pathlib import Path

from bson import json_util
from bson.json_util import DatetimeRepresentation, JSONMode, JSONOptions

from tracing.records import Record, plain_document

logger = logging.getLogger(__name__)
# Spool lines carry dates as epoch milliseconds ({"$date": {"$numberLong": ...}}): reading them back parses no date
# string, which made reading a request's trace and exposure back markedly slower. Lines with ISO dates still read.
_SPOOL_JSON = JSONOptions(json_mode=JSONMode.LEGACY, datetime_representation=DatetimeRepresentation.NUMBERLONG)
# Writes replayed records to the database; True when every one of them is there now.
Replay = Callable[[list[Record]], bool]


class Spool:
    """A folder of JSON Lines files (MongoDB extended JSON), one per process that spooled, shared by every worker."""

    def __init__(self, folder: Path, max_bytes: int) -> None:
        self._folder = folder
        self._max_bytes = max_bytes
        folder.mkdir(parents=True, exist_ok=True)
        self._path = folder / f"spool-{os.getpid()}-{time.time_ns()}.jsonl"

    def append(self, items: list[Record]) -> bool:
        """Append records to this process's file, fsynced; False when the spool is full and they were dropped."""
        if self.byte_count() >= self._max_bytes:
            logger.error("Trace spool full (%d bytes); dropped %d records", self._max_bytes, len(items))
            return False
        records = ({"c": name, "d": plain_document(document)} for name, document in items)
        lines = "".join(json_util.dumps(record, json_options=_SPOOL_JSON) + "\n" for record in records)
        with self._path.open("a", encoding="utf-8") as handle:
            handle.write(lines)
            handle.flush()
            os.fsync(handle.fileno())
        return True

    def record_count(self) -> int:
        """Records spooled by every process, replaying ones included."""
        total = 0
        for path in self._folder.glob("*.jsonl"):
            try:
                with path.open("rb") as handle:
                    total += sum(1 for _ in handle)
            except OSError:
                continue
        return total

    def byte_count(self) -> int:
        return sum(path.stat().st_size for path in self._folder.glob("*.jsonl") if path.exists())

    def replay(self, write: Replay) -> int:
        """Hand each spool file's records to `write`, deleting the file once written; return how many were.

        Stops at the first file `write` could not take, and puts it back for the next attempt.
        """
        replayed = 0
        for path in sorted(self._folder.glob("spool-*.jsonl")):
            if (claimed := _claim(path)) is None:
                continue
            items = [_decode(line) for line in claimed.read_text(encoding="utf-8").splitlines() if line.strip()]
            if items and not write(items):
                _put_back(claimed)  # still down: keep it for the next attempt
                break
            claimed.unlink()
            replayed += len(items)
        self._reclaim_abandoned()
        return replayed

    def _reclaim_abandoned(self) -> None:
        """A worker that died while replaying leaves its claimed file behind: put it back in the spool."""
        for path in self._folder.glob("replaying-*.jsonl"):
            owner = path.name.split("-")[1]
            if owner.isdigit() and int(owner) != os.getpid() and not _alive(int(owner)):
                _put_back(path)


def _claim(path: Path) -> Path | None:
    """Rename a spool file to claim it for replay: no other worker replays it at the same time. None if taken."""
    claimed = path.with_name(f"replaying-{os.getpid()}-{path.name}")
    try:
        path.rename(claimed)
    except OSError:
        return None
    return claimed


def _put_back(claimed: Path) -> None:
    """Return a claimed file to the spool under its own name."""
    claimed.rename(claimed.with_name(claimed.name.split("-", 2)[2]))


def _decode(line: str) -> Record:
    record = json_util.loads(line)
    return str(record["c"]), dict(record["d"])


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True

"""Reading event files (JSON Lines or CSV) line by line: pure Python, no Django."""

import csv
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

CSV_COLUMNS = ("eventId", "type", "userId", "itemId", "ts", "payload")


@dataclass(frozen=True)
class FileRow:
    """One line of an event file: the decoded event, or why it could not be decoded."""

    line: int
    event: object = None
    error: str | None = None


def detect_format(path: Path, explicit: str | None) -> str:
    """The file's format: the explicit choice, else .csv means CSV and anything else JSON Lines."""
    if explicit:
        return explicit
    return "csv" if path.suffix.lower() == ".csv" else "jsonl"


def read_jsonl(path: Path) -> Iterator[FileRow]:
    """Yield one row per non-blank line; a line that is not UTF-8 JSON becomes an error row."""
    with path.open("rb") as handle:
        for number, raw in enumerate(handle, start=1):
            if not raw.strip():
                continue
            try:
                yield FileRow(line=number, event=json.loads(raw.decode("utf-8")))
            except UnicodeDecodeError:
                yield FileRow(line=number, error="not valid UTF-8")
            except json.JSONDecodeError as exc:
                yield FileRow(line=number, error=f"not valid JSON ({exc.msg} at column {exc.colno})")


def _csv_event(record: dict[str | None, str | list[str] | None]) -> FileRow | dict[str, object]:
    if None in record:
        return FileRow(line=0, error="more fields than the header has")
    event: dict[str, object] = {key: value for key, value in record.items() if key and value not in ("", None)}
    payload = event.get("payload")
    if isinstance(payload, str):
        try:
            event["payload"] = json.loads(payload)
        except json.JSONDecodeError:
            return FileRow(line=0, error="payload is not valid JSON")
    return event


def read_csv(path: Path) -> Iterator[FileRow]:
    """Yield one row per CSV record; the header must name the columns (type,userId,itemId,ts,payload)."""
    with path.open("r", encoding="utf-8-sig", errors="replace", newline="") as handle:
        reader = csv.DictReader(handle)
        header = reader.fieldnames or []
        unknown = [name for name in header if name not in CSV_COLUMNS]
        if unknown or "type" not in header or "userId" not in header:
            yield FileRow(line=1, error=f"header must name columns from {', '.join(CSV_COLUMNS)}; got {header}")
            return
        for record in reader:
            result = _csv_event(record)
            if isinstance(result, FileRow):
                yield FileRow(line=reader.line_num, error=result.error)
            else:
                yield FileRow(line=reader.line_num, event=result)


def read_event_file(path: Path, fmt: str) -> Iterator[FileRow]:
    """Yield the rows of an event file in the given format ("jsonl" or "csv")."""
    return read_csv(path) if fmt == "csv" else read_jsonl(path)


def count_lines(path: Path) -> int:
    """The number of lines in the file, read in large blocks (for a progress bar's total)."""
    with path.open("rb") as handle:
        return sum(block.count(b"\n") for block in iter(lambda: handle.read(1 << 20), b""))

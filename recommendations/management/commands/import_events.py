"""manage.py import_events FILE: load user events from JSON Lines or CSV, in chunks, with progress."""

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from tqdm import tqdm

from recommendations.event_files import count_lines, detect_format, read_event_file
from recommendations.services import INSERT_BATCH_SIZE, raw_event_import

_SHOWN_REJECTIONS = 20


class Command(BaseCommand):
    help = (
        "Import user events from a JSON Lines (.jsonl) or CSV (.csv; header [eventId,]type,userId,itemId,ts,payload) "
        "file. Each event is stored once: under its eventId, or an id derived from its content and line number, so a "
        "re-run writes only what is new. Each invalid line goes to the rejects file with its number and reason. "
        "Exits 1 when any line was rejected."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("file", type=Path)
        parser.add_argument("--format", choices=["jsonl", "csv"], help="default: from the file extension")
        parser.add_argument("--chunk-size", type=int, default=INSERT_BATCH_SIZE, help="events per insert")
        parser.add_argument("--rejects", type=Path, help="where rejected lines go (default: FILE.rejects.jsonl)")
        parser.add_argument("--dry-run", action="store_true", help="validate only, store nothing")
        parser.add_argument("--json", action="store_true", help="print the summary as JSON")

    def handle(self, *args: Any, **options: Any) -> None:
        path: Path = options["file"]
        if not path.is_file():
            raise CommandError(f"No such file: {path}")
        if options["chunk_size"] < 1:
            raise CommandError("--chunk-size must be at least 1")
        fmt = detect_format(path, options["format"])
        rejects_path: Path = options["rejects"] or path.with_name(path.name + ".rejects.jsonl")
        started = time.monotonic()
        try:
            rejects = rejects_path.open("w", encoding="utf-8")
        except OSError as exc:
            raise CommandError(f"Cannot write the rejects file {rejects_path}: {exc.strerror}") from exc
        with rejects, self._progress(path) as bar:

            def progress(read: int) -> None:
                bar.update(read - bar.n)

            result = raw_event_import(
                rows=read_event_file(path, fmt),
                chunk_size=options["chunk_size"],
                dry_run=options["dry_run"],
                on_progress=progress,
                on_reject=_rejects_writer(rejects),
            )
        elapsed = time.monotonic() - started
        if not result.rejected_count:
            rejects_path.unlink(missing_ok=True)
        for line, errors in result.rejected[:_SHOWN_REJECTIONS]:
            reasons = "; ".join(f"{name}: {message}" for name, message in errors.items())
            self.stderr.write(f"line {line}: {reasons}")
        if result.rejected_count > _SHOWN_REJECTIONS:
            self.stderr.write(f"... and {result.rejected_count - _SHOWN_REJECTIONS} more rejected lines")
        summary = {
            "file": str(path),
            "format": fmt,
            "read": result.read,
            "inserted": result.written.inserted,
            "duplicates": result.written.duplicates,
            "rejected": result.rejected_count,
            "rejectsFile": str(rejects_path) if result.rejected_count else None,
            "dryRun": options["dry_run"],
            "seconds": round(elapsed, 3),
        }
        if options["json"]:
            self.stdout.write(json.dumps(summary))
        else:
            verb = "would insert" if options["dry_run"] else "inserted"
            self.stdout.write(
                f"{path}: read {result.read} lines, {verb} {result.written.inserted} events, "
                f"{result.written.duplicates} already stored (not written again), rejected {result.rejected_count} "
                f"in {elapsed:.1f}s ({result.read / max(elapsed, 1e-9):,.0f} lines/s)"
            )
        if result.rejected_count:
            kept = "nothing was stored (dry run)" if options["dry_run"] else "the valid lines were stored"
            raise CommandError(f"{result.rejected_count} line(s) rejected, each listed in {rejects_path}; {kept}.")

    def _progress(self, path: Path) -> tqdm:  # type: ignore[type-arg]
        """Lines done of the file's total, events/s and the time left; drawn only on a terminal."""
        interactive = self.stderr.isatty()
        return tqdm(
            total=count_lines(path) if interactive else None,
            desc=f"import {path.name}",
            unit=" lines",
            file=self.stderr,
            mininterval=1.0,
            disable=not interactive,
        )


def _rejects_writer(handle: IO[str]) -> Callable[[int, dict[str, str]], None]:
    def write(line: int, errors: dict[str, str]) -> None:
        handle.write(json.dumps({"line": line, "errors": errors}) + "\n")

    return write

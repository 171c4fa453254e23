"""manage.py import_events FILE: load user events from JSON Lines or CSV, in chunks, with progress."""

import json
import time
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from tqdm import tqdm

from recommendations.event_files import detect_format, read_event_file
from recommendations.services import INSERT_BATCH_SIZE, raw_event_import

_SHOWN_REJECTIONS = 20


class Command(BaseCommand):
    help = (
        "Import user events from a JSON Lines (.jsonl) or CSV (.csv; header type,userId,itemId,ts,payload) file. "
        "Valid lines are stored; each invalid line is reported with its number. Exits 1 when any line was rejected."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("file", type=Path)
        parser.add_argument("--format", choices=["jsonl", "csv"], help="default: from the file extension")
        parser.add_argument("--chunk-size", type=int, default=INSERT_BATCH_SIZE, help="events per insert")
        parser.add_argument("--dry-run", action="store_true", help="validate only, store nothing")
        parser.add_argument("--json", action="store_true", help="print the summary as JSON")

    def handle(self, *args: Any, **options: Any) -> None:
        path: Path = options["file"]
        if not path.is_file():
            raise CommandError(f"No such file: {path}")
        if options["chunk_size"] < 1:
            raise CommandError("--chunk-size must be at least 1")
        fmt = detect_format(path, options["format"])
        started = time.monotonic()
        with tqdm(desc=f"import {path.name}", unit=" lines", file=self.stderr, mininterval=1.0) as bar:

            def progress(read: int) -> None:
                bar.update(read - bar.n)

            result = raw_event_import(
                rows=read_event_file(path, fmt),
                chunk_size=options["chunk_size"],
                dry_run=options["dry_run"],
                on_progress=progress,
            )
        elapsed = time.monotonic() - started
        for line, errors in result.rejected[:_SHOWN_REJECTIONS]:
            reasons = "; ".join(f"{name}: {message}" for name, message in errors.items())
            self.stderr.write(f"line {line}: {reasons}")
        if result.rejected_count > _SHOWN_REJECTIONS:
            self.stderr.write(f"... and {result.rejected_count - _SHOWN_REJECTIONS} more rejected lines")
        verb = "would store" if options["dry_run"] else "stored"
        summary = {
            "file": str(path),
            "format": fmt,
            "read": result.read,
            "stored": result.stored,
            "rejected": result.rejected_count,
            "dryRun": options["dry_run"],
            "seconds": round(elapsed, 3),
        }
        if options["json"]:
            self.stdout.write(json.dumps(summary))
        else:
            self.stdout.write(
                f"{path}: read {result.read} lines, {verb} {result.stored} events, "
                f"rejected {result.rejected_count} in {elapsed:.1f}s"
            )
        if result.rejected_count:
            kept = "nothing was stored (dry run)" if options["dry_run"] else "the valid lines were stored"
            raise CommandError(f"{result.rejected_count} line(s) rejected; {kept}.")

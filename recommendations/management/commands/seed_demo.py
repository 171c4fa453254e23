"""manage.py seed_demo: write a seeded, realistic RideEase world of user events."""

import json
import time
from datetime import UTC, datetime
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone
from tqdm import tqdm

from recommendations.demo_data import DemoConfig, demo_events_generate
from recommendations.events import parse_ts
from recommendations.selectors import raw_event_count
from recommendations.services import event_limits_from_settings, raw_event_delete_all, raw_event_store_many


def _positive(value: str) -> int:
    number = int(value)
    if number < 1:
        raise ValueError("must be at least 1")
    return number


class Command(BaseCommand):
    help = (
        "Write demo riders' events (views, plays, books, skips) driven by hidden tastes, reproducible from --seed "
        "and --end. Refuses to write into a non-empty raw_events unless --replace is given."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        defaults = DemoConfig()
        parser.add_argument("--users", type=_positive, default=defaults.users)
        parser.add_argument("--items", type=_positive, default=defaults.items)
        parser.add_argument("--days", type=_positive, default=defaults.days)
        parser.add_argument("--events", type=_positive, default=defaults.events)
        parser.add_argument("--seed", type=int, default=defaults.seed)
        parser.add_argument("--end", help="ISO-8601 time the data ends at (default: now, to the minute)")
        parser.add_argument("--replace", action="store_true", help="delete every stored event first")
        parser.add_argument("--json", action="store_true", help="print the summary as JSON")

    def _end(self, raw: str | None) -> datetime:
        now = timezone.now()
        if raw is None:
            return now.replace(second=0, microsecond=0)
        parsed, error = parse_ts(raw, now=now, limits=event_limits_from_settings())
        if parsed is None:
            raise CommandError(f"--end {error}")
        return parsed.astimezone(UTC)

    def handle(self, *args: Any, **options: Any) -> None:
        end = self._end(options["end"])
        config = DemoConfig(
            users=options["users"],
            items=options["items"],
            days=options["days"],
            events=options["events"],
            seed=options["seed"],
        )
        existing = raw_event_count()
        if existing and not options["replace"]:
            raise CommandError(f"raw_events already holds {existing} events; pass --replace to delete them first.")
        deleted = raw_event_delete_all() if existing else 0
        started = time.monotonic()
        stored = 0
        with tqdm(total=config.events, desc="seed_demo", unit=" events", file=self.stderr, mininterval=1.0) as bar:
            for chunk in demo_events_generate(config, end=end):
                stored += raw_event_store_many(events=chunk)
                bar.update(len(chunk))
        elapsed = time.monotonic() - started
        summary = {
            "stored": stored,
            "deleted": deleted,
            "users": config.users,
            "items": config.items,
            "days": config.days,
            "seed": config.seed,
            "end": end.isoformat(),
            "seconds": round(elapsed, 3),
        }
        if options["json"]:
            self.stdout.write(json.dumps(summary))
        else:
            self.stdout.write(
                f"Seeded {stored} events for {config.users} riders and {config.items} items over {config.days} days "
                f"ending {end.isoformat()} (seed {config.seed}) in {elapsed:.1f}s"
            )

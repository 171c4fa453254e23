"""manage.py seed_demo: reproducible, realistic and safe with existing data."""

import json
from datetime import UTC, datetime
from io import StringIO

import numpy as np
import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from recommendations.demo_data import DemoConfig, demo_events_generate, demo_world_build
from recommendations.models import RawEvent

END = "2026-11-01T00:00:00Z"
SMALL = ["--users", "200", "--items", "60", "--days", "10", "--events", "3000", "--end", END]


def snapshot() -> list[tuple[object, ...]]:
    return list(
        RawEvent.objects.order_by("ts", "user_id", "item_id", "type").values_list("type", "user_id", "item_id", "ts")
    )


@pytest.mark.django_db
def test_the_same_seed_writes_the_same_events() -> None:
    call_command("seed_demo", *SMALL, "--seed", "7", stdout=StringIO(), stderr=StringIO())
    first = snapshot()
    call_command("seed_demo", *SMALL, "--seed", "7", "--replace", stdout=StringIO(), stderr=StringIO())
    assert snapshot() == first
    assert len(first) == 3000
    call_command("seed_demo", *SMALL, "--seed", "8", "--replace", stdout=StringIO(), stderr=StringIO())
    assert snapshot() != first


@pytest.mark.django_db
def test_it_refuses_to_write_into_existing_events_without_replace() -> None:
    call_command("seed_demo", *SMALL, stdout=StringIO(), stderr=StringIO())
    with pytest.raises(CommandError, match="already holds 3000 events"):
        call_command("seed_demo", *SMALL, stdout=StringIO(), stderr=StringIO())
    assert RawEvent.objects.count() == 3000


@pytest.mark.django_db
def test_the_summary_reports_what_was_written() -> None:
    out = StringIO()
    call_command("seed_demo", *SMALL, "--json", stdout=out, stderr=StringIO())
    summary = json.loads(out.getvalue())
    assert summary["stored"] == 3000
    assert summary["end"] == "2026-11-01T00:00:00+00:00"


def test_events_fall_inside_the_window_and_cover_every_interaction_type() -> None:
    config = DemoConfig(users=300, items=60, days=10, events=5000, seed=3)
    end = datetime(2026, 11, 1, tzinfo=UTC)
    events = [event for chunk in demo_events_generate(config, end=end) for event in chunk]
    assert len(events) == 5000
    assert {event.type for event in events} == {"view", "play", "book", "skip"}
    assert min(event.ts for event in events) >= datetime(2026, 10, 22, tzinfo=UTC)  # exactly --days before the end
    assert max(event.ts for event in events) <= end


def test_riders_book_mostly_in_the_categories_they_like() -> None:
    config = DemoConfig(users=300, items=60, days=10, events=20000, seed=5)
    world = demo_world_build(config)
    events = [e for chunk in demo_events_generate(config, end=datetime(2026, 11, 1, tzinfo=UTC)) for e in chunk]
    item_index = {item: index for index, item in enumerate(world.item_ids)}
    user_index = {user: index for index, user in enumerate(world.user_ids)}
    taste_of_booked = [
        world.user_taste[user_index[e.user_id]][world.item_category[item_index[str(e.item_id)]]]
        for e in events
        if e.type == "book"
    ]
    # A uniform taste would give 1/12 per category; booked items sit far above that.
    assert float(np.mean(taste_of_booked)) > 3 / 12


def test_activity_is_skewed_so_both_light_and_heavy_riders_exist() -> None:
    config = DemoConfig(users=500, items=60, days=10, events=20000, seed=9)
    events = [e for chunk in demo_events_generate(config, end=datetime(2026, 11, 1, tzinfo=UTC)) for e in chunk]
    per_user = np.bincount([int(e.user_id.split("-")[1]) for e in events], minlength=500)
    active = per_user[per_user > 0]
    assert (active < 5).sum() > 10
    assert (active >= 100).sum() > 10

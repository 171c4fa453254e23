"""A seeded, realistic RideEase world for demos, tests and benchmarks (pure Python + numpy, no Django).

Riders have hidden tastes over destination categories; items (ride products and destinations) have a category and a
base popularity. Sessions happen at plausible hours over the last N days; in a session a rider views a few items drawn
from their tastes (with some exploration of popular items), then opens (play), books or skips each one, more likely
the closer it is to their tastes. A recommender that learns the tastes therefore beats one that only counts popularity.
"""

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import numpy as np

from recommendations.events import EventInput

CATEGORIES = (
    "airport",
    "business",
    "nightlife",
    "beach",
    "stadium",
    "shopping",
    "campus",
    "hospital",
    "museum",
    "park",
    "station",
    "restaurant",
)
RIDE_PRODUCTS = ("ride-standard", "ride-comfort", "ride-xl", "ride-green", "ride-pool", "ride-premium")
# Probability of a session starting at each hour of the day (UTC): commute peaks and a late-evening bump.
_HOUR_WEIGHTS = np.array(
    [1, 1, 1, 1, 1, 2, 4, 8, 9, 6, 4, 4, 5, 4, 4, 5, 7, 9, 8, 6, 5, 5, 4, 2],
    dtype=float,
)


@dataclass(frozen=True)
class DemoConfig:
    users: int = 3000
    items: int = 300
    days: int = 30
    events: int = 100_000
    seed: int = 42
    # Share of viewed items drawn from global popularity instead of the rider's tastes.
    exploration: float = 0.15


@dataclass(frozen=True)
class DemoWorld:
    """The hidden truth behind the events: useful to tests that check what a recommender should learn."""

    item_ids: list[str]
    item_category: np.ndarray
    item_popularity: np.ndarray
    user_ids: list[str]
    user_taste: np.ndarray
    user_activity: np.ndarray


def _item_ids(count: int) -> tuple[list[str], np.ndarray]:
    """Item ids and their categories; the first few items are ride products, each selling best with one category."""
    ids: list[str] = []
    categories = np.arange(count, dtype=np.int64) % len(CATEGORIES)
    for index in range(count):
        if index < len(RIDE_PRODUCTS) and count >= 4 * len(RIDE_PRODUCTS):
            ids.append(RIDE_PRODUCTS[index])
        else:
            ids.append(f"dest-{CATEGORIES[categories[index]]}-{index:04d}")
    return ids, categories


def demo_world_build(config: DemoConfig) -> DemoWorld:
    """Draw the riders, the items and their hidden properties from the seed."""
    rng = np.random.default_rng(config.seed)
    item_ids, item_category = _item_ids(config.items)
    item_popularity = rng.lognormal(mean=0.0, sigma=1.0, size=config.items)
    item_popularity /= item_popularity.sum()
    # A sparse Dirichlet: most riders care about one to three categories.
    user_taste = rng.dirichlet(np.full(len(CATEGORIES), 0.25), size=config.users)
    user_activity = rng.lognormal(mean=0.0, sigma=1.0, size=config.users)
    user_activity /= user_activity.sum()
    user_ids = [f"rider-{index:06d}" for index in range(config.users)]
    return DemoWorld(item_ids, item_category, item_popularity, user_ids, user_taste, user_activity)


def _session_start(rng: np.random.Generator, end: datetime, days: int) -> datetime:
    day = int(rng.integers(0, days))
    hour = int(rng.choice(24, p=_HOUR_WEIGHTS / _HOUR_WEIGHTS.sum()))
    second = int(rng.integers(0, 3600))
    start_of_day = (end - timedelta(days=day)).replace(hour=0, minute=0, second=0, microsecond=0)
    moment = start_of_day + timedelta(hours=hour, seconds=second)
    # Every session lies within the last `days` days and ends before the anchor (a session lasts under 30 minutes).
    return max(min(moment, end - timedelta(minutes=30)), end - timedelta(days=days))


def _session_events(rng: np.random.Generator, world: DemoWorld, user: int, start: datetime) -> list[EventInput]:
    affinity = world.user_taste[user][world.item_category]
    personal = affinity * np.sqrt(world.item_popularity)
    personal /= personal.sum()
    views = int(rng.integers(1, 7))
    events: list[EventInput] = []
    moment = start
    user_id = world.user_ids[user]
    for _ in range(views):
        explore = rng.random() < DemoConfig.exploration
        item = int(rng.choice(len(world.item_ids), p=world.item_popularity if explore else personal))
        liking = float(affinity[item] * len(affinity) / (1.0 + affinity.max() * len(affinity)))
        item_id = world.item_ids[item]
        moment += timedelta(seconds=int(rng.integers(5, 90)))
        events.append(EventInput(type="view", user_id=user_id, item_id=item_id, ts=moment))
        if rng.random() < 0.25 + 0.6 * liking:
            moment += timedelta(seconds=int(rng.integers(5, 120)))
            events.append(EventInput(type="play", user_id=user_id, item_id=item_id, ts=moment))
            if rng.random() < 0.15 + 0.55 * liking:
                moment += timedelta(seconds=int(rng.integers(10, 300)))
                events.append(EventInput(type="book", user_id=user_id, item_id=item_id, ts=moment))
        elif rng.random() < 0.5:
            moment += timedelta(seconds=int(rng.integers(1, 20)))
            events.append(EventInput(type="skip", user_id=user_id, item_id=item_id, ts=moment))
    return events


def demo_events_generate(config: DemoConfig, *, end: datetime, chunk_size: int = 5000) -> Iterator[list[EventInput]]:
    """Yield exactly `config.events` events in chunks; the same config and end give the same events."""
    if end.tzinfo is None:
        raise ValueError("end must be timezone-aware")
    end = end.astimezone(UTC)
    world = demo_world_build(config)
    rng = np.random.default_rng(config.seed + 1)
    produced = 0
    chunk: list[EventInput] = []
    while produced < config.events:
        users = rng.choice(config.users, size=1024, p=world.user_activity)
        for user in users:
            session = _session_events(rng, world, int(user), _session_start(rng, end, config.days))
            session = session[: config.events - produced]
            chunk.extend(session)
            produced += len(session)
            if len(chunk) >= chunk_size or produced >= config.events:
                yield chunk
                chunk = []
            if produced >= config.events:
                return

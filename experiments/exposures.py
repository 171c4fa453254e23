"""Counting exposed and converted users from a time-ordered stream of events (pure Python).

A user is exposed in a variant when a `recommend` event for them falls in the window; the variant is the one logged
at exposure time. A user converts when, within the conversion window after one of their exposures, they make a
conversion event on one of the items recommended in that exposure. Users exposed in both variants are counted apart
and left out of the test.

Exposures and conversions arrive merged in time order, so only each user's exposures of the last conversion window
are held: memory follows the number of users, not the number of events.
"""

from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from heapq import merge

EXPOSURE = 0
CONVERSION = 1


@dataclass(frozen=True)
class Event:
    """One event of the merged stream; `kind` orders an exposure before a conversion at the same instant."""

    ts: datetime
    kind: int
    user_id: str
    variant: str = ""
    model_version: str = ""
    items: frozenset[str] = frozenset()
    item_id: str = ""


class _User:
    """Per-user state, kept small: tens of thousands of these live at once."""

    __slots__ = ("converted", "recent", "variants")

    def __init__(self) -> None:
        self.variants: frozenset[str] = frozenset()
        self.converted = False
        # (time, items) of this user's exposures within the last conversion window, oldest first.
        self.recent: list[tuple[datetime, frozenset[str]]] = []

    def forget_before(self, moment: datetime) -> None:
        if self.recent and self.recent[0][0] < moment:
            self.recent = [entry for entry in self.recent if entry[0] >= moment]


@dataclass(frozen=True)
class VariantCounts:
    exposed_users: int
    converted_users: int
    versions: dict[str, int]


@dataclass(frozen=True)
class ExposureCounts:
    control: VariantCounts
    treatment: VariantCounts
    users_in_both: int
    exposures: int
    conversions_seen: int


def merged(exposures: Iterable[Event], conversions: Iterable[Event]) -> Iterator[Event]:
    """Merge two time-ordered streams into one, exposures first on ties."""
    return merge(exposures, conversions, key=lambda event: (event.ts, event.kind))


def count_exposures(events: Iterable[Event], *, window: timedelta) -> ExposureCounts:
    """Exposed and converted users per variant, from a stream ordered by (ts, kind)."""
    users: dict[str, _User] = {}
    versions: dict[str, Counter[str]] = {"control": Counter(), "treatment": Counter()}
    exposures = conversions = 0
    for event in events:
        if event.kind == EXPOSURE:
            exposures += 1
            user = users.get(event.user_id)
            if user is None:
                user = users[event.user_id] = _User()
            if event.variant not in user.variants:
                user.variants = user.variants | {event.variant}
            if not user.converted:
                # Older exposures can no longer be converted on: keep only what the window still covers.
                user.forget_before(event.ts - window)
                user.recent.append((event.ts, event.items))
            versions.setdefault(event.variant, Counter())[event.model_version] += 1
            continue
        conversions += 1
        exposed = users.get(event.user_id)
        if exposed is None or exposed.converted:
            continue
        exposed.forget_before(event.ts - window)
        if any(event.item_id in items for _, items in exposed.recent):
            exposed.converted = True
            exposed.recent = []
    return ExposureCounts(
        control=_variant(users, versions, "control"),
        treatment=_variant(users, versions, "treatment"),
        users_in_both=sum(1 for user in users.values() if len(user.variants) > 1),
        exposures=exposures,
        conversions_seen=conversions,
    )


def _variant(users: dict[str, _User], versions: dict[str, Counter[str]], name: str) -> VariantCounts:
    only = [user for user in users.values() if user.variants == {name}]
    return VariantCounts(
        exposed_users=len(only),
        converted_users=sum(1 for user in only if user.converted),
        versions=dict(versions.get(name, Counter())),
    )

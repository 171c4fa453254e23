"""Counting exposed and converted users from a time-ordered stream of events (pure Python).

A user is exposed in a variant when a `recommend` event for them falls in the window; the variant is the one logged
at exposure time. A user converts when, within the conversion window after one of their exposures, they make a
conversion event on one of the items recommended in that exposure. Users exposed in both variants are counted apart
and left out of the test.

Exposures and conversions arrive merged in time order, so only the exposures of the last conversion window keep their
items; every other exposed user is one small int. Memory follows the number of users and the traffic of one conversion
window, not the number of events in the summary's window.
"""

from collections import Counter, deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from heapq import merge

from core.variants import CONTROL, TREATMENT

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


class _Flags:
    """Bits of a user's compact state: one int per exposed user is all that lives for the whole window."""

    CONTROL = 1
    TREATMENT = 2
    OTHER = 4
    CONVERTED = 8


_VARIANT_BITS = {CONTROL: _Flags.CONTROL, TREATMENT: _Flags.TREATMENT}
_VARIANTS_MASK = _Flags.CONTROL | _Flags.TREATMENT | _Flags.OTHER


class _Pending:
    """Exposures of the last conversion window that have not converted yet, in time order across all users.

    Only these carry their items; older ones are dropped as the stream's clock moves on, so what is held follows the
    traffic of one conversion window, whatever the length of the summary's window.
    """

    def __init__(self, window: timedelta) -> None:
        self._window = window
        self._queue: deque[tuple[datetime, str]] = deque()
        # Per user, oldest first; a list, as a user rarely has more than a few exposures pending.
        self._by_user: dict[str, list[tuple[datetime, tuple[str, ...]]]] = {}

    def add(self, ts: datetime, user_id: str, items: tuple[str, ...]) -> None:
        self._queue.append((ts, user_id))
        self._by_user.setdefault(user_id, []).append((ts, items))

    def expire(self, now: datetime) -> None:
        """Forget exposures that a conversion at `now` or later can no longer match."""
        horizon = now - self._window
        queue, by_user = self._queue, self._by_user
        while queue and queue[0][0] < horizon:
            _, user_id = queue.popleft()
            entries = by_user.get(user_id)
            if entries is None:  # the user converted and was forgotten already
                continue
            del entries[0]
            if not entries:
                del by_user[user_id]

    def matches(self, user_id: str, item_id: str) -> bool:
        return any(item_id in items for _, items in self._by_user.get(user_id, ()))

    def forget(self, user_id: str) -> None:
        self._by_user.pop(user_id, None)


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
    users: dict[str, int] = {}
    pending = _Pending(window)
    catalog: dict[str, str] = {}  # one string per item id, shared by every pending exposure that lists it
    versions: dict[str, Counter[str]] = {CONTROL: Counter(), TREATMENT: Counter()}
    exposures = conversions = 0
    for event in events:
        pending.expire(event.ts)
        flags = users.get(event.user_id, 0)
        if event.kind == EXPOSURE:
            exposures += 1
            users[event.user_id] = flags | _VARIANT_BITS.get(event.variant, _Flags.OTHER)
            if not flags & _Flags.CONVERTED:
                pending.add(event.ts, event.user_id, tuple(catalog.setdefault(item, item) for item in event.items))
            versions.setdefault(event.variant, Counter())[event.model_version] += 1
            continue
        conversions += 1
        if flags and not flags & _Flags.CONVERTED and pending.matches(event.user_id, event.item_id):
            users[event.user_id] = flags | _Flags.CONVERTED
            pending.forget(event.user_id)
    return ExposureCounts(
        control=_variant(users, versions, CONTROL),
        treatment=_variant(users, versions, TREATMENT),
        users_in_both=sum(1 for flags in users.values() if (flags & _VARIANTS_MASK).bit_count() > 1),
        exposures=exposures,
        conversions_seen=conversions,
    )


def _variant(users: dict[str, int], versions: dict[str, Counter[str]], name: str) -> VariantCounts:
    only = _VARIANT_BITS[name]
    exposed = converted = 0
    for flags in users.values():
        if flags & _VARIANTS_MASK == only:
            exposed += 1
            converted += bool(flags & _Flags.CONVERTED)
    return VariantCounts(exposed_users=exposed, converted_users=converted, versions=dict(versions.get(name, Counter())))

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
from collections.abc import Iterable, Iterator, Sequence
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
    # The experiment phase the exposure was served in (0: not tagged).
    phase: int = 0


class _Flags:
    """Bits of a user's compact state: one int per exposed user is all that lives for the whole window."""

    CONTROL = 1
    TREATMENT = 2
    OTHER = 4
    CONVERTED = 8
    # First exposed in an earlier phase of the experiment: left out of this phase entirely.
    EARLIER = 16
    # ... and exposed again in this one.
    RETURNED = 32


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
class Checkpoint:
    """The counts as they stood at `at`: (exposed users, converted users) per variant."""

    at: datetime
    control: tuple[int, int]
    treatment: tuple[int, int]


@dataclass(frozen=True)
class ExposureCounts:
    control: VariantCounts
    treatment: VariantCounts
    users_in_both: int
    exposures: int
    conversions_seen: int
    cumulative: list[Checkpoint]
    # Users exposed in this phase who were first exposed in an earlier one (not counted).
    users_from_earlier_phases: int = 0


class _Tally:
    """Users per state (variant bits and converted), kept current as flags change, so counts at any point are cheap."""

    _KEY = _VARIANTS_MASK | _Flags.CONVERTED

    def __init__(self) -> None:
        self.by_state: Counter[int] = Counter()

    def move(self, old: int, new: int) -> None:
        if old:
            self.by_state[old & self._KEY] -= 1
        self.by_state[new & self._KEY] += 1

    def arm(self, name: str) -> tuple[int, int]:
        only = _VARIANT_BITS[name]
        converted = self.by_state[only | _Flags.CONVERTED]
        return self.by_state[only] + converted, converted

    def in_both(self) -> int:
        return sum(n for state, n in self.by_state.items() if (state & _VARIANTS_MASK).bit_count() > 1)


def merged(exposures: Iterable[Event], conversions: Iterable[Event]) -> Iterator[Event]:
    """Merge two time-ordered streams into one, exposures first on ties."""
    return merge(exposures, conversions, key=lambda event: (event.ts, event.kind))


class _Counts:
    """The state of one pass over the stream: users' flags, their tally and the pending exposures."""

    def __init__(self, window: timedelta, phase: int | None) -> None:
        self.phase = phase
        self.users: dict[str, int] = {}
        self.tally = _Tally()
        self.pending = _Pending(window)
        self.catalog: dict[str, str] = {}  # one string per item id, shared by every pending exposure that lists it
        self.versions: dict[str, Counter[str]] = {CONTROL: Counter(), TREATMENT: Counter()}
        self.exposures = self.conversions = 0

    def _set(self, user_id: str, old: int, new: int) -> None:
        self.users[user_id] = new
        self.tally.move(old, new)

    def exposure(self, event: Event, flags: int) -> None:
        if self.phase is not None and event.phase != self.phase:
            if not flags and event.phase < self.phase:
                self.users[event.user_id] = _Flags.EARLIER
            return
        self.exposures += 1
        new = flags | _VARIANT_BITS.get(event.variant, _Flags.OTHER)
        if new != flags:
            self._set(event.user_id, flags, new)
        if not flags & _Flags.CONVERTED:
            items = tuple(self.catalog.setdefault(item, item) for item in event.items)
            self.pending.add(event.ts, event.user_id, items)
        self.versions.setdefault(event.variant, Counter())[event.model_version] += 1

    def conversion(self, event: Event, flags: int) -> None:
        self.conversions += 1
        if flags and not flags & _Flags.CONVERTED and self.pending.matches(event.user_id, event.item_id):
            self._set(event.user_id, flags, flags | _Flags.CONVERTED)
            self.pending.forget(event.user_id)

    def checkpoint(self, at: datetime) -> Checkpoint:
        return Checkpoint(at, self.tally.arm(CONTROL), self.tally.arm(TREATMENT))


def count_exposures(
    events: Iterable[Event],
    *,
    window: timedelta,
    phase: int | None = None,
    checkpoints: Sequence[datetime] = (),
) -> ExposureCounts:
    """Exposed and converted users per variant, from a stream ordered by (ts, kind).

    With `phase`, only exposures tagged with that phase count, and a user whose first exposure in the stream was
    tagged with an earlier phase is left out: they were assigned under another split. `checkpoints` (ascending)
    record the counts as they stood at each of those times.
    """
    counts = _Counts(window, phase)
    marks = deque(checkpoints)
    cumulative: list[Checkpoint] = []
    for event in events:
        while marks and marks[0] <= event.ts:
            cumulative.append(counts.checkpoint(marks.popleft()))
        counts.pending.expire(event.ts)
        flags = counts.users.get(event.user_id, 0)
        if flags & _Flags.EARLIER:
            if event.kind == EXPOSURE and event.phase == phase:
                counts.users[event.user_id] = flags | _Flags.RETURNED
            continue
        if event.kind == EXPOSURE:
            counts.exposure(event, flags)
        else:
            counts.conversion(event, flags)
    cumulative += [counts.checkpoint(at) for at in marks]  # after the last event: the final counts
    return ExposureCounts(
        control=_variant(counts.tally, counts.versions, CONTROL),
        treatment=_variant(counts.tally, counts.versions, TREATMENT),
        users_in_both=counts.tally.in_both(),
        exposures=counts.exposures,
        conversions_seen=counts.conversions,
        cumulative=cumulative,
        users_from_earlier_phases=sum(1 for flags in counts.users.values() if flags & _Flags.RETURNED),
    )


def _variant(tally: _Tally, versions: dict[str, Counter[str]], name: str) -> VariantCounts:
    exposed, converted = tally.arm(name)
    return VariantCounts(exposed_users=exposed, converted_users=converted, versions=dict(versions.get(name, Counter())))

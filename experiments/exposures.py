"""Counting exposed and converted users from a time-ordered stream of events (pure Python).

A user is exposed in a variant when a `recommend` event for them falls in the window; the variant is the one logged
at exposure time. A user converts when, within the conversion window after one of their exposures, they make a
conversion event on one of the items recommended in that exposure. Users exposed in both variants are counted apart
and left out of the test.

Exposures and conversions arrive merged in time order, so only the exposures of the last conversion window keep their
items; every other exposed user is one small int (and, in a phase, one short list of their metric values). Memory
follows the number of users and the traffic of one conversion window, not the number of events in the summary's window.

A phase's tally can stop after any event and be saved as plain JSON-able values (`PhaseTally.state`), then restored and
fed the events that came after: the figures are those of one pass over the whole stream, so a look reads only the new
events (experiments/rollups.py stores the state).
"""

from collections import Counter, deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from heapq import merge
from typing import Any

from core.guardrails import LATENCY_BUCKETS, Moments, RequestStats, latency_bucket
from core.metrics import BOOKINGS_PER_USER, CONVERSION_24H, EVENT_METRIC_PREFIX, MODEL_ERROR, PLAYS_PER_USER
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
    # A conversion's event type; an exposure's answer latency and fallback reason ("" when none or not recorded).
    event_type: str = ""
    latency_ms: float | None = None
    fallback: str = ""


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
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)
BOOK, PLAY = "book", "play"
DAY = timedelta(days=1)


def micros(ts: datetime) -> int:
    """A time as whole microseconds since the epoch: exact, and plain JSON."""
    return (ts - EPOCH) // _MICROSECOND


def from_micros(value: int) -> datetime:
    return EPOCH + value * _MICROSECOND


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

    def state(self) -> list[list[Any]]:
        """[[time, user, items], ...]: a forgotten user is never added again, so each user's queue entries are
        exactly their list, and sorting by time restores the queue."""
        return [[micros(ts), user, list(items)] for user, entries in self._by_user.items() for ts, items in entries]

    def restore(self, entries: list[list[Any]], catalog: dict[str, str]) -> None:
        for value, user, items in sorted(entries, key=lambda entry: entry[0]):
            self.add(from_micros(value), user, tuple(catalog.setdefault(item, item) for item in items))


class _Recent:
    """Each not-yet-exposed user's conversion times of the last pre-period: CUPED's covariate at first exposure."""

    def __init__(self, period: timedelta) -> None:
        self._period = period
        self._queue: deque[tuple[datetime, str]] = deque()
        self._by_user: dict[str, int] = {}

    def add(self, ts: datetime, user_id: str) -> None:
        self._queue.append((ts, user_id))
        self._by_user[user_id] = self._by_user.get(user_id, 0) + 1

    def expire(self, now: datetime) -> None:
        horizon = now - self._period
        queue, by_user = self._queue, self._by_user
        while queue and queue[0][0] < horizon:
            _, user_id = queue.popleft()
            left = by_user.get(user_id, 0) - 1
            if left > 0:
                by_user[user_id] = left
            else:
                by_user.pop(user_id, None)

    def take(self, user_id: str) -> int:
        """The user's count, which then stops being kept (the queue's entries for them expire harmlessly)."""
        return self._by_user.pop(user_id, 0)

    def state(self) -> list[list[Any]]:
        # A taken user's entries may still be queued: keep only the newest `count` of each user's entries.
        left = dict(self._by_user)
        kept: list[list[Any]] = []
        for ts, user in reversed(self._queue):
            if left.get(user, 0) > 0:
                left[user] -= 1
                kept.append([micros(ts), user])
        return kept[::-1]

    def restore(self, entries: list[list[Any]]) -> None:
        for value, user in entries:
            self.add(from_micros(value), user)


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
    # Per arm, over the users counted: the primary conversion with its CUPED covariate, and each secondary metric.
    primary: dict[str, Moments] = field(default_factory=dict)
    secondary: dict[str, dict[str, Moments]] = field(default_factory=dict)
    # Per arm, over every answer of the phase: requests, errors, fallbacks and latencies.
    requests: dict[str, RequestStats] = field(default_factory=dict)


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


@dataclass(frozen=True)
class Rules:
    """What a phase counts: the primary conversion's rule, the secondary metrics and CUPED's pre-period.

    Conversions before `phase_start` only feed the pre-period; with no phase (an ad-hoc window) there is none. No
    `conversion_types`: every conversion in the stream is the primary's.
    """

    window: timedelta
    conversion_types: frozenset[str]
    phase: int | None = None
    phase_start: datetime | None = None
    secondary: tuple[str, ...] = ()
    pre_period: timedelta | None = None

    def event_types(self) -> list[str]:
        """Every event type the phase's conversion stream must carry."""
        types = set(self.conversion_types)
        for name in self.secondary:
            if name == BOOKINGS_PER_USER:
                types.add(BOOK)
            elif name == PLAYS_PER_USER:
                types.add(PLAY)
            elif name.startswith(EVENT_METRIC_PREFIX):
                types.add(name.removeprefix(EVENT_METRIC_PREFIX))
        return sorted(types)

    def event_metrics(self) -> list[str]:
        return [
            name.removeprefix(EVENT_METRIC_PREFIX) for name in self.secondary if name.startswith(EVENT_METRIC_PREFIX)
        ]


# A counted user's values in `PhaseTally.values`: first exposure (microseconds), pre-period conversions, bookings,
# plays, converted within 24 h (0/1), and one bit per `event:<type>` metric.
_FIRST, _PRE, _BOOKINGS, _PLAYS, _DAY, _EVENTS = range(6)
# Per arm: users, sum y, sum x, sum x^2, sum xy of the primary; then (sum, sum of squares) of each secondary metric.
_SUMS = 5


@dataclass(frozen=True)
class UserFacts:
    """One rider's events of a phase before some instant, summed by the database (experiments/rollup_pipeline.py):
    all that a pass over those events keeps of them."""

    user_id: str
    # First exposure in this phase or an earlier one, and in this phase (None: only in earlier ones).
    first_any: datetime
    first_here: datetime | None
    # First exposure in this phase per variant: CONTROL, TREATMENT, or "" for any other.
    first_by_variant: dict[str, datetime]
    # First primary conversion on an item of an exposure of the window before it.
    converted_at: datetime | None
    # Primary conversions of the pre-period before the first exposure here (CUPED's covariate).
    pre: int
    # From the first exposure here on: bookings, plays, a primary conversion within a day, the event types made.
    bookings: int
    plays: int
    within_day: bool
    event_types: frozenset[str]
    # Primary conversions in the phase from the first exposure in any phase on (not counted for an earlier rider).
    conversions_after_first_any: int

    @property
    def earlier(self) -> bool:
        return self.first_here is None or self.first_any < self.first_here


@dataclass(frozen=True)
class Answers:
    """Answers of one variant and model version with one fallback reason and latency bucket (None: not recorded)."""

    variant: str
    model_version: str
    fallback: str
    latency_bucket: int | None
    count: int


def _request_counts() -> list[Any]:
    return [0, 0, 0, [0] * LATENCY_BUCKETS]


class PhaseTally:
    """The state of one pass over a phase's stream: users' flags and values, their tally, the pending exposures,
    the pre-period's recent conversions and the answers' counts. Feed it events in (ts, kind) order."""

    def __init__(self, rules: Rules) -> None:
        self.rules = rules
        self.users: dict[str, int] = {}
        self.values: dict[str, list[int]] = {}
        self.tally = _Tally()
        self.pending = _Pending(rules.window)
        self.recent = _Recent(rules.pre_period) if rules.pre_period else None
        self.catalog: dict[str, str] = {}  # one string per item id, shared by every pending exposure that lists it
        self.versions: dict[str, Counter[str]] = {CONTROL: Counter(), TREATMENT: Counter()}
        self.requests: dict[str, list[Any]] = {CONTROL: _request_counts(), TREATMENT: _request_counts()}
        self.exposures = self.conversions = 0
        # The counts at the end of each day of the phase, as a daily look would have seen them; the next day's end.
        self.cumulative: list[Checkpoint] = []
        self.next_mark = rules.phase_start + DAY if rules.phase_start is not None else None
        self._event_bits = {kind: 1 << bit for bit, kind in enumerate(rules.event_metrics())}

    def feed(self, events: Iterable[Event]) -> None:
        phase, users, pending, recent = self.rules.phase, self.users, self.pending, self.recent
        for event in events:
            while self.next_mark is not None and self.next_mark <= event.ts:
                self.cumulative.append(self.checkpoint(self.next_mark))
                self.next_mark += DAY
            pending.expire(event.ts)
            if recent is not None:
                recent.expire(event.ts)
            flags = users.get(event.user_id, 0)
            if flags & _Flags.EARLIER:
                if event.kind == EXPOSURE and event.phase == phase:
                    users[event.user_id] = flags | _Flags.RETURNED
                continue
            if event.kind == EXPOSURE:
                self._exposure(event, flags)
            else:
                self._conversion(event, flags)

    def _set(self, user_id: str, old: int, new: int) -> None:
        self.users[user_id] = new
        self.tally.move(old, new)

    def _exposure(self, event: Event, flags: int) -> None:
        phase = self.rules.phase
        if phase is not None and event.phase != phase:
            if not flags and event.phase < phase:
                self.users[event.user_id] = _Flags.EARLIER
            return
        self.exposures += 1
        if not flags:
            pre = self.recent.take(event.user_id) if self.recent is not None else 0
            self.values[event.user_id] = [micros(event.ts), pre, 0, 0, 0, 0]
        new = flags | _VARIANT_BITS.get(event.variant, _Flags.OTHER)
        if new != flags:
            self._set(event.user_id, flags, new)
        if not flags & _Flags.CONVERTED:
            items = tuple(self.catalog.setdefault(item, item) for item in event.items)
            self.pending.add(event.ts, event.user_id, items)
        bucket = latency_bucket(event.latency_ms) if event.latency_ms is not None else None
        self._answers(Answers(event.variant, event.model_version, event.fallback, bucket, 1))

    def _answers(self, answers: "Answers") -> None:
        self.versions.setdefault(answers.variant, Counter())[answers.model_version] += answers.count
        counts = self.requests.get(answers.variant)
        if counts is not None:
            counts[0] += answers.count
            if answers.fallback == MODEL_ERROR:
                counts[1] += answers.count
            elif answers.fallback:
                counts[2] += answers.count
            if answers.latency_bucket is not None:
                counts[3][answers.latency_bucket] += answers.count

    def _conversion(self, event: Event, flags: int) -> None:
        rules = self.rules
        primary = not rules.conversion_types or event.event_type in rules.conversion_types
        if rules.phase_start is not None and event.ts < rules.phase_start:
            if primary and self.recent is not None:
                self.recent.add(event.ts, event.user_id)
            return
        if primary:
            self.conversions += 1
        if not flags:
            if primary and self.recent is not None:
                self.recent.add(event.ts, event.user_id)
            return
        if primary and not flags & _Flags.CONVERTED and self.pending.matches(event.user_id, event.item_id):
            self._set(event.user_id, flags, flags | _Flags.CONVERTED)
            self.pending.forget(event.user_id)
        values = self.values.get(event.user_id)
        if values is not None and rules.secondary:
            self._secondary(event, values, primary)

    def _secondary(self, event: Event, values: list[int], primary: bool) -> None:
        """A counted user's event after their first exposure, for the secondary metrics."""
        if event.event_type == BOOK:
            values[_BOOKINGS] += 1
        elif event.event_type == PLAY:
            values[_PLAYS] += 1
        if primary and not values[_DAY] and micros(event.ts) - values[_FIRST] <= DAY // _MICROSECOND:
            values[_DAY] = 1
        values[_EVENTS] |= self._event_bits.get(event.event_type, 0)

    def checkpoint(self, at: datetime) -> Checkpoint:
        return Checkpoint(at, self.tally.arm(CONTROL), self.tally.arm(TREATMENT))

    def counts(self, end: datetime | None = None) -> ExposureCounts:
        """The figures as they stand, with the day ends before `end`: those not reached by an event yet are read at
        the current counts (conversions after the phase's end may have passed some of its own: left out)."""
        cumulative = [point for point in self.cumulative if end is not None and point.at < end]
        mark = self.next_mark
        while mark is not None and end is not None and mark < end:
            cumulative.append(self.checkpoint(mark))
            mark += DAY
        primary, secondary = self._moments()
        return ExposureCounts(
            control=self._variant(CONTROL),
            treatment=self._variant(TREATMENT),
            users_in_both=self.tally.in_both(),
            exposures=self.exposures,
            conversions_seen=self.conversions,
            cumulative=cumulative,
            users_from_earlier_phases=sum(1 for flags in self.users.values() if flags & _Flags.RETURNED),
            primary=primary,
            secondary=secondary,
            requests={
                name: RequestStats(counts[0], counts[1], counts[2], tuple(counts[3]))
                for name, counts in self.requests.items()
            },
        )

    def _variant(self, name: str) -> VariantCounts:
        exposed, converted = self.tally.arm(name)
        return VariantCounts(exposed, converted, dict(self.versions.get(name, Counter())))

    def _moments(self) -> tuple[dict[str, Moments], dict[str, dict[str, Moments]]]:
        """Per arm: the primary's (conversion, pre-period conversions) sums and each secondary metric's sums."""
        names = list(self.rules.secondary)
        sums = {arm: [0.0] * (_SUMS + 2 * len(names)) for arm in (CONTROL, TREATMENT)}
        arms = {_Flags.CONTROL: sums[CONTROL], _Flags.TREATMENT: sums[TREATMENT]}
        extractors = [self._extractor(name) for name in names]
        for user_id, flags in self.users.items():
            row = arms.get(flags & _VARIANTS_MASK)
            if row is None:
                continue
            values = self.values[user_id]
            y, x = (1.0 if flags & _Flags.CONVERTED else 0.0), float(values[_PRE])
            row[0] += 1
            row[1] += y
            row[2] += x
            row[3] += x * x
            row[4] += x * y
            for index, extract in enumerate(extractors):
                value = extract(values)
                row[_SUMS + 2 * index] += value
                row[_SUMS + 1 + 2 * index] += value * value
        primary = {arm: Moments(int(r[0]), r[1], r[1], r[2], r[3], r[4]) for arm, r in sums.items()}
        secondary = {
            name: {arm: Moments(int(r[0]), r[_SUMS + 2 * i], r[_SUMS + 1 + 2 * i]) for arm, r in sums.items()}
            for i, name in enumerate(names)
        }
        return primary, secondary

    def _extractor(self, name: str) -> Callable[[list[int]], float]:
        if name == BOOKINGS_PER_USER:
            return lambda values: float(values[_BOOKINGS])
        if name == PLAYS_PER_USER:
            return lambda values: float(values[_PLAYS])
        if name == CONVERSION_24H:
            return lambda values: float(values[_DAY])
        bit = self._event_bits[name.removeprefix(EVENT_METRIC_PREFIX)]
        return lambda values: 1.0 if values[_EVENTS] & bit else 0.0

    def state(self) -> dict[str, Any]:
        """Everything the tally holds, as plain JSON-able values."""
        return {
            "users": self.users,
            "values": self.values,
            "pending": self.pending.state(),
            "recent": self.recent.state() if self.recent is not None else [],
            "versions": {name: dict(counter) for name, counter in self.versions.items()},
            "requests": self.requests,
            "exposures": self.exposures,
            "conversions": self.conversions,
            "nextMark": micros(self.next_mark) if self.next_mark is not None else None,
            "cumulative": [[micros(p.at), list(p.control), list(p.treatment)] for p in self.cumulative],
        }

    @classmethod
    def from_facts(  # noqa: PLR0913 - the parts of a pass's state, each from its own query
        cls,
        rules: Rules,
        *,
        until: datetime,
        users: Iterable[UserFacts],
        answers: Iterable[Answers],
        conversions: int,
        pending: Iterable[tuple[datetime, str, tuple[str, ...]]],
        recent: Iterable[tuple[datetime, str]],
    ) -> "PhaseTally":
        """The tally one pass over the phase's events before `until` leaves, from the database's sums of them:
        `conversions` counts every primary conversion of the phase, `pending` the phase's exposures of the last
        conversion window and `recent` the primary conversions of the last pre-period, all before `until`."""
        tally = cls(rules)
        changes: list[tuple[datetime, int, int]] = []
        for user in users:
            if user.earlier:
                tally.users[user.user_id] = _Flags.EARLIER | (_Flags.RETURNED if user.first_here else 0)
                conversions -= user.conversions_after_first_any
                continue
            tally._counted(user, changes)
        for group in answers:
            tally.exposures += group.count
            tally._answers(group)
        tally.conversions = conversions
        for ts, user_id, items in sorted(pending, key=lambda entry: entry[0]):
            flags = tally.users.get(user_id, 0)
            if flags and not flags & (_Flags.CONVERTED | _Flags.EARLIER):
                tally.pending.add(ts, user_id, tuple(tally.catalog.setdefault(item, item) for item in items))
        if tally.recent is not None:
            for ts, user_id in sorted(recent):
                if user_id not in tally.users:
                    tally.recent.add(ts, user_id)
        tally._checkpoints(changes, until)
        return tally

    def _counted(self, user: UserFacts, changes: list[tuple[datetime, int, int]]) -> None:
        """A rider counted in this phase: their flags and values, and when they entered, converted in and left an
        arm (a second variant), for the day ends' counts."""
        assert user.first_here is not None
        flags = 0
        for variant in user.first_by_variant:
            flags |= _VARIANT_BITS.get(variant, _Flags.OTHER)
        if user.converted_at is not None:
            flags |= _Flags.CONVERTED
        self._set(user.user_id, 0, flags)
        values = [micros(user.first_here), user.pre if self.recent is not None else 0, 0, 0, 0, 0]
        if self.rules.secondary:
            bits = 0
            for kind in user.event_types:
                bits |= self._event_bits.get(kind, 0)
            values[_BOOKINGS:] = [user.bookings, user.plays, int(user.within_day), bits]
        self.values[user.user_id] = values
        firsts = sorted((ts, _VARIANT_BITS.get(variant, _Flags.OTHER)) for variant, ts in user.first_by_variant.items())
        entered, arm = firsts[0]
        left = firsts[1][0] if len(firsts) > 1 else None
        if left is not None and left <= entered:
            return  # served two variants at once: never in one arm
        changes.append((entered, arm, 0))
        if left is not None:
            changes.append((left, arm, 2))
        if user.converted_at is not None and (left is None or user.converted_at < left):
            changes.append((user.converted_at, arm, 1))
            if left is not None:
                changes.append((left, arm, 3))

    def _checkpoints(self, changes: list[tuple[datetime, int, int]], until: datetime) -> None:
        """The day ends before `until` as a pass would have counted them: everything that happened before each."""
        if self.next_mark is None:
            return
        # Per arm bit: [exposed, converted]; a change (time, arm, what): 0 entered, 1 converted, 2 and 3 undo them.
        arms = {_Flags.CONTROL: [0, 0], _Flags.TREATMENT: [0, 0], _Flags.OTHER: [0, 0]}
        changes.sort(key=lambda change: change[0])
        index = 0
        while self.next_mark < until:
            while index < len(changes) and changes[index][0] < self.next_mark:
                _, arm, what = changes[index]
                arms[arm][what % 2] += -1 if what >= 2 else 1
                index += 1
            control, treatment = arms[_Flags.CONTROL], arms[_Flags.TREATMENT]
            self.cumulative.append(Checkpoint(self.next_mark, (control[0], control[1]), (treatment[0], treatment[1])))
            self.next_mark += DAY

    @classmethod
    def restore(cls, rules: Rules, state: dict[str, Any]) -> "PhaseTally":
        tally = cls(rules)
        tally.next_mark = from_micros(state["nextMark"]) if state["nextMark"] is not None else None
        tally.users = state["users"]
        for flags in tally.users.values():
            if not flags & _Flags.EARLIER:
                tally.tally.move(0, flags)
        tally.values = state["values"]
        tally.pending.restore(state["pending"], tally.catalog)
        if tally.recent is not None:
            tally.recent.restore(state["recent"])
        tally.versions = {name: Counter(counts) for name, counts in state["versions"].items()}
        tally.requests = state["requests"]
        tally.exposures, tally.conversions = state["exposures"], state["conversions"]
        tally.cumulative = [Checkpoint(from_micros(at), (c[0], c[1]), (t[0], t[1])) for at, c, t in state["cumulative"]]
        return tally


def count_exposures(
    events: Iterable[Event],
    *,
    window: timedelta,
    phase: int | None = None,
    conversion_types: frozenset[str] = frozenset(),
) -> ExposureCounts:
    """Exposed and converted users per variant, from a stream ordered by (ts, kind).

    With `phase`, only exposures tagged with that phase count, and a user whose first exposure in the stream was
    tagged with an earlier phase is left out: they were assigned under another split. Conversions of
    `conversion_types` (every one in the stream when empty) count.
    """
    tally = PhaseTally(Rules(window=window, conversion_types=conversion_types, phase=phase))
    tally.feed(events)
    return tally.counts()

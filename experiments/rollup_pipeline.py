"""A phase's per-user facts computed by the database in one aggregation: who was first exposed in the phase, in which
variants, and who converted, without the events leaving the server.

`$match` on the phase's exposures and primary conversions, `$setWindowFields` per rider (each conversion sees the
items of the rider's exposures of the last conversion window), then `$group` by rider: one document per rider
reaches the client (docs/SCALE.md: where a sharded cluster runs each stage). The facts are the
ones experiments/exposures.py `PhaseTally` reaches in one pass over the stream (the property tests hold them equal);
an exposure of an earlier phase at the very instant of the rider's first exposure in this one is the one case where
the stream's order, not time, decides.
"""

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from core.variants import CONTROL, TREATMENT
from experiments.rollups import PhaseStreams
from experiments.streams import TZ_AWARE
from recommendations.selectors import raw_event_collection


@dataclass(frozen=True)
class PhaseUser:
    """One exposed rider: their first exposure in the phase (None: exposed only in other phases), whether an earlier
    phase exposed them first (then they are left out), the variants they were served, and whether they converted."""

    user_id: str
    first_exposure: datetime | None
    earlier: bool
    variants: frozenset[str]
    converted: bool

    @property
    def counted(self) -> bool:
        return self.first_exposure is not None and not self.earlier


@dataclass(frozen=True)
class PhaseUserCounts:
    """(exposed, converted) users per arm, users served both, and users first exposed in an earlier phase."""

    control: tuple[int, int]
    treatment: tuple[int, int]
    users_in_both: int
    users_from_earlier_phases: int


def phase_users_pipeline(streams: PhaseStreams) -> list[dict[str, Any]]:
    rules = streams.rules
    phase = rules.phase or 0
    exposures = {
        "type": "recommend",
        "payload.experiment": streams.experiment,
        "ts": {"$gte": streams.exposures_from, "$lt": streams.exposures_to},
    }
    start = max(rules.phase_start or streams.conversions_from, streams.conversions_from)
    conversions = {
        "type": {"$in": sorted(rules.conversion_types)},
        "ts": {"$gte": start, "$lt": streams.conversions_to},
    }
    shape = {
        "userId": 1,
        "ts": 1,
        "itemId": 1,
        "exposure": {"$eq": ["$type", "recommend"]},
        "phase": {"$ifNull": ["$payload.phase", 0]},
        "variant": {"$ifNull": ["$payload.variant", ""]},
        "items": {"$ifNull": ["$payload.items", []]},
    }
    here = {"$and": ["$exposure", {"$eq": ["$phase", phase]}]}
    window_ms = int(rules.window.total_seconds() * 1000)
    # A conversion at t matches an exposure of this phase in [t - window, t] (an exposure first at the same instant).
    recent = {
        "$push": {"$cond": [here, "$items", []]},
        "window": {"range": [-window_ms, 0], "unit": "millisecond"},
    }
    listed = {"$map": {"input": "$recent", "as": "items", "in": {"$in": ["$itemId", "$$items"]}}}
    matched = {"$anyElementTrue": [listed]}
    group = {
        "_id": "$userId",
        "firstAny": {"$min": {"$cond": ["$exposure", "$ts", None]}},
        "firstHere": {"$min": {"$cond": [here, "$ts", None]}},
        "variants": {"$addToSet": {"$cond": [here, "$variant", None]}},
        "converted": {"$max": {"$and": [{"$not": ["$exposure"]}, matched]}},
    }
    return [
        {"$match": {"$or": [exposures, conversions]}},
        {"$project": shape},
        # Exposures of later phases play no part in this one.
        {"$match": {"$or": [{"exposure": False}, {"phase": {"$lte": phase}}]}},
        {"$setWindowFields": {"partitionBy": "$userId", "sortBy": {"ts": 1}, "output": {"recent": recent}}},
        {"$group": group},
        {"$match": {"firstAny": {"$ne": None}}},
    ]


def phase_users(streams: PhaseStreams, *, batch_size: int = 2_000) -> Iterator[PhaseUser]:
    """Every rider exposed in the experiment up to the phase, as the database computes them."""
    cursor = (
        raw_event_collection()
        .with_options(codec_options=TZ_AWARE)
        .aggregate(phase_users_pipeline(streams), allowDiskUse=True, batchSize=batch_size)
    )
    for document in cursor:
        first_any, first_here = document["firstAny"], document.get("firstHere")
        yield PhaseUser(
            user_id=document["_id"],
            first_exposure=first_here,
            earlier=first_here is None or first_any < first_here,
            variants=frozenset(variant for variant in document["variants"] if variant is not None),
            converted=bool(document["converted"]),
        )


def phase_user_counts(users: Iterator[PhaseUser]) -> PhaseUserCounts:
    """The phase's headline counts from its riders, as `PhaseTally.counts` gives them."""
    arms = {CONTROL: [0, 0], TREATMENT: [0, 0]}
    in_both = from_earlier = 0
    for user in users:
        if user.first_exposure is None:
            continue
        if user.earlier:
            from_earlier += 1
            continue
        if len(user.variants) > 1:
            in_both += 1
            continue
        (variant,) = user.variants
        if variant in arms:
            arms[variant][0] += 1
            arms[variant][1] += int(user.converted)
    return PhaseUserCounts(
        control=(arms[CONTROL][0], arms[CONTROL][1]),
        treatment=(arms[TREATMENT][0], arms[TREATMENT][1]),
        users_in_both=in_both,
        users_from_earlier_phases=from_earlier,
    )

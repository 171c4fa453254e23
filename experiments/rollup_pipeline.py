"""A phase's rollup rebuilt by the database: its events summed per rider, without the events leaving the server.

`$match` on the phase's exposures and conversions before the rebuild's instant, `$setWindowFields` per rider (each
conversion sees the items of the rider's exposures of the last conversion window, and the rider's first exposures),
then `$group` by rider: one document per rider reaches the client (docs/SCALE.md: where a sharded cluster runs each
stage). A second pipeline sums the answers per variant, model version, fallback and latency bucket. From these, and
the exposures and conversions of the last conversion window and pre-period, experiments/exposures.py
`PhaseTally.from_facts` builds the state a pass over every event would have left (the property tests hold the two
equal); looks then go on from it. An exposure of an earlier phase at the very instant of the rider's first exposure in
this one is the one case where the stream's order, not time, decides.
"""

from collections.abc import Iterator
from datetime import datetime
from typing import Any

from core.guardrails import LATENCY_EDGES_MS
from core.variants import CONTROL, TREATMENT
from experiments.exposures import Answers, PhaseTally, UserFacts
from experiments.streams import TZ_AWARE, PhaseStreams, conversion_stream, exposure_stream
from recommendations.selectors import raw_event_collection

DAY_MS = 86_400_000
BATCH = 2_000


def _exposures_match(streams: PhaseStreams, until: datetime) -> dict[str, Any]:
    return {
        "type": "recommend",
        "payload.experiment": streams.experiment,
        "ts": {"$gte": streams.exposures_from, "$lt": min(until, streams.exposures_to)},
    }


def _conversions_match(streams: PhaseStreams, until: datetime) -> dict[str, Any]:
    return {
        "type": {"$in": streams.rules.event_types()},
        "ts": {"$gte": streams.conversions_from, "$lt": min(until, streams.conversions_to)},
    }


def _shape() -> dict[str, Any]:
    return {
        "userId": 1,
        "ts": 1,
        "type": 1,
        "itemId": 1,
        "exposure": {"$eq": ["$type", "recommend"]},
        "phase": {"$ifNull": ["$payload.phase", 0]},
        "variant": {"$ifNull": ["$payload.variant", ""]},
        "items": {"$ifNull": ["$payload.items", []]},
    }


def _both(*conditions: Any) -> dict[str, Any]:
    return {"$and": list(conditions)}


def _first(condition: Any) -> dict[str, Any]:
    return {"$min": {"$cond": [condition, "$ts", None]}}


def _count(condition: Any) -> dict[str, Any]:
    return {"$sum": {"$cond": [condition, 1, 0]}}


def users_pipeline(streams: PhaseStreams, until: datetime) -> list[dict[str, Any]]:
    """One document per rider exposed in the experiment up to the phase, before `until`."""
    rules = streams.rules
    phase = rules.phase or 0
    here = _both("$exposure", {"$eq": ["$phase", phase]})
    conversion = {"$not": ["$exposure"]}
    primary = _both(conversion, {"$in": ["$type", sorted(rules.conversion_types)]})
    in_phase = {"$gte": ["$ts", rules.phase_start]} if rules.phase_start is not None else True
    # A conversion at the instant of an exposure comes after it (the stream's order).
    since_here = _both({"$ne": ["$firstHere", None]}, {"$gte": ["$ts", "$firstHere"]})
    since_any = _both({"$ne": ["$firstAny", None]}, {"$gte": ["$ts", "$firstAny"]})
    counted = _both(conversion, in_phase, since_here)
    window_ms = int(rules.window.total_seconds() * 1000)
    whole = {"documents": ["unbounded", "unbounded"]}
    output = {
        # A conversion at t matches an exposure of this phase in [t - window, t].
        "recent": {
            "$push": {"$cond": [here, "$items", []]},
            "window": {"range": [-window_ms, 0], "unit": "millisecond"},
        },
        "firstHere": {**_first(here), "window": whole},
        "firstAny": {**_first("$exposure"), "window": whole},
    }
    matched = {
        "$anyElementTrue": [{"$map": {"input": "$recent", "as": "items", "in": {"$in": ["$itemId", "$$items"]}}}]
    }
    pre: Any = False  # no pre-period: nothing counts
    if rules.pre_period is not None:
        pre_ms = int(rules.pre_period.total_seconds() * 1000)
        start = {"$subtract": ["$firstHere", pre_ms]}
        pre = _both(primary, {"$ne": ["$firstHere", None]}, {"$lt": ["$ts", "$firstHere"]}, {"$gte": ["$ts", start]})
    group = {
        "_id": "$userId",
        "firstAny": {"$min": "$firstAny"},
        "firstHere": {"$min": "$firstHere"},
        "firstControl": _first(_both(here, {"$eq": ["$variant", CONTROL]})),
        "firstTreatment": _first(_both(here, {"$eq": ["$variant", TREATMENT]})),
        "firstOther": _first(_both(here, {"$not": [{"$in": ["$variant", [CONTROL, TREATMENT]]}]})),
        "convertedAt": _first(_both(primary, in_phase, matched)),
        "pre": _count(pre),
        "bookings": _count(_both(counted, {"$eq": ["$type", "book"]})),
        "plays": _count(_both(counted, {"$eq": ["$type", "play"]})),
        "withinDay": {
            "$max": _both(primary, in_phase, since_here, {"$lte": [{"$subtract": ["$ts", "$firstHere"]}, DAY_MS]})
        },
        "types": {"$addToSet": {"$cond": [counted, "$type", None]}},
        "afterAny": _count(_both(primary, in_phase, since_any)),
    }
    return [
        {"$match": {"$or": [_exposures_match(streams, until), _conversions_match(streams, until)]}},
        {"$project": _shape()},
        # Exposures of later phases play no part in this one.
        {"$match": {"$or": [{"exposure": False}, {"phase": {"$lte": phase}}]}},
        {"$setWindowFields": {"partitionBy": "$userId", "sortBy": {"ts": 1}, "output": output}},
        {"$group": group},
        {"$match": {"firstAny": {"$ne": None}}},
    ]


def _bucket(latency: str) -> dict[str, Any]:
    """core.guardrails `latency_bucket` in the database: the logarithm's guess, corrected by the edges around it."""
    edges, last = list(LATENCY_EDGES_MS), len(LATENCY_EDGES_MS) - 1
    guess = {"$ceil": {"$multiply": [{"$add": [{"$log10": latency}, 2]}, 100]}}
    index = {"$min": [{"$max": [guess, 1]}, last]}
    corrected = {
        "$let": {
            "vars": {"i": index},
            "in": {
                "$switch": {
                    "branches": [
                        {
                            "case": {"$lte": [latency, {"$arrayElemAt": [edges, {"$subtract": ["$$i", 1]}]}]},
                            "then": {"$subtract": ["$$i", 1]},
                        },
                        {"case": {"$gt": [latency, {"$arrayElemAt": [edges, "$$i"]}]}, "then": {"$add": ["$$i", 1]}},
                    ],
                    "default": "$$i",
                }
            },
        }
    }
    return {
        "$switch": {
            "branches": [
                {"case": {"$not": [{"$isNumber": latency}]}, "then": None},
                {"case": {"$lte": [latency, edges[0]]}, "then": 0},
                {"case": {"$gt": [latency, edges[-1]]}, "then": last + 1},
            ],
            "default": corrected,
        }
    }


def answers_pipeline(streams: PhaseStreams, until: datetime) -> list[dict[str, Any]]:
    """The phase's answers to riders counted in it, per variant, model version, fallback and latency bucket."""
    phase = streams.rules.phase or 0
    whole = {"documents": ["unbounded", "unbounded"]}
    here = {"$eq": ["$phase", phase]}
    return [
        {"$match": _exposures_match(streams, until)},
        {
            "$project": {
                "userId": 1,
                "ts": 1,
                "phase": {"$ifNull": ["$payload.phase", 0]},
                "variant": {"$ifNull": ["$payload.variant", ""]},
                "version": {"$ifNull": ["$payload.modelVersion", ""]},
                "fallback": {"$ifNull": ["$payload.fallback", ""]},
                "latency": "$payload.latencyMs",
            }
        },
        {"$match": {"phase": {"$lte": phase}}},
        {
            "$setWindowFields": {
                "partitionBy": "$userId",
                "output": {
                    "firstAny": {"$min": "$ts", "window": whole},
                    "firstHere": {**_first(here), "window": whole},
                },
            }
        },
        # A rider first exposed in an earlier phase is left out, with every answer they got in this one.
        {"$match": {"$expr": _both(here, {"$eq": ["$firstAny", "$firstHere"]})}},
        {
            "$group": {
                "_id": {"v": "$variant", "m": "$version", "f": "$fallback", "b": _bucket("$latency")},
                "count": {"$sum": 1},
            }
        },
    ]


def _aggregate(pipeline: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    collection = raw_event_collection().with_options(codec_options=TZ_AWARE)
    yield from collection.aggregate(pipeline, allowDiskUse=True, batchSize=BATCH)


def user_facts(streams: PhaseStreams, until: datetime) -> Iterator[UserFacts]:
    """Every rider exposed in the experiment up to the phase before `until`, as the database sums them."""
    variants = {"firstControl": CONTROL, "firstTreatment": TREATMENT, "firstOther": ""}
    for document in _aggregate(users_pipeline(streams, until)):
        yield UserFacts(
            user_id=document["_id"],
            first_any=document["firstAny"],
            first_here=document.get("firstHere"),
            first_by_variant={name: document[field] for field, name in variants.items() if document.get(field)},
            converted_at=document.get("convertedAt"),
            pre=int(document["pre"]),
            bookings=int(document["bookings"]),
            plays=int(document["plays"]),
            within_day=bool(document["withinDay"]),
            event_types=frozenset(kind for kind in document["types"] if kind is not None),
            conversions_after_first_any=int(document["afterAny"]),
        )


def answers(streams: PhaseStreams, until: datetime) -> Iterator[Answers]:
    for document in _aggregate(answers_pipeline(streams, until)):
        key = document["_id"]
        bucket = key.get("b")
        yield Answers(
            str(key["v"]), str(key["m"]), str(key["f"]), None if bucket is None else int(bucket), document["count"]
        )


def _primary_conversions(streams: PhaseStreams, until: datetime) -> int:
    rules = streams.rules
    start = max(rules.phase_start or streams.conversions_from, streams.conversions_from)
    end = min(until, streams.conversions_to)
    if start >= end:
        return 0
    # One count per type: some servers answer `type: {$in: [...]}` with a collection scan.
    return sum(
        raw_event_collection().count_documents({"type": kind, "ts": {"$gte": start, "$lt": end}})
        for kind in sorted(rules.conversion_types)
    )


def rebuilt_tally(streams: PhaseStreams, until: datetime) -> PhaseTally:
    """The phase's tally as one pass over its events before `until` leaves it, computed by the database."""
    rules = streams.rules
    window_start = max(until - rules.window, streams.exposures_from)
    pending = (
        (event.ts, event.user_id, tuple(event.items))
        for event in exposure_stream(
            start=window_start, end=min(until, streams.exposures_to), experiment=streams.experiment
        )
        if event.phase == rules.phase
    )
    recent: Iterator[tuple[datetime, str]] = iter(())
    if rules.pre_period is not None:
        start = max(until - rules.pre_period, streams.conversions_from)
        types = sorted(rules.conversion_types)
        recent = (
            (event.ts, event.user_id)
            for event in conversion_stream(start=start, end=min(until, streams.conversions_to), types=types)
        )
    return PhaseTally.from_facts(
        rules,
        until=until,
        users=user_facts(streams, until),
        answers=answers(streams, until),
        conversions=_primary_conversions(streams, until),
        pending=pending,
        recent=recent,
    )

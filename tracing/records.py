"""The records tracing writes (a request's trace and exposure) and how a trace is re-keyed when its id is taken."""

import hashlib
from collections.abc import Iterable
from typing import Any

import bson
from bson import ObjectId
from bson.codec_options import CodecOptions
from bson.raw_bson import RawBSONDocument

TRACES = "prediction_traces"
# Decoding a queued record for the spool: datetimes come back as they went in (UTC, tz-aware).
_DECODE: CodecOptions[dict[str, Any]] = CodecOptions(tz_aware=True)
# A record waiting to be written: (collection, document); a queued request's records are still encoded.
Document = dict[str, Any] | RawBSONDocument
Record = tuple[str, Document]
# One request's records, as queued: (request id, trace BSON, exposure BSON).
Encoded = tuple[str, bytes, bytes]


def exposure_id(request_id: str) -> ObjectId:
    """A stable _id for a request's exposure event, so writing it twice is refused by the database itself."""
    return ObjectId(hashlib.sha256(f"exposure:{request_id}".encode()).digest()[:12])


def records_from_encoded(drained: Iterable[Encoded], exposures_collection: str) -> list[Record]:
    """Queued requests as the records to insert: their BSON goes to the database as it is."""
    records: list[Record] = []
    for _, trace, exposure in drained:
        records += [(TRACES, RawBSONDocument(trace)), (exposures_collection, RawBSONDocument(exposure))]
    return records


def trace_key(trace: Document) -> str:
    """The request id a trace is unique by."""
    return str(trace["requestId"])


def renamed_id(trace_id: ObjectId) -> str:
    """The id a trace takes when its request id turns out taken: derived from its own _id, so a replay of the same
    trace lands on the same id (and is refused as written) instead of writing it a second time."""
    return hashlib.sha256(f"renamed:{trace_id}".encode()).hexdigest()[:32]


def renamed_trace(trace: Document, renamed: dict[str, str]) -> dict[str, Any]:
    """A trace moved to its new request id, the id its client sent kept in its metadata."""
    document = plain_document(trace)
    given = document["requestId"]
    document["requestId"] = renamed[given]
    document["metadata"] = {
        **(document.get("metadata") or {}),
        "clientRequestId": given,
        "requestIdReplaced": "already used by another request, found when the trace was written",
    }
    return document


def renamed_exposure(event: Document, renamed: dict[str, str]) -> Document:
    """A renamed trace's exposure, moved to the new request id; every other event as it is."""
    given = (event.get("payload") or {}).get("requestId")
    if given not in renamed:
        return event
    document = plain_document(event)
    document["payload"] = {**document["payload"], "requestId": renamed[given]}
    document["_id"] = exposure_id(renamed[given])
    return document


def plain_document(document: Document) -> dict[str, Any]:
    """A record as a dict, e.g. for the spool's extended JSON."""
    if isinstance(document, RawBSONDocument):
        return bson.decode(document.raw, codec_options=_DECODE)
    return dict(document)

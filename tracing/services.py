"""Writes for prediction traces."""

from django.conf import settings
from django.db import connections

TRACE_COLLECTION = "prediction_traces"
TTL_INDEX_NAME = "traces_created_ttl"
_SECONDS_PER_DAY = 86_400


def prediction_trace_retention_apply(*, using: str = "default") -> int | None:
    """Make the TTL index on createdAt match TRACE_RETENTION_DAYS (0 keeps traces forever).

    Returns the expireAfterSeconds now in force, or None when traces never expire.
    """
    collection = connections[using].get_collection(TRACE_COLLECTION)  # type: ignore[attr-defined]
    days: int = settings.TRACE_RETENTION_DAYS
    wanted = days * _SECONDS_PER_DAY if days > 0 else None
    existing = collection.index_information().get(TTL_INDEX_NAME)
    if existing is not None and existing.get("expireAfterSeconds") == wanted:
        return wanted
    if existing is not None and wanted is not None and "expireAfterSeconds" in existing:
        # collMod changes the TTL in place, without rebuilding the index.
        collection.database.command(
            "collMod", TRACE_COLLECTION, index={"name": TTL_INDEX_NAME, "expireAfterSeconds": wanted}
        )
        return wanted
    if existing is not None:
        collection.drop_index(TTL_INDEX_NAME)
    if wanted is None:
        collection.create_index("createdAt", name=TTL_INDEX_NAME)
    else:
        collection.create_index("createdAt", name=TTL_INDEX_NAME, expireAfterSeconds=wanted)
    return wanted

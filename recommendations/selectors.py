"""Reads for user events."""

from recommendations.models import RawEvent


def raw_event_count() -> int:
    """How many events are stored."""
    return RawEvent.objects.count()


def raw_event_exists() -> bool:
    """Whether any event is stored (cheaper than counting)."""
    return RawEvent.objects.exists()

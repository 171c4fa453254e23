"""Reads about this process, for the health endpoint."""

import time

# Set when this module is first imported, which happens while Django starts (monitoring's URLs load it).
_STARTED_MONOTONIC = time.monotonic()


def process_uptime_seconds() -> float:
    """Seconds since this worker process loaded the application."""
    return time.monotonic() - _STARTED_MONOTONIC

"""One error type for the domain, and the one JSON error body every failure leaves as:
{"error", "message", "details"}."""

from typing import Any


class ApplicationError(Exception):
    """A domain error that carries a machine-readable code, a message for people, an HTTP status and the response
    headers that go with it (Allow for a 405, Retry-After for a 429)."""

    def __init__(
        self,
        code: str,
        message: str,
        *,
        status: int = 400,
        details: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status
        self.details = details or {}
        self.headers = headers or {}


def error_body(code: str, message: str, details: dict[str, Any] | None = None) -> dict[str, Any]:
    """Build the project's error body."""
    return {"error": code, "message": message, "details": details or {}}

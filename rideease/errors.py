"""Every failure leaves as the project's JSON error body: DRF's exception handler, Django's error views and the
request-size limit, wired in by the settings and the root URLconf."""

import logging
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from rest_framework import exceptions as drf_exceptions
from rest_framework.response import Response

from core.errors import ApplicationError, error_body

logger = logging.getLogger(__name__)


# DRF exception class -> (code, status). Order matters: subclasses first.
_DRF_CODES: list[tuple[type[drf_exceptions.APIException], str]] = [
    (drf_exceptions.ParseError, "malformed_json"),
    (drf_exceptions.ValidationError, "validation_error"),
    (drf_exceptions.NotAuthenticated, "authentication_required"),
    (drf_exceptions.AuthenticationFailed, "authentication_failed"),
    (drf_exceptions.PermissionDenied, "permission_denied"),
    (drf_exceptions.NotFound, "not_found"),
    (drf_exceptions.MethodNotAllowed, "method_not_allowed"),
    (drf_exceptions.NotAcceptable, "not_acceptable"),
    (drf_exceptions.UnsupportedMediaType, "unsupported_media_type"),
    (drf_exceptions.Throttled, "rate_limited"),
]


def _drf_error(exc: drf_exceptions.APIException) -> tuple[str, str, dict[str, Any]]:
    code = next((name for cls, name in _DRF_CODES if isinstance(exc, cls)), "bad_request")
    if isinstance(exc, drf_exceptions.ValidationError):
        detail = exc.detail if isinstance(exc.detail, dict) else {"non_field_errors": exc.detail}
        return code, "The request is invalid.", {"fields": detail}
    if isinstance(exc, drf_exceptions.ParseError):
        return code, f"The request body is not valid JSON: {exc.detail}", {}
    return code, str(exc.detail), {}


def api_exception_handler(exc: Exception, context: dict[str, Any]) -> Response:
    """DRF exception handler: every error, expected or not, leaves as the project's JSON body."""
    if isinstance(exc, ApplicationError):
        return Response(error_body(exc.code, exc.message, exc.details), status=exc.status, headers=exc.headers)
    if isinstance(exc, Http404):
        return Response(error_body("not_found", "The requested object does not exist."), status=404)
    if isinstance(exc, DjangoPermissionDenied):
        return Response(error_body("permission_denied", "You may not do this."), status=403)
    if isinstance(exc, drf_exceptions.APIException):
        code, message, details = _drf_error(exc)
        response = Response(error_body(code, message, details), status=exc.status_code)
        wait = getattr(exc, "wait", None)
        if isinstance(exc, drf_exceptions.Throttled) and wait is not None:
            response["Retry-After"] = str(int(wait))
        return response
    # An unexpected failure: log the traceback for operators, never send it to the client.
    logger.exception("Unhandled error in %s", context.get("view").__class__.__name__)
    return Response(error_body("internal_error", "An unexpected error occurred."), status=500)


def _json_view(code: str, message: str, status: int) -> Callable[..., HttpResponse]:
    def view(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
        return JsonResponse(error_body(code, message), status=status)

    return view


# Django-level handlers for URLs outside DRF views (unknown routes, crashes before a view runs).
not_found_view = _json_view("not_found", "No such endpoint.", 404)
bad_request_view = _json_view("bad_request", "The request could not be understood.", 400)
permission_denied_view = _json_view("permission_denied", "You may not do this.", 403)


def server_error_view(request: HttpRequest) -> HttpResponse:
    return JsonResponse(error_body("internal_error", "An unexpected error occurred."), status=500)


class RequestSizeLimitMiddleware:
    """Refuse bodies above MAX_REQUEST_BODY_BYTES with 413 before anything reads them.

    DRF's JSON parser reads the stream directly and so bypasses Django's own DATA_UPLOAD_MAX_MEMORY_SIZE check.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        try:
            length = int(request.META.get("CONTENT_LENGTH") or 0)
        except ValueError:
            return JsonResponse(error_body("bad_request", "Content-Length is not a number."), status=400)
        if limit is not None and length > limit:
            message = f"The request body is {length} bytes; the limit is {limit} bytes."
            return JsonResponse(error_body("payload_too_large", message, {"limitBytes": limit}), status=413)
        return self.get_response(request)

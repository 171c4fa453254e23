"""Error answers for views that run outside DRF's request cycle, and the errors that mean "the database is down"."""

import logging

from django.db import DatabaseError
from django.http import JsonResponse
from pymongo.errors import PyMongoError

from core.errors import ApplicationError, error_body

logger = logging.getLogger(__name__)
# The database being unreachable surfaces as pymongo's errors, or as Django's DatabaseError when the ORM wraps them.
DATABASE_ERRORS: tuple[type[Exception], ...] = (PyMongoError, DatabaseError)


def error_response(exc: ApplicationError) -> JsonResponse:
    """An ApplicationError as the project's error body, for views answered outside DRF's request cycle."""
    return JsonResponse(error_body(exc.code, exc.message, exc.details), status=exc.status, headers=exc.headers)


def unexpected_error_response(where: str) -> JsonResponse:
    """Log the traceback of the exception being handled for operators; tell the client only that it failed."""
    logger.exception("Unhandled error in %s", where)
    return JsonResponse(error_body("internal_error", "An unexpected error occurred."), status=500)

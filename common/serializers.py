"""Serializer fields every app's API shares."""

import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import datetime
from typing import Any

from rest_framework import serializers

from core.errors import ApplicationError


class IsoDateTimeField(serializers.DateTimeField):
    """A datetime as Python's isoformat() writes it (UTC as +00:00), the form the whole API uses."""

    def to_representation(self, value: datetime) -> str:
        return value.isoformat()


def query_parse(serializer: type[serializers.Serializer], data: Mapping[str, Any]) -> dict[str, Any]:
    """Validated values of a query (or a command's arguments); its first refusal is the error's message."""
    query = serializer(data=data)
    if not query.is_valid():
        first = next(iter(query.errors.values()))[0]
        raise ApplicationError("validation_error", str(first), details={"fields": query.errors})
    return dict(query.validated_data)


def body_parse(serializer: type[serializers.Serializer], data: object, *, partial: bool = False) -> dict[str, Any]:
    """Validated values of a JSON body: a JSON object with only the serializer's fields (by their API names)."""
    if not isinstance(data, Mapping):
        raise ApplicationError("validation_error", "The body must be a JSON object.")
    unknown = sorted(set(data) - set(serializer().fields))
    if unknown:
        raise ApplicationError("validation_error", "Unknown fields.", details={"fields": unknown})
    body = serializer(data=data, partial=partial)
    if not body.is_valid():
        first = next(iter(body.errors.values()))[0]
        raise ApplicationError("validation_error", str(first), details={"fields": body.errors})
    return dict(body.validated_data)


@contextmanager
def api_field_names(serializer: type[serializers.Serializer]) -> Iterator[None]:
    """A service's refusal in the API's words: the fields it names by their model names (`relative_mde`) are renamed
    to the serializer's (`relativeMde`), in `details.fields` and in the message."""
    try:
        yield
    except ApplicationError as exc:
        names = {
            field.source: name
            for name, field in serializer().fields.items()
            if isinstance(field.source, str) and field.source not in (name, "*")
        }
        if names:
            pattern = re.compile(r"\b(" + "|".join(map(re.escape, names)) + r")\b")
            exc.message = pattern.sub(lambda match: names[match.group(1)], exc.message)
            fields = exc.details.get("fields")
            if isinstance(fields, Mapping):
                exc.details["fields"] = {names.get(name, name): error for name, error in fields.items()}
            elif isinstance(fields, list):
                exc.details["fields"] = [names.get(name, name) for name in fields]
        raise

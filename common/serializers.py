"""Serializer fields every app's API shares."""

from datetime import datetime

from rest_framework import serializers


class IsoDateTimeField(serializers.DateTimeField):
    """A datetime as Python's isoformat() writes it (UTC as +00:00), the form the whole API uses."""

    def to_representation(self, value: datetime) -> str:
        return value.isoformat()

"""The recommendations API's request and response shapes, for the OpenAPI schema.

Input is validated by recommendations.events and recommendations.queries (hand-written and fast); these serializers
describe the same rules for clients and for the schema, and the fuzzing test holds responses to them.
"""

from drf_spectacular.utils import PolymorphicProxySerializer, inline_serializer
from rest_framework import serializers

from core.variants import VARIANTS
from recommendations.events import EVENT_TYPES, MAX_ID_LENGTH
from recommendations.queries import DEFAULT_LIMIT, MAX_LIMIT
from tracing.serializers import RecommendedItemSerializer


class EventInputSerializer(serializers.Serializer):
    """One user event."""

    eventId = serializers.CharField(
        max_length=MAX_ID_LENGTH,
        required=False,
        help_text="The client's id for the event: an event whose id is already stored is not stored again. Without "
        "one, the id is derived from the event's content and its index in the batch (and its arrival time when it "
        "has no ts), so a retried batch is stored once.",
    )
    type = serializers.ChoiceField(choices=EVENT_TYPES)
    userId = serializers.CharField(max_length=MAX_ID_LENGTH)
    itemId = serializers.CharField(
        max_length=MAX_ID_LENGTH, required=False, allow_null=True, help_text="Required for view, play, book, skip."
    )
    ts = serializers.DateTimeField(
        required=False, help_text="ISO-8601 with a timezone, not more than a few minutes in the future; default: now."
    )
    payload = serializers.DictField(required=False, help_text="Free-form, at most EVENT_MAX_PAYLOAD_BYTES as JSON.")


EVENTS_REQUEST = PolymorphicProxySerializer(
    component_name="EventOrBatch",
    serializers=[EventInputSerializer, EventInputSerializer(many=True)],
    resource_type_field_name=None,
    many=False,
)


# "errors" would shadow Serializer.errors as a class attribute: the fields are given as a mapping.
EventRejectionSerializer = inline_serializer(
    "EventRejection",
    fields={
        "index": serializers.IntegerField(help_text="Position of the event in the batch (0 for a single event)."),
        "errors": serializers.DictField(child=serializers.CharField(), help_text="Field name -> why it was refused."),
    },
)


class EventIngestOutputSerializer(serializers.Serializer):
    stored = serializers.IntegerField(help_text="Events written now.")
    duplicates = serializers.IntegerField(help_text="Events whose eventId was already stored: not written again.")
    rejected = serializers.ListField(child=EventRejectionSerializer)


class RecommendationInputSerializer(serializers.Serializer):
    """The request, as a JSON body (POST) or as query parameters (GET)."""

    userId = serializers.CharField(max_length=MAX_ID_LENGTH)
    limit = serializers.IntegerField(min_value=1, max_value=MAX_LIMIT, default=DEFAULT_LIMIT, required=False)


class RecommendationOutputSerializer(serializers.Serializer):
    requestId = serializers.CharField()
    userId = serializers.CharField()
    variant = serializers.ChoiceField(choices=VARIANTS)
    modelVersion = serializers.CharField()
    dataSnapshotId = serializers.CharField()
    recommendations = RecommendedItemSerializer(many=True)
    servedAt = serializers.DateTimeField()

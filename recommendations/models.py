"""User events: the raw signal the recommender learns from and the experiments measure."""

from django.db import models


class EventType(models.TextChoices):
    RECOMMEND = "recommend", "recommend (an exposure)"
    VIEW = "view", "view"
    PLAY = "play", "play"
    BOOK = "book", "book (a conversion)"
    SKIP = "skip", "skip"


class RawEvent(models.Model):
    """One user event, stored in `raw_events` with the blueprint's field names."""

    # The client's eventId, or one derived from the event's content and position; unique where present (events
    # stored before ids existed have none), so a re-sent batch or a re-imported file is not stored twice.
    event_id = models.CharField(max_length=128, null=True, blank=True, db_column="eventId")  # noqa: DJ001
    type = models.CharField(max_length=16, choices=EventType.choices)
    user_id = models.CharField(max_length=128, db_column="userId")
    # null, not "": the event concerns no item (an exposure lists its items in the payload instead).
    item_id = models.CharField(max_length=128, null=True, blank=True, db_column="itemId")  # noqa: DJ001
    ts = models.DateTimeField()
    payload = models.JSONField(default=dict, blank=True)
    received_at = models.DateTimeField(db_column="receivedAt")

    class Meta:
        db_table = "raw_events"
        ordering = ["-ts"]
        indexes = [
            # Training and the experiment summary read a time window, per type.
            models.Index(fields=["type", "ts"], name="raw_events_type_ts"),
            # Conversions and per-user history are looked up by user within a window.
            models.Index(fields=["user_id", "ts"], name="raw_events_user_ts"),
            models.Index(fields=["ts"], name="raw_events_ts"),
        ]

    def __str__(self) -> str:
        return f"{self.type} {self.user_id} {self.item_id or ''} @ {self.ts:%Y-%m-%d %H:%M:%S}"

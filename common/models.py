"""Named API keys: stored only as a hash of the key, with a scope, who made them, when last used and when revoked."""

from django.db import models


class KeyScope(models.TextChoices):
    ADMIN = "admin", "admin (everything: /admin/*, experiment changes, /traces/*, /events)"
    TRACES = "traces", "traces (read /traces/*)"
    EVENTS = "events", "events (write /events when EVENTS_REQUIRE_API_KEY is on)"


class ApiKey(models.Model):
    """One API key. The key itself is shown once at creation and never stored; `prefix` tells keys apart."""

    name = models.CharField(max_length=64, unique=True)
    scope = models.CharField(max_length=16, choices=KeyScope.choices)
    key_hash = models.CharField(max_length=64, unique=True, db_column="keyHash")
    prefix = models.CharField(max_length=16)
    created_at = models.DateTimeField(db_column="createdAt")
    created_by = models.CharField(max_length=150, db_column="createdBy")
    last_used_at = models.DateTimeField(null=True, blank=True, db_column="lastUsedAt")
    revoked_at = models.DateTimeField(null=True, blank=True, db_column="revokedAt")
    revoked_by = models.CharField(max_length=150, blank=True, default="", db_column="revokedBy")

    class Meta:
        db_table = "api_keys"
        ordering = ["name"]
        verbose_name = "API key"

    def __str__(self) -> str:
        return f"{self.name} ({self.scope}{', revoked' if self.revoked_at else ''})"

"""Tracing: the provenance record of every served prediction."""

from typing import Any

from django.apps import AppConfig
from django.db.models.signals import post_migrate


def _apply_retention(sender: AppConfig, using: str = "default", **kwargs: Any) -> None:
    from tracing.services import prediction_trace_retention_apply

    prediction_trace_retention_apply(using=using)


class TracingConfig(AppConfig):
    name = "tracing"
    verbose_name = "Prediction traces"

    def ready(self) -> None:
        # The TTL comes from TRACE_RETENTION_DAYS, which can change between deploys; migrate re-applies it each time.
        post_migrate.connect(_apply_retention, sender=self, dispatch_uid="tracing.retention")

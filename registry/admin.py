"""Admin pages for model versions, the serving state and its history (read-only; changes go through services)."""

from django.contrib import admin

from registry.models import ModelVersion, ServingState, ServingStateChange
from rideease.admin_base import ReadOnlyModelAdmin


@admin.register(ModelVersion)
class ModelVersionAdmin(ReadOnlyModelAdmin):
    list_display = ["version", "model_name", "status", "algorithm", "trained_at", "created_at"]
    list_filter = ["status", "algorithm"]
    search_fields = ["=version"]


@admin.register(ServingState)
class ServingStateAdmin(ReadOnlyModelAdmin):
    list_display = ["experiment", "control_version", "treatment_version", "treatment_share", "revision", "updated_at"]


@admin.register(ServingStateChange)
class ServingStateChangeAdmin(ReadOnlyModelAdmin):
    list_display = ["revision", "changed_at", "actor", "action", "target", "reason"]
    list_filter = ["action", "target"]

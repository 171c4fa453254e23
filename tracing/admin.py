"""Admin page for prediction traces (read-only: they are evidence)."""

from django.contrib import admin

from common.admin_base import ReadOnlyModelAdmin
from tracing.models import PredictionTrace


@admin.register(PredictionTrace)
class PredictionTraceAdmin(ReadOnlyModelAdmin):
    list_display = ["request_id", "created_at", "user_id", "variant", "model_version", "latency_ms"]
    list_filter = ["variant"]
    search_fields = ["=request_id", "=user_id"]
    show_full_result_count = False

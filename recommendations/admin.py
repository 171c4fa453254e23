"""Admin pages for user events (read-only: events come in through the API and import_events)."""

from django.contrib import admin

from common.admin_base import ReadOnlyModelAdmin
from recommendations.models import RawEvent


@admin.register(RawEvent)
class RawEventAdmin(ReadOnlyModelAdmin):
    list_display = ["ts", "type", "user_id", "item_id"]
    list_filter = ["type"]
    search_fields = ["=user_id", "=item_id"]
    date_hierarchy = None
    show_full_result_count = False

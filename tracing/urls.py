"""URLs of the tracing app."""

from django.urls import path

from tracing.apis import TraceDetailApi

urlpatterns = [
    path("traces/<str:request_id>", TraceDetailApi.as_view(), name="trace-detail"),
]

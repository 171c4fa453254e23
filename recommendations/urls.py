"""URLs of the recommendations app."""

from django.urls import path

from recommendations.apis import EventIngestApi

urlpatterns = [
    path("events", EventIngestApi.as_view(), name="events"),
]

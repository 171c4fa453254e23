"""URLs of the recommendations app."""

from django.urls import path

from recommendations.apis import EventIngestApi, RecommendationApi

urlpatterns = [
    path("events", EventIngestApi.as_view(), name="events"),
    path("recommendations", RecommendationApi.as_view(), name="recommendations"),
]

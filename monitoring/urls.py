"""URLs of the monitoring app."""

from django.urls import path

from monitoring.apis import HealthzApi, ReadyzApi

urlpatterns = [
    path("healthz", HealthzApi.as_view(), name="healthz"),
    path("readyz", ReadyzApi.as_view(), name="readyz"),
]

"""The project's URLs plus a bare Django JSON view: the serving benchmark's floor, served by the same app."""

from django.http import HttpRequest, JsonResponse
from django.urls import path

from rideease.urls import urlpatterns as project_urlpatterns


def bare_json(request: HttpRequest) -> JsonResponse:
    """No DRF, no database, no model: what any JSON answer of this app costs at least."""
    return JsonResponse({"status": "ok"})


urlpatterns = [path("bench/bare", bare_json), *project_urlpatterns]

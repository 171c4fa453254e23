"""Liveness and readiness endpoints."""

import hmac
import os
from typing import Any

from django.conf import settings
from django.http import HttpResponse, JsonResponse
from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest, multiprocess
from rest_framework.renderers import BaseRenderer
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from common.negotiation import SingleRepresentation
from common.schema import ErrorSerializer
from core.errors import error_body
from monitoring.metrics import UptimeCollector, scrape_collectors
from monitoring.readiness import readiness_checks
from monitoring.selectors import process_uptime_seconds
from monitoring.serializers import HealthSerializer, ReadinessSerializer


class HealthzApi(APIView):
    """GET /healthz: the process is up. Makes no database call, so an outage never restarts healthy workers."""

    @extend_schema(operation_id="healthz", summary="Liveness", responses={200: HealthSerializer}, tags=["health"])
    def get(self, request: Request) -> Response:
        return Response(
            {
                "status": "ok",
                "version": settings.APP_VERSION,
                "uptimeSeconds": round(process_uptime_seconds(), 3),
                "time": timezone.now().isoformat(),
            }
        )


class ReadyzApi(APIView):
    """GET /readyz: 200 when every dependency answers, else 503 with the failing checks."""

    @extend_schema(
        operation_id="readyz",
        summary="Readiness: the database answers and a model is loaded",
        responses={
            200: ReadinessSerializer,
            503: OpenApiResponse(ErrorSerializer, description="Not ready; `details.checks` says which check failed."),
        },
        tags=["health"],
    )
    def get(self, request: Request) -> Response:
        checks = readiness_checks()
        ready = all(check.ok for check in checks)
        body: dict[str, object] = {
            "status": "ready" if ready else "unavailable",
            "checks": {check.name: {"ok": check.ok, "detail": check.detail} for check in checks},
        }
        if not ready:
            failing = ", ".join(check.detail for check in checks if not check.ok)
            body = {"error": "not_ready", "message": f"Not ready: {failing}.", "details": body}
        return Response(body, status=200 if ready else 503)


class PrometheusTextRenderer(BaseRenderer):
    """Passes the exposition text through: the view renders it itself."""

    media_type = "text/plain"
    format = "txt"
    charset = "utf-8"

    def render(self, data: Any, accepted_media_type: str | None = None, renderer_context: Any = None) -> Any:
        return data


class MetricsApi(APIView):
    """GET /metrics: every worker's metrics merged (multiprocess mode under gunicorn), plus uptime and freshness.

    With METRICS_TOKEN set, a scrape must send `Authorization: Bearer <token>` (compared in constant time).
    """

    renderer_classes = [PrometheusTextRenderer]
    content_negotiation_class = SingleRepresentation
    # The bearer token is optional: required only when METRICS_TOKEN is set.
    openapi_security: list[dict[str, list[str]]] = [{"MetricsToken": []}, {}]

    @extend_schema(
        operation_id="metrics",
        summary="Prometheus metrics",
        responses={
            (200, "text/plain"): OpenApiResponse(OpenApiTypes.STR, description="The Prometheus text format."),
            (401, "application/json"): OpenApiResponse(
                ErrorSerializer, description="METRICS_TOKEN is set and the bearer token is wrong."
            ),
        },
        tags=["health"],
    )
    def get(self, request: Request) -> HttpResponse:
        token: str = settings.METRICS_TOKEN
        if token:
            given = request.META.get("HTTP_AUTHORIZATION", "")
            if not hmac.compare_digest(given.encode(), f"Bearer {token}".encode()):
                body = error_body("authentication_failed", "A valid bearer token is required.")
                return JsonResponse(body, status=401)
        registry = CollectorRegistry()
        if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
            multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        else:
            registry.register(REGISTRY)
        registry.register(UptimeCollector())
        for collector in scrape_collectors():
            registry.register(collector)
        return HttpResponse(generate_latest(registry), content_type=CONTENT_TYPE_LATEST)

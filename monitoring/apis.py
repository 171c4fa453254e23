"""Liveness and readiness endpoints."""

from django.conf import settings
from django.utils import timezone
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from monitoring.selectors import process_uptime_seconds, readiness_checks


class HealthzApi(APIView):
    """GET /healthz: the process is up. Makes no database call, so an outage never restarts healthy workers."""

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

"""Monitoring: health and readiness endpoints, metrics, the dashboard, alert rules and the runbook."""

from django.apps import AppConfig


class MonitoringConfig(AppConfig):
    name = "monitoring"
    verbose_name = "Monitoring"

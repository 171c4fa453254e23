"""Registry: model versions, their artifacts, the serving state and its history."""

from django.apps import AppConfig


class RegistryConfig(AppConfig):
    name = "registry"
    verbose_name = "Model registry and serving state"

    def ready(self) -> None:
        from monitoring.metrics import scrape_collector_register
        from registry.metrics import TrainingFreshnessCollector

        scrape_collector_register(TrainingFreshnessCollector())

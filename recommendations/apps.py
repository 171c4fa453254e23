"""Recommendations: the serving endpoint, the user events it learns from and the training runs."""

from django.apps import AppConfig


class RecommendationsConfig(AppConfig):
    name = "recommendations"
    verbose_name = "Recommendations and user events"

    def ready(self) -> None:
        from monitoring.readiness import readiness_check_register
        from recommendations.runtime import serving_readiness

        readiness_check_register("model", serving_readiness)

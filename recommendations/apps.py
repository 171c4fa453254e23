"""Recommendations: the recommender, the serving endpoint and the user events it learns from."""

from django.apps import AppConfig


class RecommendationsConfig(AppConfig):
    name = "recommendations"
    verbose_name = "Recommendations and user events"

"""The project package as an app, so it can own cross-cutting management commands (bootstrap)."""

from django.apps import AppConfig


class RideEaseConfig(AppConfig):
    name = "rideease"
    label = "rideease"
    verbose_name = "RideEase Reco"

"""Access: the named API keys every app's API checks."""

from django.apps import AppConfig


class CommonConfig(AppConfig):
    name = "common"
    verbose_name = "Access"

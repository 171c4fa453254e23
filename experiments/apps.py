"""Experiments: experiment records and phases, variant statistics, the summary and its decision."""

from django.apps import AppConfig


class ExperimentsConfig(AppConfig):
    name = "experiments"
    verbose_name = "Experiments"

    def ready(self) -> None:
        from experiments.metrics import ExperimentCollector
        from experiments.services import serving_change_observe
        from monitoring.metrics import scrape_collector_register
        from registry.services import serving_change_listener_register

        # A plain switch or rollback while an experiment runs changes the experiment too, in the same transaction.
        serving_change_listener_register(serving_change_observe)
        scrape_collector_register(ExperimentCollector())

"""URLs of the experiments app."""

from django.urls import path

from experiments.apis import ExperimentSummaryApi

urlpatterns = [
    path("experiments/<str:experiment>/summary", ExperimentSummaryApi.as_view(), name="experiment-summary"),
]

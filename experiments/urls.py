"""URLs of the experiments app."""

from django.urls import path

from experiments.apis import (
    ExperimentDetailApi,
    ExperimentListApi,
    ExperimentStartApi,
    ExperimentStopApi,
    ExperimentSummaryApi,
)

urlpatterns = [
    path("experiments", ExperimentListApi.as_view(), name="experiments"),
    path("experiments/<str:key>", ExperimentDetailApi.as_view(), name="experiment"),
    path("experiments/<str:key>/start", ExperimentStartApi.as_view(), name="experiment-start"),
    path("experiments/<str:key>/stop", ExperimentStopApi.as_view(), name="experiment-stop"),
    path("experiments/<str:key>/summary", ExperimentSummaryApi.as_view(), name="experiment-summary"),
]

"""The experiment summary in the web admin (staff only), with its chart."""

from django.contrib import admin
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.utils import timezone

from core.errors import ApplicationError
from core.variants import DEFAULT_EXPERIMENT
from experiments.chart import chart_geometry
from experiments.selectors import experiment_summary
from experiments.serializers import experiment_summary_data, window_hours_parse

TEMPLATE = "experiments/admin_summary.html"


def experiment_summary_page(request: HttpRequest) -> HttpResponse:
    context = {**admin.site.each_context(request), "title": "Experiment summary"}
    raw = request.GET.get("windowHours")
    try:
        hours = window_hours_parse(raw)
    except ApplicationError as exc:
        # Said on the page, with the window as given, rather than quietly showing another window.
        return TemplateResponse(request, TEMPLATE, {**context, "error": exc.message, "hours": raw}, status=400)
    summary = experiment_summary_data(
        experiment_summary(experiment=DEFAULT_EXPERIMENT, hours=hours, now=timezone.now())
    )
    context |= {
        "summary": summary,
        "hours": hours,
        "chart": chart_geometry(summary),
        "level": f"{summary['stats']['ci']['level']:.0%}",
        "variants": list(summary["variants"].items()),
    }
    return TemplateResponse(request, TEMPLATE, context)

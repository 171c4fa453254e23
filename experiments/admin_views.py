"""The experiment summary in the web admin (staff only), with its chart."""

from django.contrib import admin
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.utils import timezone

from experiments.chart import chart_geometry
from experiments.selectors import experiment_summary
from registry.services import DEFAULT_EXPERIMENT


def experiment_summary_page(request: HttpRequest) -> HttpResponse:
    raw = request.GET.get("windowHours", "24")
    hours = int(raw) if raw.isascii() and raw.isdigit() and 1 <= int(raw) <= 720 else 24
    summary = experiment_summary(experiment=DEFAULT_EXPERIMENT, hours=hours, now=timezone.now())
    context = {
        **admin.site.each_context(request),
        "title": "Experiment summary",
        "summary": summary,
        "chart": chart_geometry(summary),
        "level": f"{summary['stats']['ci']['level']:.0%}",
        "variants": list(summary["variants"].items()),
    }
    return TemplateResponse(request, "experiments/admin_summary.html", context)

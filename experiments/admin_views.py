"""Web admin pages of experiments (staff only): the ad-hoc window summary of the slot, and per experiment its phase
summary with the cumulative chart and the start and stop confirmations.

Every write calls the same service as the API, with the staff user as the actor; a refusal is said on the page.
"""

from collections.abc import Callable
from datetime import datetime
from typing import Any

from django.conf import settings
from django.contrib import admin, messages
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils import timezone

from core.errors import ApplicationError
from core.variants import DEFAULT_EXPERIMENT
from experiments.chart import chart_geometry, cumulative_geometry
from experiments.models import DecisionRule, Experiment, ExperimentResult, ExperimentStatus
from experiments.selectors import DEFAULT_WINDOW_HOURS, experiment_get, experiment_summary, summary_read
from experiments.serializers import experiment_summary_data, summary_query_parse
from experiments.services import experiment_start, experiment_stop
from experiments.state import ExperimentInfo
from registry.selectors import serving_state_current
from registry.state import REASON_MAX_LENGTH

TEMPLATE = "experiments/admin_summary.html"
PHASE_TEMPLATE = "experiments/admin_experiment_summary.html"
CONFIRM_TEMPLATE = "experiments/admin_experiment_confirm.html"


def experiment_summary_page(request: HttpRequest) -> HttpResponse:
    context = {**admin.site.each_context(request), "title": "Experiment summary"}
    raw = request.GET.get("windowHours")
    try:
        hours = summary_query_parse({"windowHours": raw})[0] or DEFAULT_WINDOW_HOURS
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


def _experiment(key: str) -> ExperimentInfo:
    try:
        return experiment_get(key=key)
    except ApplicationError as exc:
        raise Http404(exc.message) from exc


def _pk(key: str) -> str:
    return str(Experiment.objects.values_list("pk", flat=True).get(key=key))


def summary_url(key: str) -> str:
    return reverse("admin:experiments_experiment_summary", args=[key])


def _context(request: HttpRequest, info: ExperimentInfo, title: str) -> dict[str, Any]:
    return {
        **admin.site.each_context(request),
        "title": title,
        "experiment": info,
        "rule_label": DecisionRule(info.rule).label if info.rule in DecisionRule.values else info.rule,
        "can_start": info.status == ExperimentStatus.DRAFT,
        "can_stop": info.status != ExperimentStatus.STOPPED,
        "ad_hoc_url": reverse("experiment-summary-page"),
        "record_url": reverse("admin:experiments_experiment_change", args=[_pk(info.key)]),
    }


def _step_state(info: ExperimentInfo, index: int) -> str:
    running = info.status == ExperimentStatus.RUNNING
    if info.status == ExperimentStatus.DRAFT:
        return "the start serves it" if index == 0 else ""
    if index < info.ramp_step:
        return "done"
    if index == info.ramp_step:
        return "serving now" if running else "the last one served"
    return "next" if running and index == info.ramp_step + 1 else ""


def _ramp_steps(info: ExperimentInfo) -> list[dict[str, Any]]:
    """The ramp's steps as the page lists them, each with where the experiment stands on it."""
    return [
        {
            "number": index + 1,
            **step,
            "state": _step_state(info, index),
            "current": index == info.ramp_step and info.status != ExperimentStatus.DRAFT,
        }
        for index, step in enumerate(info.ramp)
    ]


def _guardrail_rows(info: ExperimentInfo) -> list[dict[str, Any]]:
    """Each guardrail with its threshold in words and its status at the last automatic look."""
    statuses = info.last_look.get("guardrails") or {}
    rows = []
    for guardrail in info.guardrails:
        threshold = guardrail["threshold"]
        if guardrail["relative"]:
            allowed = f"relative {threshold}: fails when more than {threshold * 100:.4g}% above control"
        else:
            allowed = f"absolute {threshold}: fails when more than {threshold} above control"
        rows.append({"metric": guardrail["metric"], "allowed": allowed, "status": statuses.get(guardrail["metric"])})
    return rows


def _last_look(info: ExperimentInfo) -> dict[str, Any] | None:
    """The last automatic look, its time as a datetime (shown in the admin's format and time zone) when it parses."""
    if not info.last_look:
        return None
    at = info.last_look.get("at")
    try:
        at_time = datetime.fromisoformat(at) if isinstance(at, str) else None
    except ValueError:
        at_time = None
    return {**info.last_look, "at_time": at_time or at}


def experiment_phase_page(request: HttpRequest, key: str) -> HttpResponse:
    """One experiment: its record, its ramp, guardrails and automatic looks, and the summary of its current phase (or
    ?phase=) with the cumulative chart."""
    info = _experiment(key)
    context = _context(request, info, f"Experiment {key}: {info.name}")
    context |= {
        "ramp_steps": _ramp_steps(info),
        "guardrail_rows": _guardrail_rows(info),
        "last_look": _last_look(info),
        "decisions": sorted(info.decisions.items()),
    }
    if not info.phases:
        return TemplateResponse(request, PHASE_TEMPLATE, context)  # a draft, or abandoned before it ever ran
    try:
        phase = summary_query_parse({"phase": request.GET.get("phase")})[1]
        summary = experiment_summary_data(
            summary_read(
                key=key,
                hours=None,
                phase_id=phase,
                now=timezone.now(),
                budget_seconds=settings.EXPERIMENT_SUMMARY_BUDGET_SECONDS,
            )
        )
    except ApplicationError as exc:
        return TemplateResponse(request, PHASE_TEMPLATE, {**context, "error": exc.message}, status=exc.status)
    stats = summary["stats"]
    context |= {
        "summary": summary,
        "stats": stats,
        "stats_rule_label": DecisionRule(stats["rule"]).label if stats["rule"] in DecisionRule.values else "",
        "level": f"{stats['ci']['level']:.0%}",
        "variants": list(summary["variants"].items()),
        "chart": cumulative_geometry(summary["cumulative"]),
        # Times as datetimes, so the page shows them in the admin's format and time zone.
        "window_start": datetime.fromisoformat(summary["window"]["start"]),
        "window_end": datetime.fromisoformat(summary["window"]["end"]),
        "cumulative": [p | {"at_time": datetime.fromisoformat(p["at"])} for p in summary["cumulative"]],
        "no_users": not any(v["exposedUsers"] for v in summary["variants"].values()),
    }
    return TemplateResponse(request, PHASE_TEMPLATE, context)


def _apply(request: HttpRequest, refused: str, write: Callable[[str, str], str]) -> None:
    """Run a confirmed write as the staff user with the form's reason; say the outcome on the next page."""
    try:
        done = write(request.user.get_username(), request.POST.get("reason", ""))
    except ApplicationError as exc:
        messages.error(request, f"{refused} ({exc.code}): {exc.message}")
        return
    messages.success(request, done)


def _confirm(request: HttpRequest, info: ExperimentInfo, **values: Any) -> TemplateResponse:
    context = _context(request, info, values.pop("title"))
    serving = serving_state_current(experiment=info.slot)
    context |= {"serving": serving, "reason_max_length": REASON_MAX_LENGTH, "back_url": summary_url(info.key)}
    return TemplateResponse(request, CONFIRM_TEMPLATE, context | values)


def _percent(share: float) -> str:
    return f"{share * 100:.4g}%"


def _ramp_plan(info: ExperimentInfo) -> str:
    if not info.ramp:
        return ""
    if len(info.ramp) == 1:
        return " That is its ramp's only step."
    later = ", ".join(_percent(step["share"]) for step in info.ramp[1:])
    return f" That is its ramp's first step; the automatic looks take it on to {later}, one step at a time."


def experiment_start_page(request: HttpRequest, key: str) -> HttpResponse:
    """GET: what starting serves, and a reason to give. POST confirm=yes: start it (experiment_start)."""
    info = _experiment(key)
    if request.method == "POST" and request.POST.get("confirm") == "yes":

        def start(actor: str, reason: str) -> str:
            phase = experiment_start(key=key, actor=actor, reason=reason).current_phase
            assert phase is not None  # a started experiment has its first phase
            return (
                f"Experiment {key} started: phase 1 serves control {phase.control_version} and treatment "
                f"{phase.treatment_version} to {phase.treatment_share:.0%} of users."
            )

        _apply(request, "Not started", start)
        return HttpResponseRedirect(summary_url(key))
    if info.status != ExperimentStatus.DRAFT:
        messages.error(request, f"Only a draft can start; experiment {key} is {info.status}.")
        return HttpResponseRedirect(summary_url(key))
    return _confirm(
        request,
        info,
        title=f"Start experiment {key}",
        question=(
            f"Serve control {info.control_version} and treatment {info.treatment_version} to "
            f"{_percent(info.starting_share)} of users (salt {info.salt}), tagging every exposure with {key}, phase 1?"
            f"{_ramp_plan(info)}"
        ),
        verb="start it",
    )


def experiment_stop_page(request: HttpRequest, key: str) -> HttpResponse:
    """GET: the results to choose from (a draft can only be abandoned) and a reason. POST confirm=yes: stop it."""
    info = _experiment(key)
    if request.method == "POST" and request.POST.get("confirm") == "yes":
        result = request.POST.get("result", "")
        # The phase the page showed: if another has started since, the stop is refused rather than applied to it.
        shown = request.POST.get("phase", "")

        def stop(actor: str, reason: str) -> str:
            phase = int(shown) if shown.isdigit() else None
            stopped = experiment_stop(key=key, result=result, actor=actor, reason=reason, phase=phase)
            state = serving_state_current(experiment=stopped.slot)
            serving = f" Serving now: control {state.control_version}, treatment share 0." if state else ""
            return f"Experiment {key} stopped: {result}.{serving}"

        _apply(request, "Not stopped", stop)
        return HttpResponseRedirect(summary_url(key))
    if info.status == ExperimentStatus.STOPPED:
        messages.error(request, f"Experiment {key} is already stopped ({info.result}).")
        return HttpResponseRedirect(summary_url(key))
    draft = info.status == ExperimentStatus.DRAFT
    results = (
        [(ExperimentResult.ABANDONED.value, ExperimentResult.ABANDONED.label)] if draft else ExperimentResult.choices
    )
    return _confirm(
        request,
        info,
        title=f"Stop experiment {key}",
        question=(
            "A draft has served nothing: it can only be abandoned."
            if draft
            else "Stop it for good. Shipped: the treatment version becomes control for everyone; any other result: "
            "control keeps serving. Either way the treatment share goes to 0."
        ),
        results=results,
        phase=info.current_phase.id if info.current_phase else None,
        verb="stop it",
    )

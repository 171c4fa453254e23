"""The web admin of experiments: list, create and edit drafts, and per experiment its summary, start and stop.

Every write goes through the same service as the API (`experiment_create`, `experiment_change`, `experiment_start`,
`experiment_stop`) with the staff user as the actor; a refusal shows as a form error or a message, never a 500.
Running and stopped experiments are read-only here, and none is ever deleted: their history is kept.
"""

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from django import forms
from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.urls import URLPattern, path, reverse
from django.utils.html import format_html

from core.errors import ApplicationError
from experiments.admin_fields import (
    GUARDRAILS_HELP,
    RAMP_HELP,
    SECONDARY_METRICS_HELP,
    GuardrailsField,
    RampField,
    SecondaryMetricsField,
)
from experiments.admin_views import experiment_phase_page, experiment_start_page, experiment_stop_page
from experiments.models import Experiment, ExperimentStatus
from experiments.services import DRAFT_FIELDS, experiment_change, experiment_create
from experiments.state import experiment_info

if TYPE_CHECKING:
    ExperimentModelAdmin = admin.ModelAdmin[Experiment]
    ExperimentModelForm = forms.ModelForm[Experiment]
else:
    ExperimentModelAdmin = admin.ModelAdmin
    ExperimentModelForm = forms.ModelForm

DRAFT_FIELDSETS = [
    ("Experiment", {"fields": ["key", "name", "hypothesis"]}),
    ("Variants", {"fields": ["control_version", "treatment_version", "treatment_share", "salt"]}),
    ("Decision rule", {"fields": ["rule", "alpha", "relative_mde", "power", "n_star", "planned_days", "cuped"]}),
    ("Guardrails and secondary metrics", {"fields": ["guardrails", "secondary_metrics", "adjustment"]}),
    ("Ramp", {"fields": ["ramp"]}),
]
RECORD_FIELDS = [
    "owner",
    "slot",
    "status",
    "result",
    "result_reasons",
    "stop_reason",
    "stopped_by",
    "created_at",
    "started_at",
    "stopped_at",
    "primary_metric",
    "phase_list",
    "ramp_step",
    "look_failures",
    "last_look",
    "decisions",
]
assert {name for _, options in DRAFT_FIELDSETS for name in options["fields"]} == DRAFT_FIELDS


class ExperimentForm(ExperimentModelForm):
    """The draft's fields, checked by the model's rules, then written by the service (create or draft change).

    The write happens once the form is otherwise valid, so that the service's refusals become form errors;
    `actor` is set per request by ExperimentAdmin.get_form.
    """

    actor = ""
    guardrails = GuardrailsField(required=False, help_text=GUARDRAILS_HELP)
    secondary_metrics = SecondaryMetricsField(help_text=SECONDARY_METRICS_HELP)
    ramp = RampField(required=False, help_text=RAMP_HELP)

    def full_clean(self) -> None:
        super().full_clean()
        if self.is_bound and not self.errors:
            self._write()

    def _write(self) -> None:
        values = {name: self.cleaned_data[name] for name in self.fields if name in DRAFT_FIELDS}
        try:
            if self.instance._state.adding:
                key = experiment_create(fields=values, actor=self.actor).key
            else:
                key = self.instance.key
                changes = {name: values[name] for name in self.changed_data if name in values}
                if changes:
                    experiment_change(key=key, changes=changes, actor=self.actor)
        except ApplicationError as exc:
            self._refused(exc)
            return
        self.instance = Experiment.objects.get(key=key)

    def _refused(self, exc: ApplicationError) -> None:
        fields = exc.details.get("fields")
        if isinstance(fields, dict) and fields:
            for name, message in fields.items():
                self.add_error(name if name in self.fields else None, f"{name}: {message}")
        else:
            self.add_error(None, f"{exc.message} ({exc.code})")


@admin.register(Experiment)
class ExperimentAdmin(ExperimentModelAdmin):
    form = ExperimentForm
    change_form_template = "experiments/admin_experiment_change_form.html"
    change_list_template = "experiments/admin_experiment_change_list.html"
    list_display = [
        "key",
        "name",
        "status",
        "result",
        "control_version",
        "treatment_version",
        "treatment_share",
        "current_phase",
        "started_at",
        "stopped_at",
        "owner",
        "summary_link",
    ]
    list_filter = ["status", "result"]
    search_fields = ["key", "name"]
    readonly_fields = RECORD_FIELDS

    def get_fieldsets(self, request: HttpRequest, obj: Experiment | None = None) -> Any:
        if obj is None:
            return DRAFT_FIELDSETS
        return [*DRAFT_FIELDSETS, ("Record", {"fields": RECORD_FIELDS})]

    def get_readonly_fields(self, request: HttpRequest, obj: Experiment | None = None) -> Any:
        # The key names the experiment in every exposure: fixed once created.
        return RECORD_FIELDS if obj is None else ["key", *RECORD_FIELDS]

    def get_form(self, request: HttpRequest, obj: Experiment | None = None, change: bool = False, **kwargs: Any) -> Any:
        form = super().get_form(request, obj, change=change, **kwargs)
        return type(form.__name__, (form,), {"actor": request.user.get_username()})

    def save_model(self, request: HttpRequest, obj: Experiment, form: Any, change: bool) -> None:
        """Nothing left to do: the form wrote through the service when it validated (see ExperimentForm)."""

    def has_change_permission(self, request: HttpRequest, obj: Experiment | None = None) -> bool:
        # Only a draft is edited here; a running experiment changes phase through the API, and a stopped one never.
        if obj is not None and obj.status != ExperimentStatus.DRAFT:
            return False
        return super().has_change_permission(request, obj)

    def has_delete_permission(self, request: HttpRequest, obj: Experiment | None = None) -> bool:
        return False

    @admin.display(description="phase")
    def current_phase(self, obj: Experiment) -> str:
        phase = experiment_info(obj).current_phase
        if phase is None:
            return "-"
        return f"{phase.id} (share {phase.treatment_share:.0%}{', ended' if phase.ended_at else ''})"

    @admin.display(description="summary")
    def summary_link(self, obj: Experiment) -> str:
        return format_html('<a href="{}">summary</a>', reverse("admin:experiments_experiment_summary", args=[obj.key]))

    @admin.display(description="phases")
    def phase_list(self, obj: Experiment) -> str:
        phases = experiment_info(obj).phases
        if not phases:
            return "none yet"
        return "; ".join(
            f"{p.id}: {p.started_at:%Y-%m-%d %H:%M} to {f'{p.ended_at:%Y-%m-%d %H:%M}' if p.ended_at else 'now'}, "
            f"control {p.control_version}, treatment {p.treatment_version} at {p.treatment_share:.0%}"
            for p in phases
        )

    def get_urls(self) -> list[URLPattern]:
        def page(view: Callable[[HttpRequest, str], HttpResponse], *, change: bool) -> Callable[..., HttpResponse]:
            def checked(request: HttpRequest, key: str) -> HttpResponse:
                allowed = self.has_change_permission(request) if change else self.has_view_permission(request)
                if not allowed:
                    raise PermissionDenied
                return view(request, key)

            return self.admin_site.admin_view(checked)

        return [
            path(
                "<str:key>/summary/", page(experiment_phase_page, change=False), name="experiments_experiment_summary"
            ),
            path("<str:key>/start/", page(experiment_start_page, change=True), name="experiments_experiment_start"),
            path("<str:key>/stop/", page(experiment_stop_page, change=True), name="experiments_experiment_stop"),
            *super().get_urls(),
        ]

"""Admin pages: model versions with serve actions, the serving state with rollback, the read-only history.

Every action confirms on a page with a reason, then calls the same service as the admin API (same checks, same
history), with the staff user as the actor.
"""

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse

from common.admin_base import ReadOnlyModelAdmin
from core.errors import ApplicationError
from core.variants import CONTROL, TREATMENT
from registry.models import ModelVersion, ServingState, ServingStateChange, VersionReservation
from registry.selectors import serving_state_current
from registry.services import serving_state_rollback, serving_state_switch
from registry.state import TARGETS, ServingStateInfo

CONFIRM_TEMPLATE = "registry/admin_confirm.html"
if TYPE_CHECKING:
    AnyAdmin = admin.ModelAdmin[Any]
else:
    AnyAdmin = admin.ModelAdmin


def _confirm(
    request: HttpRequest, queryset: QuerySet[Any], *, action: str, title: str, question: str, verb: str
) -> TemplateResponse:
    return TemplateResponse(
        request,
        CONFIRM_TEMPLATE,
        {
            **admin.site.each_context(request),
            "title": title,
            "question": question,
            "verb": verb,
            "action": action,
            "queryset": queryset,
            "state": serving_state_current(),
            "back_url": request.get_full_path(),
        },
    )


def _change_and_report(
    modeladmin: AnyAdmin, request: HttpRequest, refused: str, change: Callable[[str, str], ServingStateInfo]
) -> None:
    """Apply a confirmed change as the staff user with the form's reason, and tell them the outcome."""
    try:
        state = change(request.user.get_username(), request.POST.get("reason", ""))
    except ApplicationError as exc:
        modeladmin.message_user(request, f"{refused} ({exc.code}): {exc.message}", messages.ERROR)
        return
    modeladmin.message_user(
        request,
        f"Revision {state.revision}: control {state.control_version}, treatment {state.treatment_version}.",
        messages.SUCCESS,
    )


def _serve_action(target: str) -> Callable[..., HttpResponse | None]:
    def action(modeladmin: AnyAdmin, request: HttpRequest, queryset: QuerySet[Any]) -> HttpResponse | None:
        if queryset.count() != 1:
            modeladmin.message_user(request, "Select exactly one version to serve.", messages.ERROR)
            return None
        version = queryset.get()
        if request.POST.get("confirm") != "yes":
            where = "both variants" if target == "all" else f"the {target} variant"
            return _confirm(
                request,
                queryset,
                action=f"serve_as_{target}",
                title=f"Serve {version.version} on {where}",
                question=f"Serve {version.version} ({version.algorithm}) on {where}? Its artifacts are verified first.",
                verb=f"serve it on {where}",
            )
        _change_and_report(
            modeladmin,
            request,
            "Not switched",
            lambda actor, reason: serving_state_switch(
                version=version.version, target=target, actor=actor, reason=reason
            ),
        )
        return None

    action.__name__ = f"serve_as_{target}"
    return admin.action(description=f"Serve the selected version as {target}")(action)


@admin.register(ModelVersion)
class ModelVersionAdmin(ReadOnlyModelAdmin):
    list_display = [
        "version",
        "status",
        "algorithm",
        "ndcg",
        "recall",
        "map",
        "coverage",
        "baseline_ndcg",
        "versus_baseline",
        "trained_at",
        "serving",
    ]
    list_filter = ["status", "algorithm"]
    search_fields = ["=version"]
    actions = [_serve_action(target) for target in TARGETS]

    def get_queryset(self, request: HttpRequest) -> QuerySet[ModelVersion]:
        self._state = serving_state_current()
        return super().get_queryset(request)

    @admin.display(description="NDCG@10 (95% interval)")
    def ndcg(self, obj: ModelVersion) -> Any:
        candidate = obj.metrics.get("candidate", {})
        interval = candidate.get("ndcg@10Interval")
        return f"{candidate.get('ndcg@10')} {interval}" if interval else candidate.get("ndcg@10")

    @admin.display(description="recall@10")
    def recall(self, obj: ModelVersion) -> Any:
        return obj.metrics.get("candidate", {}).get("recall@10")

    @admin.display(description="MAP@10")
    def map(self, obj: ModelVersion) -> Any:
        return obj.metrics.get("candidate", {}).get("map@10")

    @admin.display(description="coverage@10")
    def coverage(self, obj: ModelVersion) -> Any:
        return obj.metrics.get("candidate", {}).get("coverage@10")

    @admin.display(description="popularity NDCG@10 (without seen)")
    def baseline_ndcg(self, obj: ModelVersion) -> Any:
        plain = obj.metrics.get("baseline", {}).get("ndcg@10")
        without_seen = obj.metrics.get("baselineWithoutSeen", {}).get("ndcg@10")
        return plain if without_seen is None else f"{plain} ({without_seen})"

    @admin.display(description="vs the stronger baseline (95% interval)")
    def versus_baseline(self, obj: ModelVersion) -> Any:
        gate = obj.metrics.get("gate")
        if not gate:
            return ""
        verdict = "better" if gate["passes"] else "not better"
        return f"{verdict}: {gate['difference']} {gate['interval']} vs {gate['baseline']}"

    @admin.display(description="serves")
    def serving(self, obj: ModelVersion) -> str:
        state = getattr(self, "_state", None)
        if state is None:
            return ""
        served = {CONTROL: state.control_version, TREATMENT: state.treatment_version}
        return " + ".join(name for name, version in served.items() if version == obj.version)

    def get_actions(self, request: HttpRequest) -> dict[str, Any]:
        # The serve actions are the point of this page; deleting versions is never offered.
        actions = super().get_actions(request)
        actions.pop("delete_selected", None)
        return actions


def _rollback_action(target: str) -> Callable[..., HttpResponse | None]:
    def action(modeladmin: AnyAdmin, request: HttpRequest, queryset: QuerySet[Any]) -> HttpResponse | None:
        if request.POST.get("confirm") != "yes":
            return _confirm(
                request,
                queryset,
                action=f"rollback_{target}",
                title=f"Roll back {target}",
                question=f"Give {target} back the version it had before its latest change?",
                verb=f"roll back {target}",
            )
        _change_and_report(
            modeladmin,
            request,
            "Not rolled back",
            lambda actor, reason: serving_state_rollback(target=target, actor=actor, reason=reason),
        )
        return None

    action.__name__ = f"rollback_{target}"
    return admin.action(description=f"Roll back {target} to its previous version")(action)


@admin.register(ServingState)
class ServingStateAdmin(ReadOnlyModelAdmin):
    list_display = [
        "experiment",
        "control_version",
        "treatment_version",
        "treatment_share",
        "revision",
        "updated_at",
        "updated_by",
    ]
    actions = [_rollback_action(TREATMENT), _rollback_action(CONTROL)]

    def get_actions(self, request: HttpRequest) -> dict[str, Any]:
        actions = super().get_actions(request)
        actions.pop("delete_selected", None)
        return actions


@admin.register(ServingStateChange)
class ServingStateChangeAdmin(ReadOnlyModelAdmin):
    list_display = ["revision", "changed_at", "actor", "action", "target", "before", "after", "reason"]
    list_filter = ["action", "target"]


@admin.register(VersionReservation)
class VersionReservationAdmin(ReadOnlyModelAdmin):
    list_display = ["version", "owner", "reserved_at"]

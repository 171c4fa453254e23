"""Admin pages for API keys: list them, create one (shown once), revoke; the same services as `manage.py api_key`."""

from typing import TYPE_CHECKING, Any

from django import forms
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.urls import reverse

from common.keys import api_key_create, api_key_name_problem, api_key_revoke
from common.models import ApiKey
from core.errors import ApplicationError

if TYPE_CHECKING:
    AnyAdmin = admin.ModelAdmin[Any]
else:
    AnyAdmin = admin.ModelAdmin


class ApiKeyCreateForm(forms.ModelForm):  # type: ignore[type-arg]
    class Meta:
        model = ApiKey
        fields = ["name", "scope"]

    def clean_name(self) -> str:
        name = str(self.cleaned_data["name"])
        problem = api_key_name_problem(name)
        if problem:
            raise forms.ValidationError(problem)
        return name


@admin.register(ApiKey)
class ApiKeyAdmin(AnyAdmin):
    list_display = ["name", "scope", "prefix", "created_at", "created_by", "last_used_at", "revoked_at", "revoked_by"]
    list_filter = ["scope"]
    actions = ["revoke"]
    form = ApiKeyCreateForm

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return obj is None  # the list, yes; editing a key, never (revoke it and create another)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # a revoked key stays listed, so the history's actor names stay explained

    def get_actions(self, request: HttpRequest) -> dict[str, Any]:
        return {name: action for name, action in super().get_actions(request).items() if name == "revoke"}

    def save_model(self, request: HttpRequest, obj: ApiKey, form: Any, change: bool) -> None:
        """Create through the service (hash, prefix, uniqueness) and show the key once."""
        try:
            record, key = api_key_create(name=obj.name, scope=obj.scope, created_by=request.user.get_username())
        except ApplicationError as exc:
            self.message_user(request, f"Not created ({exc.code}): {exc.message}", messages.ERROR)
            return
        obj.pk = record.pk
        self.message_user(
            request, f"Created {record.scope} key {record.name!r}. It is shown this once; store it now: {key}"
        )

    def response_add(self, request: HttpRequest, obj: ApiKey, post_url_continue: str | None = None) -> HttpResponse:
        return HttpResponseRedirect(reverse("admin:common_apikey_changelist"))

    def log_addition(self, request: HttpRequest, obj: Any, message: Any) -> Any:
        return None if obj.pk is None else super().log_addition(request, obj, message)

    @admin.action(description="Revoke the selected keys (they get 401 from their next request)")
    def revoke(self, request: HttpRequest, queryset: QuerySet[ApiKey]) -> None:
        names = [api_key_revoke(name=record.name, actor=request.user.get_username()).name for record in queryset]
        self.message_user(request, f"Revoked: {', '.join(names)}.")

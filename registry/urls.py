"""URLs of the admin API."""

from django.urls import path

from registry.apis import AdminModelListApi, AdminRollbackApi, AdminServingHistoryApi, AdminSwitchModelApi

urlpatterns = [
    path("admin/models", AdminModelListApi.as_view(), name="admin-models"),
    path("admin/switch-model", AdminSwitchModelApi.as_view(), name="admin-switch-model"),
    path("admin/rollback", AdminRollbackApi.as_view(), name="admin-rollback"),
    path("admin/serving-history", AdminServingHistoryApi.as_view(), name="admin-serving-history"),
]

"""Root URLs: the API at the top level (as the blueprint names it), its schema and docs under /api/, the admin under
/admin/ui/, metrics at /metrics."""

from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from experiments.admin_views import experiment_summary_page
from monitoring.apis import MetricsApi
from recommendations.urls import urlpatterns as recommendations_urlpatterns

admin.site.site_header = "RideEase Reco"
admin.site.site_title = "RideEase Reco admin"
admin.site.index_title = "Experiments, models, serving state, events and traces"

# The hot path first: Django tries the patterns in order on every request.
urlpatterns = [
    # Listed here rather than included: an include would resolve every request to its paths a second time.
    *recommendations_urlpatterns,
    path("", include("monitoring.urls")),
    path("", include("tracing.urls")),
    path("", include("registry.urls")),
    path("", include("experiments.urls")),
    path("metrics", MetricsApi.as_view(), name="metrics"),
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="api-schema"), name="api-docs"),
    path(
        "admin/ui/experiment-summary/", admin.site.admin_view(experiment_summary_page), name="experiment-summary-page"
    ),
    path("admin/ui/", admin.site.urls),
]

handler400 = "rideease.errors.bad_request_view"
handler403 = "rideease.errors.permission_denied_view"
handler404 = "rideease.errors.not_found_view"
handler500 = "rideease.errors.server_error_view"

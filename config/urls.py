from django.contrib import admin
from django.urls import include, path

from config.health import healthz

urlpatterns = [
    path("healthz", healthz, name="healthz"),
    path("api/v1/", include("config.api_urls")),
    path("admin/", admin.site.urls),
    path("", include("tenants.urls")),
    path("", include("experiments.urls")),
    path("", include("injector.urls")),
    path("", include("reports.urls")),
]

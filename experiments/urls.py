"""Portal pages of the experiments app: the tenant home and halt here, each area in experiments.portal."""
from django.urls import include, path

from . import views
from .portal import events, experiments, runs, schedules, workflows

app_name = "experiments"

tenant = "t/<slug:tenant_slug>"
urlpatterns = [
    path(f"{tenant}/", views.TenantHomeView.as_view(), name="tenant-home"),
    path(f"{tenant}/halt/", views.HaltView.as_view(), name="halt"),
    *[path(f"{tenant}/", include(module.urlpatterns)) for module in (experiments, runs, schedules, workflows, events)],
]

"""Portal pages: runs (being built for issue 8)."""
from __future__ import annotations

from typing import Any

from django.urls import path
from django.views.generic import TemplateView

from tenants.portal import TenantPortalMixin

from ..models import Run


class RunsPlaceholder(TenantPortalMixin, TemplateView):
    model = Run
    nav = "runs"
    template_name = "experiments/placeholder.html"

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        return super().get_context_data(**kwargs) | {"heading": "Runs"}


class ArchivesPlaceholder(TenantPortalMixin, TemplateView):
    model = Run
    nav = "archives"
    template_name = "experiments/placeholder.html"

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        return super().get_context_data(**kwargs) | {"heading": "Archives"}


urlpatterns = [
    path("runs/", RunsPlaceholder.as_view(), name="runs"),
    path("archives/", ArchivesPlaceholder.as_view(), name="archives"),
    path("runs/<uuid:run_id>/", RunsPlaceholder.as_view(), name="run"),
]

"""Portal pages: schedules (being built for issue 8)."""
from __future__ import annotations

from typing import Any

from django.urls import path
from django.views.generic import TemplateView

from tenants.portal import TenantPortalMixin

from ..models import Schedule


class SchedulesPlaceholder(TenantPortalMixin, TemplateView):
    model = Schedule
    nav = "schedules"
    template_name = "experiments/placeholder.html"

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        return super().get_context_data(**kwargs) | {"heading": "Schedules"}


urlpatterns = [
    path("schedules/", SchedulesPlaceholder.as_view(), name="schedules"),
]

"""Portal pages of the experiments app. The tenant home lives here because it counts experiments and
shows events; tenants/ must not import experiments/."""
from __future__ import annotations

from typing import Any

from django.views.generic import TemplateView

from tenants.models import AuditEntry, Tenant
from tenants.portal import TenantPortalMixin

from .models import Event, Experiment, Schedule, Workflow

LATEST = 10


class TenantHomeView(TenantPortalMixin, TemplateView):
    """/t/<slug>/: what the tenant has, and what happened lately."""

    model = Tenant
    nav = "home"
    template_name = "experiments/home.html"

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        context = super().get_context_data(**kwargs)
        context["counts"] = [
            ("Experiments", self.scoped(Experiment).count()),
            ("Schedules", self.scoped(Schedule).count()),
            ("Workflows", self.scoped(Workflow).count()),
        ]
        context["events"] = list(self.scoped(Event).order_by("-created_at")[:LATEST])
        context["audit_entries"] = list(self.scoped(AuditEntry).order_by("-seq")[:LATEST])
        return context

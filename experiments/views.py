"""Portal pages of the experiments app: the tenant home and the halt button. The tenant home lives here
because it counts experiments and shows events; tenants/ must not import experiments/. Each other
area of the portal is a module of experiments.portal."""
from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.utils.http import url_has_allowed_host_and_scheme
from django.views import View
from django.views.generic import TemplateView

from injector.models import Agent
from tenants.models import AuditEntry, Tenant
from tenants.portal import TenantPortalMixin, tenant_home_url

from . import runs
from .models import Event, Experiment, Run, Schedule, Workflow, WorkflowRun

LATEST = 10


class TenantHomeView(TenantPortalMixin, TemplateView):
    """/t/<slug>/: what the tenant has, what is running, and what happened lately."""

    model = Tenant
    nav = "home"
    template_name = "experiments/home.html"

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        context = super().get_context_data(**kwargs)
        active = self.scoped(Run).filter(phase__in=Run.ACTIVE)
        context["counts"] = [
            ("Experiments", self.scoped(Experiment).count(), "experiments:experiments"),
            ("Schedules", self.scoped(Schedule).filter(workflow_node__isnull=True).count(), "experiments:schedules"),
            ("Workflows", self.scoped(Workflow).count(), "experiments:workflows"),
            ("Active runs", active.count() + self.scoped(WorkflowRun).filter(phase="running").count(),
             "experiments:runs"),
            ("Agents connected", self.scoped(Agent).filter(connected=True).count(), "injector:environments"),
        ]
        context["active_runs"] = list(active.order_by("-created_at")[:LATEST])
        context["events"] = list(self.scoped(Event).order_by("-created_at")[:LATEST])
        context["audit_entries"] = list(self.scoped(AuditEntry).order_by("-seq")[:LATEST])
        return context


class HaltView(TenantPortalMixin, View):
    """POST: the emergency stop of the tenant (experiments.runs.halt), then back where it was pressed."""

    model = Run
    action = "change"

    def post(self, request: HttpRequest, tenant_slug: str) -> HttpResponse:
        summary = runs.halt(self.actor, self.tenant)
        text = (f"Halted: {_runs(summary['halted'])} stopped, {summary['recovered']} recovered"
                + (f", {summary['still_recovering']} still recovering (a worker finishes them)"
                   if summary["still_recovering"] else "") + ". Running workflows were aborted.")
        messages.warning(request, text) if summary["halted"] else messages.info(request, "Nothing was running. " + text)
        back = request.POST.get("next") or ""
        allowed = url_has_allowed_host_and_scheme(back, allowed_hosts={request.get_host()})
        return HttpResponseRedirect(back if back and allowed else tenant_home_url(self.tenant))


def _runs(count: int) -> str:
    return f"{count} run" if count == 1 else f"{count} runs"

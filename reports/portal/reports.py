"""Portal pages of reports: a run's report (a portal page around the same HTML the API and the PDF give,
and its downloads), and the Settings sub-tab "Reports": the audit report of a period with its downloads,
the audit chain's verdict, and the monthly e-mail subscription (owners change it, everyone reads it).

Thin: scoping and roles come from TenantPortalMixin, the work from reports.run_report, reports.audit_report
and reports.mailing."""
from __future__ import annotations

from datetime import timedelta
from typing import Any

from django import forms
from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseBadRequest
from django.shortcuts import get_object_or_404, redirect
from django.urls import path, reverse
from django.utils.http import urlencode
from django.views import View
from django.views.generic import TemplateView

from experiments.models import Run
from tenants.models import AuditEntry
from tenants.portal import TenantPortalMixin

from .. import audit_report, mailing, run_report
from ..models import AuditReportSubscription

# A run's report ----------------------------------------------------------------------------------


class RunReportMixin(TenantPortalMixin):
    model = Run
    nav = "runs"

    def report(self, run_id: Any) -> dict[str, Any]:
        return run_report.build(get_object_or_404(self.scoped(Run), uuid=run_id))


class RunReportPage(RunReportMixin, TemplateView):
    """The run's report inside the portal, with links to its PDF, JSON and print-ready page."""

    template_name = "reports/run_report_page.html"

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        context = super().get_context_data(**kwargs)
        report = self.report(kwargs["run_id"])
        context.update(r=report, report_html=run_report.render_html(report, standalone=False),
                       downloads=[(fmt, reverse("reports:run-report-download", kwargs={
                           "tenant_slug": self.tenant.slug, "run_id": kwargs["run_id"], "fmt": fmt}))
                           for fmt in run_report.FORMATS])
        return context


class RunReportDownload(RunReportMixin, View):
    """GET: the run's report as a standalone HTML page, a PDF or JSON."""

    http_method_names = ["get"]

    def get(self, request: HttpRequest, tenant_slug: str, run_id: Any, fmt: str) -> HttpResponse:
        if fmt not in run_report.FORMATS:
            raise Http404("no such format")
        return run_report.download(self.report(run_id), fmt)


# The Settings sub-tab "Reports" ------------------------------------------------------------------


class PeriodForm(forms.Form):
    start = forms.DateField(label="From", required=False, widget=forms.DateInput(attrs={"type": "date"}),
                            help_text="The first day (UTC).")
    last = forms.DateField(label="To", required=False, widget=forms.DateInput(attrs={"type": "date"}),
                           help_text="The last day, included.")

    def period(self) -> audit_report.Period:
        """The period of the form (the last 30 days by default); a ValidationError names the field."""
        start, last = self.cleaned_data.get("start"), self.cleaned_data.get("last")
        params = {"from": start.isoformat() if start else "",
                  "to": (last + timedelta(days=1)).isoformat() if last else ""}
        return audit_report.period_from(params)


class SubscriptionForm(forms.Form):
    enabled = forms.BooleanField(label="Send the audit report every month", required=False)
    recipients = forms.CharField(
        label="Recipients", required=False, widget=forms.Textarea(attrs={"rows": 3}),
        help_text=f"E-mail addresses, one per line or separated by commas (at most {mailing.MAX_RECIPIENTS}).")


FIELD_OF = {"from": "start", "to": "last"}


def _add_errors(form: forms.Form, error: ValidationError, aliases: dict[str, str] | None = None) -> None:
    """A service's ValidationError on the form: on the field it names (through `aliases`), else on the form."""
    by_key = error.message_dict if hasattr(error, "error_dict") else {"": error.messages}
    for key, errors in by_key.items():
        field = (aliases or {}).get(key, key)
        for message in errors:
            if field in form.fields:
                form.add_error(field, message)
            else:
                form.add_error(None, f"{key}: {message}" if key else message)


class ReportsSettingsView(TenantPortalMixin, TemplateView):
    """Settings, Reports: the audit report of a period (HTML, PDF, CSV), the audit chain verified, and who
    gets the report every month."""

    model = AuditReportSubscription
    action = "change"
    nav = "reports"
    template_name = "reports/settings_reports.html"

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        context = super().get_context_data(**kwargs)
        period_form = PeriodForm(self.request.GET or None)
        period = None
        if not period_form.is_bound or period_form.is_valid():
            try:
                period = period_form.period() if period_form.is_bound else audit_report.period_from({})
            except ValidationError as error:
                _add_errors(period_form, error, FIELD_OF)
        state = mailing.subscription_of(self.tenant)
        sub_form = kwargs.get("sub_form") or SubscriptionForm(initial={
            "enabled": state["enabled"], "recipients": "\n".join(state["recipients"])})
        context.update(period_form=period_form, period=period, subscription=state, sub_form=sub_form,
                       chain=audit_report.chain_of(self.tenant))
        if period is not None:
            base = reverse("reports:audit-report", kwargs={"tenant_slug": self.tenant.slug})
            query = {"from": period.start.isoformat(), "to": period.end.isoformat()}
            context.update(
                summary=audit_report.build(self.tenant, period),
                downloads=[(fmt, f"{base}?{urlencode(query | {'format': fmt})}") for fmt in ("html", "pdf", "csv")],
                api_url=reverse("audit-report", kwargs={"tenant_slug": self.tenant.slug}) + "?" + urlencode(query),
            )
        return context

    def post(self, request: HttpRequest, tenant_slug: str) -> HttpResponse:
        form = SubscriptionForm(request.POST)
        if form.is_valid():
            try:
                mailing.save_subscription(self.actor, self.tenant, recipients=form.cleaned_data["recipients"],
                                          enabled=form.cleaned_data["enabled"])
            except ValidationError as error:
                _add_errors(form, error)
            else:
                messages.success(request, "Saved who gets the monthly audit report.")
                return redirect("reports:settings-reports", tenant_slug=self.tenant.slug)
        return self.render_to_response(self.get_context_data(sub_form=form), status=400)


class AuditReportDownload(TenantPortalMixin, View):
    """GET ?from=&to=&format=html|pdf|csv: the audit report of that period (the API's parameters)."""

    model = AuditEntry
    http_method_names = ["get"]

    def get(self, request: HttpRequest, tenant_slug: str) -> HttpResponse:
        fmt = request.GET.get("format") or "html"
        try:
            if fmt not in audit_report.FORMATS:
                raise ValidationError({"format": f"give one of {', '.join(audit_report.FORMATS)}"})
            period = audit_report.period_from(request.GET)
        except ValidationError as error:
            text = "; ".join(f"{k}: {' '.join(v)}" for k, v in error.message_dict.items())
            return HttpResponseBadRequest(f"This report cannot be made: {text}", content_type="text/plain")
        return audit_report.download(self.tenant, period, fmt)


urlpatterns = [
    path("runs/<uuid:run_id>/report/", RunReportPage.as_view(), name="run-report"),
    path("runs/<uuid:run_id>/report/<str:fmt>/", RunReportDownload.as_view(), name="run-report-download"),
    path("settings/reports/", ReportsSettingsView.as_view(), name="settings-reports"),
    path("reports/audit/", AuditReportDownload.as_view(), name="audit-report"),
]

"""GET /api/v1/tenants/{slug}/runs/{id}/report/?format=html|pdf|json: a run's report (reports.run_report).
The run is addressed as the runs API addresses it (its uuid); whoever may see the run may read its report."""
from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError
from django.http import HttpResponse
from django.urls import path
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework.generics import get_object_or_404
from rest_framework.renderers import JSONRenderer

from experiments.models import Run
from tenants.api.scoping import TenantScopedAPIView

from .. import run_report


class ReportFormatMixin:
    """Report endpoints answer in the format their `format` parameter names (HTML, PDF, CSV, JSON) with
    the plain Django responses reports.run_report and reports.audit_report build; DRF renders only their
    errors, as JSON, so a bad `format` is a 400 naming the field rather than DRF's 404 for a format it
    has no renderer for."""

    #: The formats the endpoint answers in; the first is the default.
    formats: tuple[str, ...] = ()
    request: Any

    def perform_content_negotiation(self, request: Any, force: bool = False) -> tuple[Any, str]:
        renderer = JSONRenderer()
        return renderer, renderer.media_type

    def requested_format(self) -> str:
        fmt = (self.request.query_params.get("format") or self.formats[0]).strip().lower()
        if fmt not in self.formats:
            raise ValidationError({"format": f"{fmt[:20]!r} is not a format of this report: "
                                             f"give one of {', '.join(self.formats)}"})
        return fmt


class RunReportView(ReportFormatMixin, TenantScopedAPIView):
    """A run's report: who started it and how, the fault, the policy's decisions, the targets with their
    injected and recovered times, each status check's probes, the events and the outcome. HTML (charts as
    images), PDF, or JSON (the same content as data)."""

    model = Run
    formats = tuple(run_report.FORMATS)

    @extend_schema(
        operation_id="run_report",
        parameters=[OpenApiParameter("format", OpenApiTypes.STR, enum=list(run_report.FORMATS), default="html",
                                     description="html (a standalone page), pdf or json")],
        responses={
            (200, "text/html"): OpenApiResponse(OpenApiTypes.STR, description="The report as one HTML page."),
            (200, "application/pdf"): OpenApiResponse(OpenApiTypes.BINARY, description="The report as PDF."),
            (200, "application/json"): OpenApiResponse(OpenApiTypes.OBJECT, description="The report as data."),
            400: OpenApiResponse(description="A bad `format`, named."),
            404: OpenApiResponse(description="No such run in this tenant."),
        },
    )
    def get(self, request: Any, tenant_slug: str, id: str) -> HttpResponse:
        fmt = self.requested_format()
        run = get_object_or_404(self.scoped("view"), uuid=id)
        return run_report.download(run_report.build(run), fmt)


urlpatterns = [
    path("tenants/<slug:tenant_slug>/runs/<str:id>/report/", RunReportView.as_view(), name="run-report"),
]

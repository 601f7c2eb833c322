"""The tenant audit report over the API (reports.audit_report), and its monthly e-mail subscription
(reports.mailing):

GET /api/v1/tenants/{slug}/reports/audit/?from=YYYY-MM-DD&to=YYYY-MM-DD&format=html|pdf|csv|json
GET, PUT /api/v1/tenants/{slug}/reports/audit/subscription/

Everyone in the tenant reads both; owners set the subscription. Every response of the report carries the
audit chain's verdict and head hash in X-Chaosplane-Chain and X-Chaosplane-Head-Hash (the CSV is
streamed, entry by entry, so those headers are where it says whether the chain holds)."""
from __future__ import annotations

from typing import Any

from django.http import HttpResponse, StreamingHttpResponse
from django.urls import path
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import serializers
from rest_framework.response import Response

from tenants.api.scoping import TenantScopedAPIView
from tenants.models import AuditEntry

from .. import audit_report, mailing
from ..models import AuditReportSubscription
from .run_reports import ReportFormatMixin

CHAIN_HEADERS = [
    OpenApiParameter("X-Chaosplane-Chain", OpenApiTypes.STR, location=OpenApiParameter.HEADER, response=[200],
                     description="The whole audit chain verified: `ok`, or `broken at #N` (the first bad entry)"),
    OpenApiParameter("X-Chaosplane-Head-Hash", OpenApiTypes.STR, location=OpenApiParameter.HEADER, response=[200],
                     description="The hash of the newest entry of the chain, to compare with a later report"),
    OpenApiParameter("X-Chaosplane-Head-Seq", OpenApiTypes.INT, location=OpenApiParameter.HEADER, response=[200],
                     description="The number of the newest entry of the chain"),
]


class AuditReportView(ReportFormatMixin, TenantScopedAPIView):
    """The tenant's audit report for [from, to) (default: the last 30 days up to today): runs by outcome,
    kind and environment, the resilience score over time, aborts, halts and refusals, every audit entry of
    the period, and the whole audit chain verified with its head hash. CSV: one row per audit entry."""

    model = AuditEntry
    formats = ("html", "pdf", "csv", "json")

    @extend_schema(
        operation_id="audit_report",
        parameters=[
            OpenApiParameter("from", OpenApiTypes.DATE, description="First day (UTC); default: 30 days before `to`"),
            OpenApiParameter("to", OpenApiTypes.DATE, description="The day after the last (UTC); default: tomorrow"),
            OpenApiParameter("format", OpenApiTypes.STR, enum=["html", "pdf", "csv", "json"], default="html"),
            *CHAIN_HEADERS,
        ],
        responses={
            (200, "text/html"): OpenApiResponse(OpenApiTypes.STR, description="The report as one HTML page."),
            (200, "application/pdf"): OpenApiResponse(OpenApiTypes.BINARY, description="The report as PDF."),
            (200, "text/csv"): OpenApiResponse(OpenApiTypes.STR, description=(
                "One row per audit entry of the period: " + ", ".join(audit_report.CSV_FIELDS))),
            (200, "application/json"): OpenApiResponse(OpenApiTypes.OBJECT, description="The summary as data."),
            400: OpenApiResponse(description="A bad `from`, `to` or `format`, named."),
        },
    )
    def get(self, request: Any, tenant_slug: str) -> HttpResponse | StreamingHttpResponse:
        fmt = self.requested_format()
        period = audit_report.period_from(request.query_params)
        return audit_report.download(self.tenant, period, fmt)


class SubscriptionSerializer(serializers.Serializer):
    enabled = serializers.BooleanField()
    recipients = serializers.ListField(child=serializers.CharField(allow_blank=True, max_length=254),
                                       max_length=100, help_text="E-mail addresses (at most 20).")
    last_period = serializers.DateField(read_only=True, allow_null=True,
                                        help_text="The first day of the last month sent.")
    next_send = serializers.DateField(read_only=True, allow_null=True)
    updated_at = serializers.DateTimeField(read_only=True, allow_null=True)


class AuditSubscriptionView(TenantScopedAPIView):
    """Who gets the tenant's audit report by e-mail on the first of each month (the month before, as PDF
    and CSV). Everyone in the tenant reads it; owners set it."""

    model = AuditReportSubscription
    serializer_class = SubscriptionSerializer

    @extend_schema(responses=SubscriptionSerializer)
    def get(self, request: Any, tenant_slug: str) -> Response:
        return Response(mailing.subscription_of(self.tenant))

    @extend_schema(request=SubscriptionSerializer, responses=SubscriptionSerializer)
    def put(self, request: Any, tenant_slug: str) -> Response:
        body = SubscriptionSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        mailing.save_subscription(self.actor, self.tenant, recipients=body.validated_data["recipients"],
                                  enabled=body.validated_data["enabled"])
        return Response(mailing.subscription_of(self.tenant))


urlpatterns = [
    path("tenants/<slug:tenant_slug>/reports/audit/", AuditReportView.as_view(), name="audit-report"),
    path("tenants/<slug:tenant_slug>/reports/audit/subscription/", AuditSubscriptionView.as_view(),
         name="audit-report-subscription"),
]

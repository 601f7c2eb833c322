"""Webhooks over the API: /api/v1/tenants/{slug}/webhooks/. Owners create, change, delete, test and
redeliver; operators read them and their delivery log; viewers are refused (403), other tenants'
members find nothing (404). Thin: scoping from the tenant-scoped base viewset, the work and the
audit in reports.services."""
from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from django.shortcuts import get_object_or_404
from django.urls import path
from drf_spectacular.utils import extend_schema
from rest_framework import status
from rest_framework.decorators import action
from rest_framework.response import Response

from tenants.api.scoping import TenantScopedViewSet

from .. import services
from ..models import Webhook, WebhookDelivery
from ..services import with_last_delivery
from .webhook_serializers import (
    CreatedWebhookSerializer,
    DeliverySerializer,
    WebhookSerializer,
    WebhookWriteSerializer,
)


class WebhookViewSet(TenantScopedViewSet):
    """A tenant's webhooks. The URL and the secret are write-only: a generated secret is returned once,
    by create; afterwards only the URL's hint (scheme and host) is shown."""

    model = Webhook
    serializer_class = WebhookSerializer
    lookup_field = "uuid"
    lookup_url_kwarg = "id"
    action_permissions = {"test": "change", "deliveries": "view", "redeliver": "change"}

    def get_queryset(self) -> QuerySet:
        return with_last_delivery(super().get_queryset().select_related("created_by"))

    def list(self, request: Any, tenant_slug: str) -> Response:
        page = self.paginate_queryset(self.get_queryset())
        return self.get_paginated_response(self.get_serializer(page, many=True).data)

    def retrieve(self, request: Any, tenant_slug: str, id: str) -> Response:
        return Response(self.get_serializer(self.get_object()).data)

    def _shown(self, hook: Webhook, code: int = status.HTTP_200_OK, secret: str | None = None) -> Response:
        hook = self.get_queryset().get(pk=hook.pk)
        if secret:
            hook.secret = secret
            return Response(CreatedWebhookSerializer(hook).data, status=code)
        return Response(self.get_serializer(hook).data, status=code)

    @extend_schema(request=WebhookWriteSerializer, responses={201: CreatedWebhookSerializer})
    def create(self, request: Any, tenant_slug: str) -> Response:
        body = WebhookWriteSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        saved = services.create_webhook(self.actor, self.tenant, dict(body.validated_data))
        return self._shown(saved.webhook, status.HTTP_201_CREATED, saved.generated_secret)

    @extend_schema(request=WebhookWriteSerializer, responses=CreatedWebhookSerializer)
    def partial_update(self, request: Any, tenant_slug: str, id: str) -> Response:
        hook = self.get_object()
        body = WebhookWriteSerializer(data=request.data, partial=True)
        body.is_valid(raise_exception=True)
        saved = services.update_webhook(self.actor, hook, dict(body.validated_data))
        return self._shown(saved.webhook, secret=saved.generated_secret)

    def destroy(self, request: Any, tenant_slug: str, id: str) -> Response:
        services.delete_webhook(self.actor, self.get_object())
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(request=None, responses=DeliverySerializer)
    @action(detail=True, methods=["post"])
    def test(self, request: Any, tenant_slug: str, id: str) -> Response:
        """Send a `test` notification now and answer with its one attempt (state delivered or failed,
        the receiver's status, the error, the time it took). Test deliveries are not retried."""
        delivery = services.send_test(self.actor, self.get_object())
        return Response(DeliverySerializer(delivery).data)

    @extend_schema(responses=DeliverySerializer(many=True))
    @action(detail=True, methods=["get"])
    def deliveries(self, request: Any, tenant_slug: str, id: str) -> Response:
        """The delivery log, newest first, each with every attempt."""
        hook = self.get_object()
        rows = WebhookDelivery.objects.filter(webhook=hook).select_related("webhook").order_by("-created_at", "-id")
        page = self.paginate_queryset(rows)
        return self.get_paginated_response(DeliverySerializer(page, many=True).data)

    @extend_schema(request=None, responses=DeliverySerializer)
    @action(detail=True, methods=["post"])
    def redeliver(self, request: Any, tenant_slug: str, id: str, delivery: str) -> Response:
        """Queue a delivered or failed notification again, from its first attempt."""
        hook = self.get_object()
        row = get_object_or_404(WebhookDelivery.objects.select_related("webhook"), webhook=hook, uuid=delivery)
        return Response(DeliverySerializer(services.redeliver(self.actor, row)).data,
                        status=status.HTTP_202_ACCEPTED)


tenant = "tenants/<slug:tenant_slug>"
urlpatterns = [
    path(f"{tenant}/webhooks/", WebhookViewSet.as_view({"get": "list", "post": "create"}), name="webhook-list"),
    path(
        f"{tenant}/webhooks/<uuid:id>/",
        WebhookViewSet.as_view({"get": "retrieve", "patch": "partial_update", "delete": "destroy"}),
        name="webhook-detail",
    ),
    path(f"{tenant}/webhooks/<uuid:id>/test/", WebhookViewSet.as_view({"post": "test"}), name="webhook-test"),
    path(f"{tenant}/webhooks/<uuid:id>/deliveries/", WebhookViewSet.as_view({"get": "deliveries"}),
         name="webhook-deliveries"),
    path(f"{tenant}/webhooks/<uuid:id>/deliveries/<uuid:delivery>/redeliver/",
         WebhookViewSet.as_view({"post": "redeliver"}), name="webhook-redeliver"),
]

"""The tenants API: tenants, members, tokens, policy and the audit log. Thin: scoping and
permissions come from tenants.api.scoping, the work from tenants.services."""
from __future__ import annotations

from typing import Any

from django.shortcuts import get_object_or_404
from drf_spectacular.utils import extend_schema
from rest_framework import mixins, status, viewsets
from rest_framework.exceptions import PermissionDenied
from rest_framework.renderers import BrowsableAPIRenderer, JSONRenderer
from rest_framework.response import Response

from tenants import services
from tenants.actors import Actor
from tenants.filters import AuditEntryFilterSet
from tenants.models import ApiToken, AuditEntry, Membership, Policy, Tenant

from . import serializers as s
from .renderers import CSVRenderer
from .scoping import TenantScopedAPIView, TenantScopedViewSet


class TenantViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """The tenants you are a member of. Any signed-in user may create one and becomes its owner."""

    serializer_class = s.TenantSerializer
    lookup_field = "slug"

    def initial(self, request: Any, *args: Any, **kwargs: Any) -> None:
        super().initial(request, *args, **kwargs)
        self.actor = Actor.from_request(request)

    def get_queryset(self) -> Any:
        if getattr(self, "swagger_fake_view", False):  # the schema generator has no actor
            return Tenant.objects.none()
        return Tenant.objects.restrict(self.actor, "view")

    def get_serializer_context(self) -> dict[str, Any]:
        return {**super().get_serializer_context(), "actor": getattr(self, "actor", None)}

    @extend_schema(request=s.TenantCreateSerializer, responses=s.TenantSerializer)
    def create(self, request: Any) -> Response:
        if self.actor.token is not None:
            raise PermissionDenied("API tokens belong to one tenant and cannot create tenants; sign in instead.")
        data = s.TenantCreateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        tenant = services.create_tenant(self.actor, owner=request.user, **data.validated_data)
        return Response(self.get_serializer(tenant).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=s.TenantUpdateSerializer, responses=s.TenantSerializer)
    def partial_update(self, request: Any, slug: str) -> Response:
        tenant = self.get_object()
        if not Tenant.objects.restrict(self.actor, "change").filter(pk=tenant.pk).exists():
            raise PermissionDenied("Only owners can rename a tenant.")
        data = s.TenantUpdateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        tenant = services.rename_tenant(self.actor, tenant, data.validated_data["name"])
        return Response(self.get_serializer(tenant).data)


class MemberViewSet(TenantScopedViewSet):
    """Members of a tenant and their roles. Everyone in the tenant sees them; owners change them."""

    model = Membership
    serializer_class = s.MemberSerializer
    lookup_field = "user__username"
    lookup_url_kwarg = "username"
    lookup_value_regex = "[^/]+"

    def get_queryset(self) -> Any:
        return super().get_queryset().select_related("user")

    def list(self, request: Any, tenant_slug: str) -> Response:
        page = self.paginate_queryset(self.get_queryset())
        return self.get_paginated_response(self.get_serializer(page, many=True).data)

    def retrieve(self, request: Any, tenant_slug: str, username: str) -> Response:
        return Response(self.get_serializer(self.get_object()).data)

    @extend_schema(request=s.MemberCreateSerializer, responses=s.MemberSerializer)
    def create(self, request: Any, tenant_slug: str) -> Response:
        data = s.MemberCreateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        membership = services.add_member(self.actor, self.tenant, **data.validated_data)
        return Response(self.get_serializer(membership).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=s.MemberUpdateSerializer, responses=s.MemberSerializer)
    def partial_update(self, request: Any, tenant_slug: str, username: str) -> Response:
        membership = self.get_object()
        data = s.MemberUpdateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        membership = services.change_role(self.actor, membership, data.validated_data["role"])
        return Response(self.get_serializer(membership).data)

    update = partial_update

    def destroy(self, request: Any, tenant_slug: str, username: str) -> Response:
        services.remove_member(self.actor, self.get_object())
        return Response(status=status.HTTP_204_NO_CONTENT)


class TokenViewSet(TenantScopedViewSet):
    """API tokens. Members see and revoke their own; owners see and revoke all of the tenant's.
    The secret is returned once, by create, and never stored."""

    model = ApiToken
    serializer_class = s.TokenSerializer
    lookup_field = "prefix"
    lookup_url_kwarg = "id"

    def get_queryset(self) -> Any:
        return super().get_queryset().select_related("user")

    def list(self, request: Any, tenant_slug: str) -> Response:
        page = self.paginate_queryset(self.get_queryset())
        return self.get_paginated_response(self.get_serializer(page, many=True).data)

    def retrieve(self, request: Any, tenant_slug: str, id: str) -> Response:
        return Response(self.get_serializer(self.get_object()).data)

    @extend_schema(request=s.TokenCreateSerializer, responses={201: s.IssuedTokenSerializer})
    def create(self, request: Any, tenant_slug: str) -> Response:
        data = s.TokenCreateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        issued = services.issue_token(self.actor, self.tenant, **data.validated_data)
        body = s.TokenSerializer(issued.token).data | {"token": issued.secret}
        return Response(body, status=status.HTTP_201_CREATED)

    def destroy(self, request: Any, tenant_slug: str, id: str) -> Response:
        services.revoke_token(self.actor, self.get_object())
        return Response(status=status.HTTP_204_NO_CONTENT)


class PolicyView(TenantScopedAPIView):
    """The tenant's blast-radius policy: everyone in the tenant reads it, owners change it."""

    model = Policy
    serializer_class = s.PolicySerializer

    def get_policy(self) -> Policy:
        return get_object_or_404(self.scoped("view"))

    @extend_schema(responses=s.PolicySerializer)
    def get(self, request: Any, tenant_slug: str) -> Response:
        return Response(s.PolicySerializer(self.get_policy()).data)

    @extend_schema(request=s.PolicySerializer, responses=s.PolicySerializer)
    def patch(self, request: Any, tenant_slug: str) -> Response:
        return self._update(request, partial=True)

    @extend_schema(request=s.PolicySerializer, responses=s.PolicySerializer)
    def put(self, request: Any, tenant_slug: str) -> Response:
        return self._update(request, partial=False)

    def _update(self, request: Any, partial: bool) -> Response:
        policy = self.get_policy()
        data = s.PolicySerializer(policy, data=request.data, partial=partial)
        data.is_valid(raise_exception=True)
        policy = services.update_policy(self.actor, self.tenant, dict(data.validated_data))
        return Response(s.PolicySerializer(policy).data)


class AuditViewSet(TenantScopedViewSet):
    """The tenant's audit log, newest first; filter by actor, action and time; `?format=csv` exports
    every matching entry."""

    model = AuditEntry
    serializer_class = s.AuditEntrySerializer
    filterset_class = AuditEntryFilterSet
    renderer_classes = [JSONRenderer, BrowsableAPIRenderer, CSVRenderer]
    lookup_field = "seq"

    def get_queryset(self) -> Any:
        return super().get_queryset().select_related("tenant").order_by("-seq")

    def list(self, request: Any, tenant_slug: str) -> Response:
        queryset = self.filter_queryset(self.get_queryset())
        if request.accepted_renderer.format == "csv":
            rows = self.get_serializer(queryset.iterator(chunk_size=2000), many=True).data
            response = Response(rows)
            response["Content-Disposition"] = f'attachment; filename="audit-{self.tenant.slug}.csv"'
            return response
        page = self.paginate_queryset(queryset)
        return self.get_paginated_response(self.get_serializer(page, many=True).data)

    def retrieve(self, request: Any, tenant_slug: str, seq: str) -> Response:
        return Response(self.get_serializer(self.get_object()).data)

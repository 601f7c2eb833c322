"""The fault catalogue, and a tenant's environments: where its faults land, with their credentials
(stored encrypted, never shown again), their node agents, the cluster manifest of a kubernetes
environment, and the grants that let operators run against a gated environment."""
from __future__ import annotations

from functools import lru_cache
from typing import Any

from django.core.exceptions import ValidationError
from django.db.models import Count, Q
from django.http import HttpResponse
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.decorators import action
from rest_framework.response import Response
from rest_framework.views import APIView

from injector import services
from injector.faults import catalog
from tenants.api.scoping import TenantScopedViewSet

from ..models import Environment
from .serializers import (
    AgentSerializer,
    EnvironmentCreatedSerializer,
    EnvironmentSerializer,
    EnvironmentUpdateSerializer,
    EnvironmentWriteSerializer,
    GrantSerializer,
)

YAML_TYPE = "application/yaml"


@lru_cache(maxsize=1)
def _catalog() -> dict[str, Any]:
    return {"apiVersion": "chaos-mesh.org/v1alpha1", "kinds": catalog()}


class CatalogView(APIView):
    """The fault catalogue: kinds, actions, their targets, one-shot flag, the agent capability they
    need, and a JSON Schema of their parameters (labels, help, units, defaults, enums) that the
    portal builds its forms from and clients validate with."""

    @extend_schema(responses=OpenApiResponse(description="Every kind with its actions and parameter schemas."))
    def get(self, request: Any) -> Response:
        return Response(_catalog())


class EnvironmentViewSet(TenantScopedViewSet):
    """Environments of a tenant: everyone in it sees them; owners create, change and delete them,
    rotate registration tokens and grant `run` on gated ones."""

    model = Environment
    serializer_class = EnvironmentSerializer
    lookup_field = "name"
    lookup_url_kwarg = "name"
    action_permissions = {
        "token": "change", "manifest": "view", "manifest_with_token": "change", "agents": "view",
        "grant": "change", "revoke": "change",
    }

    def get_queryset(self) -> Any:
        return super().get_queryset().annotate(
            agent_count=Count("agents"), connected_count=Count("agents", filter=Q(agents__connected=True))
        ).order_by("name")  # a GROUP BY drops the model's ordering

    def list(self, request: Any, tenant_slug: str) -> Response:
        page = self.paginate_queryset(self.get_queryset())
        return self.get_paginated_response(self.get_serializer(page, many=True).data)

    def retrieve(self, request: Any, tenant_slug: str, name: str) -> Response:
        return Response(self.get_serializer(self.get_object()).data)

    @extend_schema(request=EnvironmentWriteSerializer, responses={201: EnvironmentCreatedSerializer})
    def create(self, request: Any, tenant_slug: str) -> Response:
        body = EnvironmentWriteSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        data = body.validated_data
        env, token = services.create_environment(
            self.actor, self.tenant, data["name"], data["kind"], config=data.get("config"),
            secrets=data.get("secrets"), requires_grant=data["requires_grant"],
        )
        env.registration_token = token
        return Response(EnvironmentCreatedSerializer(env).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=EnvironmentUpdateSerializer, responses=EnvironmentSerializer)
    def partial_update(self, request: Any, tenant_slug: str, name: str) -> Response:
        env = self.get_object()
        body = EnvironmentUpdateSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        services.update_environment(self.actor, env, **body.validated_data)
        return Response(self.get_serializer(self.get_object()).data)

    def destroy(self, request: Any, tenant_slug: str, name: str) -> Response:
        services.delete_environment(self.actor, self.get_object())
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(request=None, responses=EnvironmentCreatedSerializer)
    @action(detail=True, methods=["post"])
    def token(self, request: Any, tenant_slug: str, name: str) -> Response:
        """A new registration token for node agents; the old one stops working at once."""
        env = self.get_object()
        env.registration_token = services.rotate_registration_token(self.actor, env)
        return Response(EnvironmentCreatedSerializer(env).data)

    def _manifest(self, env: Environment, token: str | None) -> HttpResponse:
        response = HttpResponse(services.cluster_manifest(env, token), content_type=f"{YAML_TYPE}; charset=utf-8")
        response["Content-Disposition"] = f'inline; filename="chaosplane-{env.name}.yaml"'
        return response

    @extend_schema(responses={(200, YAML_TYPE): OpenApiResponse(description="Manifest to kubectl apply.")})
    @action(detail=True, methods=["get"])
    def manifest(self, request: Any, tenant_slug: str, name: str) -> HttpResponse:
        """What to apply in the cluster: a service account with only the permissions Chaosplane
        uses (Role per namespace, or ClusterRole), its binding, and the node agent DaemonSet. The
        registration token is a placeholder here; POST issues a new one into the manifest."""
        return self._manifest(self.get_object(), None)

    @extend_schema(request=None, responses={(200, YAML_TYPE): OpenApiResponse(description="With a new token.")})
    def manifest_with_token(self, request: Any, tenant_slug: str, name: str) -> HttpResponse:
        env = self.get_object()
        if env.kind != Environment.Kind.KUBERNETES:
            raise ValidationError({"kind": "only a kubernetes environment has a cluster manifest"})
        return self._manifest(env, services.rotate_registration_token(self.actor, env))

    @extend_schema(responses=AgentSerializer(many=True))
    @action(detail=True, methods=["get"])
    def agents(self, request: Any, tenant_slug: str, name: str) -> Response:
        env = self.get_object()
        return Response(AgentSerializer(env.agents.order_by("name"), many=True).data)

    @extend_schema(request=GrantSerializer, responses={204: None})
    def grant(self, request: Any, tenant_slug: str, name: str) -> Response:
        """Let a member run against this environment (it matters once `requires_grant` is set)."""
        body = GrantSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        services.set_run_grant(self.actor, self.get_object(), body.validated_data["username"], True)
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(request=GrantSerializer, responses={204: None})
    def revoke(self, request: Any, tenant_slug: str, name: str) -> Response:
        body = GrantSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        services.set_run_grant(self.actor, self.get_object(), body.validated_data["username"], False)
        return Response(status=status.HTTP_204_NO_CONTENT)

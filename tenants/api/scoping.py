"""Tenant scoping and permissions, enforced once for every API endpoint (after NetBox's BaseViewSet).

`initial()` resolves the tenant of the URL among those the actor may see (else 404), maps the request
to an action (view, add, change, delete, or a viewset's own) and checks the actor's role for it
(else 403). Object lookups go through `Model.objects.restrict()`: an object the actor cannot see is a
404, an object they see but may not act on is a 403.
"""
from __future__ import annotations

from typing import Any

from django.db.models import Model, QuerySet
from django.shortcuts import get_object_or_404
from rest_framework import viewsets
from rest_framework.exceptions import PermissionDenied
from rest_framework.views import APIView

from tenants.actors import Actor
from tenants.models import Tenant
from tenants.roles import at_least

METHOD_ACTIONS = {
    "GET": "view",
    "HEAD": "view",
    "OPTIONS": "view",
    "POST": "add",
    "PUT": "change",
    "PATCH": "change",
    "DELETE": "delete",
}


class TenantScopeMixin:
    """For views under /api/v1/tenants/{tenant_slug}/."""

    model: type[Model]
    #: viewset action name -> permission action, for actions the HTTP method does not describe.
    action_permissions: dict[str, str] = {}
    #: HTTP method -> permission action, where a view's method means something else (a POST that only reads).
    method_actions: dict[str, str] = {}

    actor: Actor
    tenant: Tenant
    permission_action: str

    def initial(self, request: Any, *args: Any, **kwargs: Any) -> None:
        super().initial(request, *args, **kwargs)  # authentication: no credentials -> 401
        self.actor = Actor.from_request(request)
        self.tenant = get_object_or_404(Tenant.objects.restrict(self.actor, "view"), slug=kwargs["tenant_slug"])
        action_name = getattr(self, "action", None)
        self.permission_action = (
            self.action_permissions.get(action_name)
            or self.method_actions.get(request.method)
            or METHOD_ACTIONS[request.method]
        )
        if not at_least(self.actor.role_in(self.tenant), self.model.role_for(self.permission_action)):
            if not self.model.grant_actions or self.permission_action not in self.model.grant_actions:
                raise PermissionDenied(
                    f"Your role in {self.tenant.slug} ({self.actor.role_in(self.tenant)}) cannot "
                    f"{self.permission_action} {self.model._meta.verbose_name_plural}."
                )

    def scoped(self, action: str = "view") -> QuerySet:
        queryset = self.model.objects.restrict(self.actor, action)
        if self.model is Tenant:
            return queryset.filter(pk=self.tenant.pk)
        return queryset.filter(**{self.model.tenant_path: self.tenant})


class TenantScopedViewSet(TenantScopeMixin, viewsets.GenericViewSet):
    def get_queryset(self) -> QuerySet:
        if getattr(self, "swagger_fake_view", False):  # the schema generator has no actor
            return self.model.objects.none()
        return self.scoped("view")

    def get_object(self) -> Any:
        obj = super().get_object()  # 404 unless visible
        if self.permission_action != "view" and not self.scoped(self.permission_action).filter(pk=obj.pk).exists():
            raise PermissionDenied(f"You cannot {self.permission_action} this {self.model._meta.verbose_name}.")
        return obj


class TenantScopedAPIView(TenantScopeMixin, APIView):
    pass

"""Portal pages of the injector app: a tenant's environments, their agents, and the cluster manifest
of a kubernetes environment (the same YAML as the API's)."""
from __future__ import annotations

from typing import Any

from django.db.models import Count, Q
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404
from django.views import View
from django.views.generic import TemplateView

from tenants.portal import TenantPortalMixin

from . import services
from .models import Environment


def _yaml(env: Environment, text: str) -> HttpResponse:
    response = HttpResponse(text, content_type="application/yaml; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="chaosplane-{env.name}.yaml"'
    return response


class EnvironmentsView(TenantPortalMixin, TemplateView):
    """/t/<slug>/environments/: where this tenant's faults land."""

    model = Environment
    nav = "environments"
    template_name = "injector/environments.html"

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        context = super().get_context_data(**kwargs)
        context["environments"] = list(
            self.scoped(Environment).annotate(
                registered=Count("agents"), connected=Count("agents", filter=Q(agents__connected=True))
            ).order_by("name")
        )
        return context


class ClusterManifestView(TenantPortalMixin, View):
    """GET: the manifest with a placeholder token (anyone in the tenant). POST (owners): a new
    registration token, written into the manifest; the old token stops working."""

    model = Environment
    action = "change"

    def _env(self, name: str) -> Environment:
        return get_object_or_404(self.scoped(Environment), name=name, kind=Environment.Kind.KUBERNETES)

    def get(self, request: HttpRequest, tenant_slug: str, name: str) -> HttpResponse:
        env = self._env(name)
        return _yaml(env, services.cluster_manifest(env))

    def post(self, request: HttpRequest, tenant_slug: str, name: str) -> HttpResponse:
        env = self._env(name)
        token = services.rotate_registration_token(self.actor, env)
        return _yaml(env, services.cluster_manifest(env, token))

"""Tenant scoping and permissions, enforced once for every portal page (the portal's twin of
tenants.api.scoping).

`TenantPortalMixin` resolves the tenant of the URL among those the actor may see (else 404), maps the
request to an action (GET: view; POST: the view's declared `action`) and checks the actor's role for
it on the view's `model` (else 403). Pages then read through `scoped()`, so a row of another tenant,
or one the actor may not act on, is never in reach.
"""
from __future__ import annotations

from typing import Any

from django.contrib.auth.mixins import LoginRequiredMixin
from django.core.exceptions import PermissionDenied
from django.db.models import Model, QuerySet
from django.http import HttpRequest, HttpResponseBase
from django.shortcuts import get_object_or_404
from django.urls import reverse

from .actors import Actor
from .models import Tenant
from .roles import Role, at_least

# The tenant home page lives in experiments/ (it counts experiments and shows events), and tenants/
# never imports experiments/: the URL name is the only link between them.
TENANT_HOME_URL_NAME = "experiments:tenant-home"

SAFE_METHODS = {"GET", "HEAD", "OPTIONS"}


def tenant_home_url(tenant: Tenant | str) -> str:
    slug = tenant if isinstance(tenant, str) else tenant.slug
    return reverse(TENANT_HOME_URL_NAME, kwargs={"tenant_slug": slug})


def portal_actor(request: HttpRequest) -> Actor:
    """One Actor per request, shared by the view and the header (its roles are queried once)."""
    actor = getattr(request, "portal_actor", None)
    if actor is None:
        actor = Actor.from_request(request)
        request.portal_actor = actor  # type: ignore[attr-defined]
    return actor


class TenantPortalMixin(LoginRequiredMixin):
    """For portal views under /t/<tenant_slug>/."""

    #: The model whose role table decides who may use this page.
    model: type[Model] = Tenant
    #: The permission action a POST performs (GET, HEAD and OPTIONS always need "view").
    action: str = "view"
    #: Which item of the tenant navigation this page is.
    nav: str = ""

    actor: Actor
    tenant: Tenant
    role: str | None
    permission_action: str

    def dispatch(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
        if not request.user.is_authenticated:
            return self.handle_no_permission()
        self.actor = portal_actor(request)
        self.tenant = get_object_or_404(Tenant.objects.restrict(self.actor, "view"), slug=kwargs["tenant_slug"])
        self.role = self.actor.role_in(self.tenant)
        self.permission_action = "view" if request.method in SAFE_METHODS else self.action
        if not at_least(self.role, self.model.role_for(self.permission_action)):
            raise PermissionDenied(
                f"Your role in {self.tenant.slug} ({self.role}) cannot "
                f"{self.permission_action} {self.model._meta.verbose_name_plural}."
            )
        return super().dispatch(request, *args, **kwargs)

    def scoped(self, model: type[Model], action: str = "view") -> QuerySet:
        """`model`'s rows of this tenant on which the actor may perform `action`."""
        return model.objects.restrict(self.actor, action).filter(tenant=self.tenant)

    @property
    def is_owner(self) -> bool:
        return at_least(self.role, Role.OWNER)

    @property
    def is_operator(self) -> bool:
        """Operators and owners: they see the buttons that start, stop and change things."""
        return at_least(self.role, Role.OPERATOR)

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        context = super().get_context_data(**kwargs)
        context.update(tenant=self.tenant, role=self.role, actor=self.actor, is_owner=self.is_owner,
                       is_operator=self.is_operator, nav=self.nav)
        return context

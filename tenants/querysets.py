"""The one tenant-scoped query method every API view, portal view and task goes through.

`Model.objects.restrict(actor, action)` narrows a queryset to the rows the actor may act on:
first by the actor's role in each tenant, then by django-guardian object grants, which can widen
a role (a viewer granted `run` on one object) or narrow it (objects whose gate field is set need a
grant for the gated actions, except for owners). Modelled on NetBox's RestrictedQuerySet.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from django.db import models
from django.db.models import Q

from .roles import DEFAULT_ACTION_ROLES, Role, at_least

if TYPE_CHECKING:
    from .actors import Actor


class TenantOwned:
    """Mixin for models that live in a tenant; class attributes describe how restrict() sees them."""

    #: Path from the model to its Tenant ("" for Tenant itself).
    tenant_path = "tenant"
    #: Action -> least role; entries missing here come from DEFAULT_ACTION_ROLES.
    action_roles: dict[str, Role] = {}
    #: Actions for which a django-guardian grant on one object gives that action to any member.
    grant_actions: frozenset[str] = frozenset()
    #: Boolean field: when set on an object, non-owners need a grant for the grant_actions.
    grant_gate_field: str | None = None

    @classmethod
    def role_for(cls, action: str) -> Role:
        try:
            return cls.action_roles.get(action) or DEFAULT_ACTION_ROLES[action]
        except KeyError:
            raise ValueError(f"{cls.__name__} has no action {action!r}") from None

    @classmethod
    def member_scope(cls, actor: Actor, action: str) -> Q:
        """Extra narrowing for members below owner (for example: only their own tokens)."""
        return Q()


class RestrictedQuerySet(models.QuerySet):
    def restrict(self, actor: Actor | None, action: str = "view") -> RestrictedQuerySet:
        model = self.model
        if actor is None or not actor.is_authenticated:
            return self.none()
        if actor.is_system:
            return self
        required = model.role_for(action)
        tenant_key = f"{model.tenant_path}__in" if model.tenant_path else "pk__in"
        roles = actor.roles
        owner_tenants = [t for t, r in roles.items() if r == Role.OWNER and at_least(r, required)]
        other_tenants = [t for t, r in roles.items() if r != Role.OWNER and at_least(r, required)]
        below_owner = Q(**{tenant_key: other_tenants}) & model.member_scope(actor, action)

        if action in model.grant_actions:
            granted = actor.granted_pks(model, action)
            if model.grant_gate_field:
                below_owner &= Q(**{model.grant_gate_field: False}) | Q(pk__in=granted)
            if actor.token is None:
                # A grant widens a role, but only for members; tokens never exceed their role.
                below_owner |= Q(**{tenant_key: list(roles)}) & Q(pk__in=granted)

        return self.filter(Q(**{tenant_key: owner_tenants}) | below_owner)

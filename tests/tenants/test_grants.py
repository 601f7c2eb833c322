"""Object grants (django-guardian) narrow or widen a role, through the same restrict() as roles."""
from __future__ import annotations

from typing import Any

from guardian.shortcuts import assign_perm

from tenants.actors import Actor
from tests.grants.models import Widget


def names(actor: Actor, action: str) -> set[str]:
    return set(Widget.objects.restrict(actor, action).values_list("name", flat=True))


def test_roles_alone_decide_without_grants(world: Any) -> None:
    Widget.objects.create(tenant=world.acme, name="staging")
    assert names(Actor(user=world.operator.user), "run") == {"staging"}
    assert names(Actor(user=world.viewer.user), "run") == set()
    assert names(Actor(user=world.viewer.user), "view") == {"staging"}
    assert names(Actor(user=world.outsider.user), "view") == set()


def test_a_gated_object_needs_a_grant_below_owner(world: Any) -> None:
    Widget.objects.create(tenant=world.acme, name="staging")
    prod = Widget.objects.create(tenant=world.acme, name="prod", requires_grant=True)
    bob = Actor(user=world.operator.user)
    assert names(bob, "run") == {"staging"}
    assert names(Actor(user=world.owner.user), "run") == {"staging", "prod"}

    assign_perm("grants.run_widget", world.operator.user, prod)

    assert names(Actor(user=world.operator.user), "run") == {"staging", "prod"}
    assert names(Actor(user=world.operator.user), "view") == {"staging", "prod"}


def test_a_grant_widens_a_viewer_for_that_object_only(world: Any) -> None:
    Widget.objects.create(tenant=world.acme, name="staging")
    sandbox = Widget.objects.create(tenant=world.acme, name="sandbox")
    assign_perm("grants.run_widget", world.viewer.user, sandbox)
    assert names(Actor(user=world.viewer.user), "run") == {"sandbox"}


def test_a_grant_does_not_open_another_tenant(world: Any) -> None:
    foreign = Widget.objects.create(tenant=world.globex, name="globex-prod")
    assign_perm("grants.run_widget", world.viewer.user, foreign)
    assert names(Actor(user=world.viewer.user), "run") == set()


def test_a_token_never_widens_past_its_role(world: Any) -> None:
    from tenants.models import ApiToken

    sandbox = Widget.objects.create(tenant=world.acme, name="sandbox")
    assign_perm("grants.run_widget", world.viewer.user, sandbox)
    token = ApiToken.objects.get(user=world.viewer.user)
    assert names(Actor(user=world.viewer.user, token=token), "run") == set()

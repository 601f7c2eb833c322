"""Who is acting: a user (portal or API session), an API token (bound to its user), or the system."""
from __future__ import annotations

from functools import cached_property
from typing import TYPE_CHECKING, Any

from django.db.models import Model

from .models import ApiToken, Membership
from .roles import lower_of

if TYPE_CHECKING:
    from django.contrib.auth.models import AbstractBaseUser


class Actor:
    def __init__(
        self,
        user: AbstractBaseUser | None = None,
        token: ApiToken | None = None,
        remote_addr: str | None = None,
        system: bool = False,
        label: str | None = None,
    ) -> None:
        self.user = user
        self.token = token
        self.remote_addr = remote_addr
        self.is_system = system
        self._label = label

    @classmethod
    def system_actor(cls, label: str = "system") -> Actor:
        return cls(system=True, label=label)

    @classmethod
    def from_request(cls, request: Any) -> Actor:
        """The actor of a Django or DRF request; a portal session logged in with a token keeps it."""
        token = getattr(request, "auth", None)
        if token is None:
            token = getattr(request, "session_token", None)
        if not isinstance(token, ApiToken):
            token = None
        return cls(user=request.user, token=token, remote_addr=client_address(request))

    @property
    def is_authenticated(self) -> bool:
        return self.is_system or bool(self.user is not None and self.user.is_authenticated)

    @property
    def label(self) -> str:
        if self._label:
            return self._label
        if self.token is not None:
            return f"token:{self.token.prefix} ({self.user.get_username()})"
        if self.user is not None and self.user.is_authenticated:
            return self.user.get_username()
        return "anonymous"

    def __str__(self) -> str:
        """Who, in words for events and messages ("alice", "token:cp_ab12 (alice)", "schedule:nightly")."""
        return self.label

    @property
    def kind(self) -> str:
        if self.is_system:
            return "system"
        return "token" if self.token is not None else "user"

    @cached_property
    def roles(self) -> dict[int, str]:
        """tenant id -> effective role; a token reaches only its tenant, at most at its role."""
        if not self.is_authenticated or self.is_system:
            return {}
        memberships = dict(Membership.objects.filter(user=self.user).values_list("tenant_id", "role"))
        if self.token is None:
            return memberships
        role = lower_of(self.token.role, memberships.get(self.token.tenant_id))
        return {self.token.tenant_id: role} if role else {}

    def role_in(self, tenant: Model | int) -> str | None:
        tenant_id = tenant if isinstance(tenant, int) else tenant.pk
        return self.roles.get(tenant_id)

    def granted_pks(self, model: type[Model], action: str) -> Any:
        """Primary keys of `model` objects on which this actor's user holds the `action` grant."""
        from guardian.shortcuts import get_objects_for_user

        perm = f"{model._meta.app_label}.{action}_{model._meta.model_name}"
        return get_objects_for_user(
            self.user, perm, klass=model.objects.all(), accept_global_perms=False, with_superuser=False
        ).values("pk")


def client_address(request: Any) -> str | None:
    # REMOTE_ADDR only: X-Forwarded-For is trusted only behind a proxy we configure, later.
    return request.META.get("REMOTE_ADDR")

"""Domain operations on tenants, members, tokens and policy.

The API, the portal and the management commands call these and nothing else of substance. Each
operation checks its rules, makes its change and writes its audit entry in one transaction, and
raises `ValidationError` (naming the field) or `PermissionDenied` without changing anything.
"""
from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.contrib.auth import get_user_model
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from . import audit
from .actors import Actor
from .bearer import hash_secret
from .models import ApiToken, Membership, Policy, Tenant
from .roles import Role, at_least, lower_of, rank

User = get_user_model()

POLICY_FIELDS = (
    "protected_namespaces",
    "namespace_allowlist",
    "require_opt_in_annotation",
    "max_targets",
    "max_target_percent",
    "max_duration_seconds",
    "max_concurrent_runs",
    "allowed_windows",
    "dry_run_by_default",
)


def _require(actor: Actor, tenant: Tenant, role: str) -> None:
    if not at_least(actor.role_in(tenant), role):
        raise PermissionDenied(f"this needs the {role} role in {tenant.slug}")


def tenant_snapshot(tenant: Tenant) -> dict[str, Any]:
    return {"slug": tenant.slug, "name": tenant.name}


def membership_snapshot(m: Membership) -> dict[str, Any]:
    return {"username": m.user.get_username(), "role": m.role}


def token_snapshot(t: ApiToken) -> dict[str, Any]:
    return {
        "name": t.name,
        "prefix": t.prefix,
        "role": t.role,
        "user": t.user.get_username(),
        "expires_at": t.expires_at,
        "revoked_at": t.revoked_at,
    }


def policy_snapshot(p: Policy) -> dict[str, Any]:
    return {field: getattr(p, field) for field in POLICY_FIELDS}


# Tenants ------------------------------------------------------------------------------------------


@transaction.atomic
def create_tenant(actor: Actor, slug: str, name: str, owner: Any) -> Tenant:
    """A new tenant with `owner` as its first owner and the default policy."""
    tenant = Tenant(slug=slug, name=name or slug)
    tenant.full_clean()
    try:
        with transaction.atomic():
            tenant.save()
    except IntegrityError:
        raise ValidationError({"slug": f"a tenant with slug {slug!r} already exists"}) from None
    Membership.objects.create(tenant=tenant, user=owner, role=Role.OWNER)
    policy = Policy.objects.create(tenant=tenant)
    after = tenant_snapshot(tenant) | {"owner": owner.get_username(), "policy": policy_snapshot(policy)}
    audit.record(actor, tenant, "tenant.create", tenant, after=after)
    return tenant


@transaction.atomic
def rename_tenant(actor: Actor, tenant: Tenant, name: str) -> Tenant:
    _require(actor, tenant, Role.OWNER)
    before = tenant_snapshot(tenant)
    tenant.name = name
    tenant.full_clean()
    tenant.save(update_fields=["name"])
    audit.record(actor, tenant, "tenant.update", tenant, before=before, after=tenant_snapshot(tenant))
    return tenant


# Members ------------------------------------------------------------------------------------------


def _validate_role(role: Any, field: str = "role") -> Role:
    if role not in Role.values:
        raise ValidationError({field: f"unknown role {role!r}; choose one of {', '.join(Role.values)}"})
    return Role(role)


def _other_owner_exists(membership: Membership) -> bool:
    return (
        Membership.objects.select_for_update()
        .filter(tenant_id=membership.tenant_id, role=Role.OWNER)
        .exclude(pk=membership.pk)
        .exists()
    )


@transaction.atomic
def add_member(actor: Actor, tenant: Tenant, username: str, role: str) -> Membership:
    _require(actor, tenant, Role.OWNER)
    role = _validate_role(role)
    user = User.objects.filter(username=username).first()
    if user is None:
        raise ValidationError({"username": f"no user named {username!r}"})
    if Membership.objects.filter(tenant=tenant, user=user).exists():
        raise ValidationError({"username": f"{username!r} is already a member of {tenant.slug}"})
    membership = Membership.objects.create(tenant=tenant, user=user, role=role)
    audit.record(actor, tenant, "member.add", membership, after=membership_snapshot(membership))
    return membership


@transaction.atomic
def change_role(actor: Actor, membership: Membership, role: str) -> Membership:
    tenant = membership.tenant
    _require(actor, tenant, Role.OWNER)
    role = _validate_role(role)
    membership = Membership.objects.select_for_update().select_related("user").get(pk=membership.pk)
    before = membership_snapshot(membership)
    if membership.role == Role.OWNER and role != Role.OWNER and not _other_owner_exists(membership):
        raise ValidationError({"role": "the last owner of a tenant cannot be demoted; make another owner first"})
    membership.role = role
    membership.save(update_fields=["role"])
    audit.record(actor, tenant, "member.update", membership, before=before, after=membership_snapshot(membership))
    return membership


@transaction.atomic
def remove_member(actor: Actor, membership: Membership) -> None:
    tenant = membership.tenant
    _require(actor, tenant, Role.OWNER)
    membership = Membership.objects.select_for_update().select_related("user").get(pk=membership.pk)
    if membership.role == Role.OWNER and not _other_owner_exists(membership):
        raise ValidationError({"username": "the last owner of a tenant cannot be removed; make another owner first"})
    # A removed member's tokens stop working with the membership; revoke them so the list says so,
    # and name them in the one entry this removal writes.
    tokens = ApiToken.objects.filter(tenant=tenant, user=membership.user, revoked_at__isnull=True)
    revoked = sorted(tokens.values_list("prefix", flat=True))
    tokens.update(revoked_at=timezone.now())
    before = membership_snapshot(membership)
    pk = membership.pk
    membership.delete()
    audit.record(
        actor, tenant, "member.remove", object_type="membership", object_id=pk,
        before=before, after={"revoked_tokens": revoked},
    )


# Tokens -------------------------------------------------------------------------------------------

MAX_TOKEN_DAYS = 3650


@dataclass(frozen=True)
class IssuedToken:
    token: ApiToken
    secret: str  # the full bearer string; shown once, never stored


@transaction.atomic
def issue_token(
    actor: Actor, tenant: Tenant, name: str, role: str, expires_in_days: int | None = None, user: Any = None
) -> IssuedToken:
    """A token for `user` (default: the actor's user), never above the role of who issues it."""
    role = _validate_role(role)
    holder = user if user is not None else actor.user
    if holder is None:
        raise ValidationError({"user": "a token belongs to a user"})
    holder_role = Membership.objects.filter(tenant=tenant, user=holder).values_list("role", flat=True).first()
    if holder_role is None:
        raise ValidationError({"user": f"{holder.get_username()!r} is not a member of {tenant.slug}"})
    if actor.is_system:
        issuer_role = holder_role
    else:
        if holder != actor.user:
            _require(actor, tenant, Role.OWNER)
        issuer_role = actor.role_in(tenant)
    cap = lower_of(holder_role, issuer_role)
    if rank(role) > rank(cap):
        raise ValidationError({"role": f"a token cannot have a role above its creator's ({cap})"})
    name = (name or "").strip()
    if not name:
        raise ValidationError({"name": "a token needs a name"})
    if len(name) > ApiToken._meta.get_field("name").max_length:
        raise ValidationError({"name": "at most 80 characters"})
    if expires_in_days is not None and not (1 <= expires_in_days <= MAX_TOKEN_DAYS):
        raise ValidationError({"expires_in_days": f"between 1 and {MAX_TOKEN_DAYS} days, or none for no expiry"})
    if ApiToken.objects.filter(tenant=tenant, name=name, revoked_at__isnull=True).exists():
        raise ValidationError({"name": f"an active token named {name!r} already exists in {tenant.slug}"})
    prefix, secret, full = ApiToken.new_secret()
    token = ApiToken.objects.create(
        tenant=tenant,
        user=holder,
        name=name,
        role=role,
        prefix=prefix,
        secret_hash=hash_secret(secret),
        expires_at=timezone.now() + timedelta(days=expires_in_days) if expires_in_days else None,
    )
    audit.record(actor, tenant, "token.create", token, after=token_snapshot(token))
    return IssuedToken(token=token, secret=full)


@transaction.atomic
def revoke_token(actor: Actor, token: ApiToken) -> bool:
    """Revoke; False (and no entry) when it was already revoked."""
    token = ApiToken.objects.select_for_update().select_related("user", "tenant").get(pk=token.pk)
    if token.user != actor.user and not actor.is_system:
        _require(actor, token.tenant, Role.OWNER)
    if token.revoked_at is not None:
        return False
    before = token_snapshot(token)
    token.revoked_at = timezone.now()
    token.save(update_fields=["revoked_at"])
    audit.record(actor, token.tenant, "token.revoke", token, before=before, after=token_snapshot(token))
    return True


def authenticate_token(raw: str) -> ApiToken | None:
    """The active token whose secret this is, or None. Records the last-used time (at most once a minute)."""
    parts = ApiToken.split(raw.strip())
    if parts is None:
        return None
    prefix, secret = parts
    token = ApiToken.objects.select_related("user", "tenant").filter(prefix=prefix).first()
    if token is None or not token.matches(secret) or not token_in_force(token):
        return None
    record_token_use(token)
    return token


def token_in_force(token: ApiToken) -> bool:
    """Active (not revoked, not expired), its user active and still a member of its tenant."""
    return (
        token.is_active
        and token.user.is_active
        and Membership.objects.filter(tenant_id=token.tenant_id, user_id=token.user_id).exists()
    )


def record_token_use(token: ApiToken) -> None:
    """Keep "last used" true to the minute, with at most one write a minute per token."""
    now = timezone.now()
    stale = now - timedelta(minutes=1)
    if token.last_used_at is None or token.last_used_at < stale:
        ApiToken.objects.filter(Q(last_used_at__isnull=True) | Q(last_used_at__lt=stale), pk=token.pk).update(
            last_used_at=now
        )
        token.last_used_at = now


# Policy -------------------------------------------------------------------------------------------


@transaction.atomic
def update_policy(actor: Actor, tenant: Tenant, changes: dict[str, Any]) -> Policy:
    """Apply already-validated field changes to the tenant's policy."""
    _require(actor, tenant, Role.OWNER)
    policy, _ = Policy.objects.select_for_update().get_or_create(tenant=tenant)
    before = policy_snapshot(policy)
    unknown = set(changes) - set(POLICY_FIELDS)
    if unknown:
        raise ValidationError({sorted(unknown)[0]: "not a policy field"})
    for field, value in changes.items():
        setattr(policy, field, value)
    policy.full_clean(exclude=["tenant"])
    policy.save()
    after = policy_snapshot(policy)
    if after != before:
        audit.record(actor, tenant, "policy.update", policy, before=before, after=after)
    return policy


# Users --------------------------------------------------------------------------------------------


def ensure_user(username: str) -> tuple[Any, str | None]:
    """The user named `username`, created with a generated password when missing (returned once)."""
    user = User.objects.filter(username=username).first()
    if user is not None:
        return user, None
    field = User._meta.get_field("username")
    try:
        field.run_validators(username)
        field.clean(username, None)
    except ValidationError as error:
        raise ValidationError({"username": error.messages}) from None
    password = secrets.token_urlsafe(18)
    user = User.objects.create_user(username=username, password=password)
    return user, password

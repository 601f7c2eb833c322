"""Tenants (teams), their members and roles, API tokens, blast-radius policy and the audit log."""
from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator, RegexValidator
from django.db import models
from django.db.models import Q
from django.utils import timezone

from .bearer import PREFIX_LENGTH, new_bearer, secret_matches, split_bearer
from .querysets import RestrictedQuerySet, TenantOwned
from .roles import Role

SLUG_VALIDATOR = RegexValidator(
    r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$",
    "Use 1 to 63 lowercase letters, digits and hyphens, starting and ending with a letter or digit.",
)


class Tenant(TenantOwned, models.Model):
    tenant_path = ""
    action_roles = {"change": Role.OWNER, "delete": Role.OWNER, "manage": Role.OWNER}

    slug = models.CharField(max_length=63, unique=True, validators=[SLUG_VALIDATOR])
    name = models.CharField(max_length=120)
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    objects = RestrictedQuerySet.as_manager()

    class Meta:
        ordering = ["slug"]

    def __str__(self) -> str:
        return self.slug


class Membership(TenantOwned, models.Model):
    action_roles = {"add": Role.OWNER, "change": Role.OWNER, "delete": Role.OWNER}

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="memberships")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(max_length=16, choices=Role.choices)
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    objects = RestrictedQuerySet.as_manager()

    class Meta:
        ordering = ["tenant", "user__username"]
        constraints = [models.UniqueConstraint(fields=["tenant", "user"], name="one_membership_per_user")]

    def __str__(self) -> str:
        return f"{self.user} in {self.tenant} as {self.role}"


TOKEN_MARK = "cpt"  # noqa: S105 (a marker, not a secret)


class ApiToken(TenantOwned, models.Model):
    """A bearer credential `cpt_<prefix>_<secret>`: the prefix finds the row, the hash proves it."""

    # Every member may hold tokens (at most at their role) and see the tenant's list (names and
    # prefixes, never secrets: the audit log shows as much); members revoke their own, owners any.
    action_roles = {"add": Role.VIEWER, "delete": Role.VIEWER, "change": Role.VIEWER}

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="tokens")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens")
    name = models.CharField(max_length=80)
    role = models.CharField(max_length=16, choices=Role.choices)
    prefix = models.CharField(max_length=PREFIX_LENGTH, unique=True, editable=False)
    secret_hash = models.CharField(max_length=64, editable=False)
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    expires_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    last_used_at = models.DateTimeField(null=True, blank=True)

    objects = RestrictedQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["tenant", "name"], condition=Q(revoked_at__isnull=True), name="active_token_name_unique"
            )
        ]

    def __str__(self) -> str:
        return f"{self.name} ({TOKEN_MARK}_{self.prefix}_…)"

    @classmethod
    def member_scope(cls, actor: Any, action: str) -> Q:
        return Q() if action == "view" else Q(user=actor.user)

    @staticmethod
    def new_secret() -> tuple[str, str, str]:
        """(prefix, secret, full token); only the prefix and the secret's hash are ever stored."""
        return new_bearer(TOKEN_MARK)

    @staticmethod
    def split(raw: str) -> tuple[str, str] | None:
        return split_bearer(TOKEN_MARK, raw)

    def matches(self, secret: str) -> bool:
        return secret_matches(self.secret_hash, secret)

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None and (self.expires_at is None or self.expires_at > timezone.now())

    @property
    def state(self) -> str:
        if self.revoked_at is not None:
            return "revoked"
        if self.expires_at is not None and self.expires_at <= timezone.now():
            return "expired"
        return "active"


def default_protected_namespaces() -> list[str]:
    return ["kube-system"]


class Policy(TenantOwned, models.Model):
    """Blast-radius limits of one tenant, checked before every injection (enforced with runs)."""

    action_roles = {"change": Role.OWNER}

    tenant = models.OneToOneField(Tenant, on_delete=models.CASCADE, related_name="policy")
    protected_namespaces = models.JSONField(default=default_protected_namespaces, blank=True)
    namespace_allowlist = models.JSONField(default=list, blank=True)
    require_opt_in_annotation = models.BooleanField(default=False)
    max_targets = models.PositiveIntegerField(null=True, blank=True)
    max_target_percent = models.PositiveSmallIntegerField(
        null=True, blank=True, validators=[MinValueValidator(1), MaxValueValidator(100)]
    )
    max_duration_seconds = models.PositiveIntegerField(null=True, blank=True)
    max_concurrent_runs = models.PositiveIntegerField(null=True, blank=True)
    allowed_windows = models.JSONField(default=list, blank=True)
    dry_run_by_default = models.BooleanField(default=False)
    updated_at = models.DateTimeField(auto_now=True)

    objects = RestrictedQuerySet.as_manager()

    def __str__(self) -> str:
        return f"policy of {self.tenant}"


OPT_IN_ANNOTATION = "chaosplane.io/inject"


class AppendOnlyQuerySet(RestrictedQuerySet):
    def update(self, **kwargs: Any) -> int:
        raise PermissionError("audit entries are append-only")

    def delete(self) -> Any:
        raise PermissionError("audit entries are append-only")

    def bulk_update(self, *args: Any, **kwargs: Any) -> int:
        raise PermissionError("audit entries are append-only")


class AuditEntry(TenantOwned, models.Model):
    """One thing someone did. Append-only (here and by database triggers); entries of a tenant form a
    hash chain: each stores the previous entry's hash and its own hash over its content."""

    class ActorKind(models.TextChoices):
        USER = "user"
        TOKEN = "token"  # noqa: S105
        SYSTEM = "system"

    tenant = models.ForeignKey(Tenant, on_delete=models.PROTECT, related_name="audit_entries")
    seq = models.PositiveBigIntegerField()
    created_at = models.DateTimeField(default=timezone.now)
    actor_kind = models.CharField(max_length=8, choices=ActorKind.choices)
    # No foreign-key constraints: deleting a user or token must not rewrite the log.
    actor_user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.DO_NOTHING, db_constraint=False, related_name="+"
    )
    actor_token = models.ForeignKey(
        ApiToken, null=True, on_delete=models.DO_NOTHING, db_constraint=False, related_name="+"
    )
    actor_label = models.CharField(max_length=200)
    action = models.CharField(max_length=64)
    object_type = models.CharField(max_length=64)
    object_id = models.CharField(max_length=64)
    before = models.JSONField(null=True)
    after = models.JSONField(null=True)
    remote_addr = models.GenericIPAddressField(null=True)
    prev_hash = models.CharField(max_length=64)
    entry_hash = models.CharField(max_length=64)

    objects = AppendOnlyQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-seq"]
        constraints = [models.UniqueConstraint(fields=["tenant", "seq"], name="audit_seq_unique_per_tenant")]
        indexes = [models.Index(fields=["tenant", "-seq"]), models.Index(fields=["tenant", "created_at"])]
        verbose_name_plural = "audit entries"

    def __str__(self) -> str:
        return f"#{self.seq} {self.actor_label} {self.action} {self.object_type}:{self.object_id}"

    def save(self, *args: Any, **kwargs: Any) -> None:
        if not self._state.adding:
            raise PermissionError("audit entries are append-only")
        super().save(*args, **kwargs)

    def delete(self, *args: Any, **kwargs: Any) -> Any:
        raise PermissionError("audit entries are append-only")


GENESIS_HASH = "0" * 64
TOKEN_TTL_MAX = timedelta(days=3650)

"""WHERE faults land: environments of a tenant, and the node agents registered into them.

Secrets (an environment's registration token, an agent's credential) follow the ApiToken pattern of
tenants.models: `<mark>_<prefix>_<secret>`, the prefix finds the row, only a hash of the secret is
stored, and the full string is shown once.
"""
from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models
from django.utils import timezone

from tenants.bearer import PREFIX_LENGTH
from tenants.models import SLUG_VALIDATOR, Tenant
from tenants.querysets import RestrictedQuerySet, TenantOwned
from tenants.roles import Role

REGISTRATION_MARK = "cpr"  # an environment's registration token
CREDENTIAL_MARK = "cpa"  # an agent's own credential, handed out once in Welcome


class Environment(TenantOwned, models.Model):
    """Where faults land: a Kubernetes cluster, a group of hosts running the node agent, a cloud account."""

    class Kind(models.TextChoices):
        KUBERNETES = "kubernetes", "Kubernetes cluster"
        HOSTS = "hosts", "Hosts (node agent)"
        AWS = "aws", "AWS account"
        GCP = "gcp", "GCP project"
        AZURE = "azure", "Azure subscription"

    # Owners manage environments; running against one is an operator's, narrowed per object by
    # `requires_grant` (e.g. only some operators may run against `prod`).
    action_roles = {"add": Role.OWNER, "change": Role.OWNER, "delete": Role.OWNER}
    grant_actions = frozenset({"run"})
    grant_gate_field = "requires_grant"

    uuid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="environments")
    name = models.CharField(max_length=63, validators=[SLUG_VALIDATOR])
    kind = models.CharField(max_length=16, choices=Kind.choices)
    requires_grant = models.BooleanField(
        default=False, help_text="Only owners and members granted `run` on this environment may run against it."
    )
    #: What the kind needs that is not secret (API URL, region, project...): injector.credentials.
    config = models.JSONField(default=dict, blank=True)
    #: The kind's secrets (token, kubeconfig, keys), encrypted by injector.secrets; never shown again.
    secrets_encrypted = models.TextField(blank=True, editable=False)
    registration_prefix = models.CharField(max_length=PREFIX_LENGTH, unique=True, null=True, editable=False)
    registration_hash = models.CharField(max_length=64, blank=True, editable=False)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    objects = RestrictedQuerySet.as_manager()

    class Meta:
        ordering = ["tenant", "name"]
        constraints = [models.UniqueConstraint(fields=["tenant", "name"], name="environment_name_unique")]
        permissions = [("run_environment", "Can run experiments against the environment")]

    def __str__(self) -> str:
        return f"{self.tenant}/{self.name}"


class Agent(TenantOwned, models.Model):
    """A node agent registered into one `hosts` environment. Its tenant is its environment's tenant,
    copied here so restrict() and the gateway's tenant check need no join."""

    action_roles = {"add": Role.OWNER, "change": Role.OWNER, "delete": Role.OWNER}

    uuid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="agents")
    environment = models.ForeignKey(Environment, on_delete=models.CASCADE, related_name="agents")
    name = models.CharField(max_length=253)
    hostname = models.CharField(max_length=253, blank=True)
    labels = models.JSONField(default=dict, blank=True)
    #: capability name -> {"available": bool, "detail": str}, as the agent last reported it
    capabilities = models.JSONField(default=dict, blank=True)
    version = models.CharField(max_length=64, blank=True)
    connected = models.BooleanField(default=False)
    connected_at = models.DateTimeField(null=True, blank=True)
    last_heartbeat = models.DateTimeField(null=True, blank=True)
    #: name of the gateway holding the agent's stream (empty when not connected)
    connected_gateway = models.CharField(max_length=200, blank=True)
    #: the stream now holding the agent: an older stream ending late must not mark it disconnected
    session = models.UUIDField(null=True, blank=True, editable=False)
    credential_prefix = models.CharField(max_length=PREFIX_LENGTH, unique=True, null=True, editable=False)
    credential_hash = models.CharField(max_length=64, blank=True, editable=False)
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    objects = RestrictedQuerySet.as_manager()

    class Meta:
        ordering = ["environment", "name"]
        constraints = [models.UniqueConstraint(fields=["environment", "name"], name="agent_name_unique_in_env")]
        indexes = [models.Index(fields=["tenant", "connected"])]

    def __str__(self) -> str:
        return f"{self.name} ({self.environment})"

    def has_capability(self, name: str) -> bool:
        return bool(self.capabilities.get(name, {}).get("available"))

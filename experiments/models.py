"""WHAT and WHEN: experiments (a fault with its targets and duration), schedules, workflows, status
checks and events, per tenant. Definitions are stored in the catalogue's canonical JSON, so they
export to Chaos Mesh manifests and parse back to the same thing (injector.manifests)."""
from __future__ import annotations

import uuid
from typing import Any

from django.conf import settings
from django.db import models
from django.utils import timezone

from tenants.models import Tenant
from tenants.querysets import RestrictedQuerySet, TenantOwned

NAME_LENGTH = 253  # a Kubernetes object name, as in the manifests these come from


class TenantNamedObject(TenantOwned, models.Model):
    uuid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="+")
    name = models.CharField(max_length=NAME_LENGTH)
    #: The Chaos Mesh namespace the definition came with: the default namespace of its selectors.
    namespace = models.CharField(max_length=63, blank=True)
    labels = models.JSONField(default=dict, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    updated_at = models.DateTimeField(auto_now=True)

    objects = RestrictedQuerySet.as_manager()

    class Meta:
        abstract = True
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class Experiment(TenantNamedObject):
    """A reusable fault definition: kind + action + parameters, selector + mode, duration."""

    description = models.TextField(blank=True)
    kind = models.CharField(max_length=40)
    action = models.CharField(max_length=40)
    params = models.JSONField(default=dict, blank=True)
    selector = models.JSONField(null=True, blank=True)
    mode = models.CharField(max_length=24, blank=True)
    mode_value = models.PositiveIntegerField(null=True, blank=True)
    #: Canonical duration text ("30s"); empty: until stopped (or one-shot).
    duration = models.CharField(max_length=40, blank=True)

    class Meta(TenantNamedObject.Meta):
        constraints = [models.UniqueConstraint(fields=["tenant", "name"], name="experiment_name_unique")]
        indexes = [models.Index(fields=["tenant", "kind"])]

    def spec(self) -> dict[str, Any]:
        """The Chaos Mesh spec of this experiment (what a manifest's `spec` holds)."""
        out: dict[str, Any] = {"action": self.action} if self.action else {}
        if self.mode:
            out["mode"] = self.mode
            if self.mode_value is not None:
                out["value"] = str(self.mode_value)
        if self.selector is not None:
            out["selector"] = self.selector
        out.update(self.params)
        if self.duration:
            out["duration"] = self.duration
        return out


class Workflow(TenantNamedObject):
    """A tree of nodes (Chaos Mesh Workflow spec: entry + templates), stored canonically."""

    description = models.TextField(blank=True)
    spec = models.JSONField(default=dict, blank=True)

    class Meta(TenantNamedObject.Meta):
        constraints = [models.UniqueConstraint(fields=["tenant", "name"], name="workflow_name_unique")]


class Schedule(TenantNamedObject):
    """Runs an experiment or a workflow on a cron schedule (the scheduler comes with its own issue)."""

    class ConcurrencyPolicy(models.TextChoices):
        FORBID = "Forbid"
        ALLOW = "Allow"

    description = models.TextField(blank=True)
    cron = models.CharField(max_length=200, blank=True)
    time_zone = models.CharField(max_length=64, default="UTC")
    experiment = models.ForeignKey(
        Experiment, null=True, blank=True, on_delete=models.PROTECT, related_name="schedules"
    )
    workflow = models.ForeignKey(Workflow, null=True, blank=True, on_delete=models.PROTECT, related_name="schedules")
    concurrency_policy = models.CharField(max_length=8, choices=ConcurrencyPolicy.choices, default="Forbid")
    history_limit = models.PositiveIntegerField(null=True, blank=True)
    starting_deadline_seconds = models.PositiveIntegerField(null=True, blank=True)
    paused = models.BooleanField(default=False)

    class Meta(TenantNamedObject.Meta):
        constraints = [models.UniqueConstraint(fields=["tenant", "name"], name="schedule_name_unique")]


class StatusCheck(TenantNamedObject):
    """A reusable steady-state check (Chaos Mesh StatusCheck spec), stored canonically."""

    description = models.TextField(blank=True)
    spec = models.JSONField(default=dict, blank=True)

    class Meta(TenantNamedObject.Meta):
        constraints = [models.UniqueConstraint(fields=["tenant", "name"], name="statuscheck_name_unique")]


class Event(TenantOwned, models.Model):
    """An entry on a tenant's timeline."""

    class Type(models.TextChoices):
        NORMAL = "normal"
        WARNING = "warning"

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="+")
    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    type = models.CharField(max_length=8, choices=Type.choices, default=Type.NORMAL)
    reason = models.CharField(max_length=64)
    message = models.TextField(blank=True)
    object_type = models.CharField(max_length=64, blank=True)
    object_id = models.CharField(max_length=64, blank=True)

    objects = RestrictedQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.reason}: {self.message}"

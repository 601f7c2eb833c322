"""WHAT and WHEN. This issue lays the tenant-scoped shells the portal's home page counts; the
catalogue, run, schedule and workflow issues give them their fields and behaviour."""
from __future__ import annotations

import uuid

from django.db import models
from django.utils import timezone

from tenants.models import Tenant
from tenants.querysets import RestrictedQuerySet, TenantOwned


class TenantNamedObject(TenantOwned, models.Model):
    uuid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="+")
    name = models.CharField(max_length=120)
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    objects = RestrictedQuerySet.as_manager()

    class Meta:
        abstract = True
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class Experiment(TenantNamedObject):
    class Meta(TenantNamedObject.Meta):
        constraints = [models.UniqueConstraint(fields=["tenant", "name"], name="experiment_name_unique")]


class Schedule(TenantNamedObject):
    class Meta(TenantNamedObject.Meta):
        constraints = [models.UniqueConstraint(fields=["tenant", "name"], name="schedule_name_unique")]


class Workflow(TenantNamedObject):
    class Meta(TenantNamedObject.Meta):
        constraints = [models.UniqueConstraint(fields=["tenant", "name"], name="workflow_name_unique")]


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

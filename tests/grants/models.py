"""A tenant-owned model used only by tests, wired like environments will be: `run` can be granted
per object (widening a viewer), and a gated object needs a grant to be run by a non-owner."""
from django.db import models

from tenants.models import Tenant
from tenants.querysets import RestrictedQuerySet, TenantOwned


class Widget(TenantOwned, models.Model):
    grant_actions = frozenset({"run"})
    grant_gate_field = "requires_grant"

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE)
    name = models.CharField(max_length=50)
    requires_grant = models.BooleanField(default=False)

    objects = RestrictedQuerySet.as_manager()

    class Meta:
        permissions = [("run_widget", "Can run widget")]

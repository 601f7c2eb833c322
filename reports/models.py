"""What reports and notifications keep per tenant: webhooks and their delivery log, and who gets the
monthly audit report by e-mail. Run reports and audit reports themselves are computed when asked
(reports.run_report, reports.audit_report) from rows that never change once a run has ended."""
from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models
from django.utils import timezone

from tenants.models import Tenant
from tenants.querysets import RestrictedQuerySet, TenantOwned
from tenants.roles import Role

#: What a webhook can be told about, named as in its payload's `event`.
NOTIFICATION_EVENTS = (
    "run.started",
    "run.finished",
    "run.failed",
    "run.aborted",
    "halt",
    "schedule.missed",
    "agent.lost",
)


class Webhook(TenantOwned, models.Model):
    """An HTTP endpoint told about a tenant's runs as they happen (reports.webhooks).

    `generic` posts Chaosplane's JSON signed with HMAC-SHA256 over the body; `slack` posts Slack's
    incoming-webhook JSON ({"text": ..., "blocks": ...}); `grafana` posts one Grafana annotation per run
    window (time, timeEnd, tags, text) to .../api/annotations with the secret as its bearer token."""

    class Format(models.TextChoices):
        GENERIC = "generic"
        SLACK = "slack"
        GRAFANA = "grafana"

    # Webhooks reach out of the platform with a tenant's secrets: an owner's to manage; operators see
    # them and their delivery log, viewers do not.
    action_roles = {"view": Role.OPERATOR, "add": Role.OWNER, "change": Role.OWNER, "delete": Role.OWNER}

    uuid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="+")
    name = models.CharField(max_length=80)
    #: The URL is a secret too (a Slack incoming-webhook URL is its own credential): stored encrypted by
    #: injector.secrets, shown only as its hint ("https://hooks.slack.com/…").
    url_encrypted = models.TextField(editable=False)
    url_hint = models.CharField(max_length=300, editable=False)
    format = models.CharField(max_length=8, choices=Format.choices, default=Format.GENERIC)
    #: The NOTIFICATION_EVENTS it wants; empty means all of them.
    events = models.JSONField(default=list, blank=True)
    #: The signing secret (generic), or Grafana's API token: encrypted by injector.secrets, never shown again.
    secret_encrypted = models.TextField(blank=True, editable=False)
    enabled = models.BooleanField(default=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    updated_at = models.DateTimeField(auto_now=True)

    objects = RestrictedQuerySet.as_manager()

    class Meta:
        ordering = ["name"]
        constraints = [models.UniqueConstraint(fields=["tenant", "name"], name="webhook_name_unique")]

    def __str__(self) -> str:
        return self.name

    def wants(self, event: str) -> bool:
        return self.enabled and (not self.events or event in self.events)


class WebhookDelivery(models.Model):
    """One notification to one webhook, with its attempts: the delivery log.

    (webhook, event_key) is unique, so an event that is noticed twice (a retried task, two workers)
    is delivered once."""

    class State(models.TextChoices):
        PENDING = "pending"  # waiting for its next attempt
        DELIVERED = "delivered"
        FAILED = "failed"  # out of attempts

    uuid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    webhook = models.ForeignKey(Webhook, on_delete=models.CASCADE, related_name="deliveries")
    event = models.CharField(max_length=32)
    #: What makes this notification unique ("run.finished:<run uuid>", "test:<uuid>").
    event_key = models.CharField(max_length=200)
    payload = models.JSONField(default=dict)
    state = models.CharField(max_length=10, choices=State.choices, default=State.PENDING, db_index=True)
    attempts = models.PositiveSmallIntegerField(default=0)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    #: The last attempt: HTTP status (null when none came back), error text, how long it took.
    response_status = models.PositiveSmallIntegerField(null=True, blank=True)
    error = models.TextField(blank=True)
    duration_ms = models.PositiveIntegerField(null=True, blank=True)
    #: Every attempt, oldest first: [{"at", "status", "error", "ms"}].
    log = models.JSONField(default=list, blank=True)
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    delivered_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["webhook", "event_key"], name="webhook_delivery_once"),
        ]

    def __str__(self) -> str:
        return f"{self.event} to {self.webhook_id}: {self.state}"


class AuditReportSubscription(TenantOwned, models.Model):
    """The tenant's monthly audit report, e-mailed (as PDF and CSV) on the first day of each month for
    the month before (reports.tasks.send_monthly_audit_reports)."""

    action_roles = {"add": Role.OWNER, "change": Role.OWNER, "delete": Role.OWNER}

    tenant = models.OneToOneField(Tenant, on_delete=models.CASCADE, related_name="audit_report_subscription")
    recipients = models.JSONField(default=list)
    enabled = models.BooleanField(default=True)
    #: The first day of the last month sent, so a month is sent once however often the task runs.
    last_period = models.DateField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = RestrictedQuerySet.as_manager()

    def __str__(self) -> str:
        return f"monthly audit report of {self.tenant_id}"

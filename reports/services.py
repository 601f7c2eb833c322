"""Domain operations on webhooks: create, change, delete, test and redeliver, each audited.

The API and the portal call these and nothing else of substance. Each checks its rules, makes its change
and writes its audit entry in one transaction, and raises `ValidationError` naming the field (or
`PermissionDenied`) without changing anything. A webhook's URL and secret are stored encrypted
(injector.secrets); neither is ever audited, logged or shown again: the audit names the URL's hint.
"""
from __future__ import annotations

import secrets as random_secrets
import uuid
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.db.models import OuterRef, QuerySet, Subquery
from django.utils import timezone

from injector import secrets
from tenants import audit
from tenants.actors import Actor
from tenants.models import Tenant
from tenants.roles import Role, at_least

from .models import NOTIFICATION_EVENTS, Webhook, WebhookDelivery

URL_MAX_LENGTH = 2000
SECRET_MAX_LENGTH = 500
#: What a webhook's fields are when a request leaves them out.
FIELDS = ("name", "url", "format", "events", "secret", "enabled")


@dataclass(frozen=True)
class SavedWebhook:
    webhook: Webhook
    #: The signing secret Chaosplane generated: shown once (in the create response), never again.
    generated_secret: str | None = None


def _require_owner(actor: Actor, tenant: Tenant) -> None:
    if not actor.is_system and not at_least(actor.role_in(tenant), Role.OWNER):
        raise PermissionDenied(f"only owners of {tenant.slug} manage its webhooks")


def snapshot(hook: Webhook) -> dict[str, Any]:
    """What the audit log keeps of a webhook: the URL's hint only, and whether it has a secret."""
    return {"name": hook.name, "url": hook.url_hint, "format": hook.format, "events": list(hook.events),
            "enabled": hook.enabled, "has_secret": bool(hook.secret_encrypted)}


# Checking input --------------------------------------------------------------------------------------


def check_url(value: Any) -> str:
    """An absolute http(s) URL with a host; ValidationError naming `url` otherwise (never repeating it)."""
    if not isinstance(value, str) or not value.strip():
        raise ValidationError({"url": "a webhook needs a URL (http:// or https://)"})
    url = value.strip()
    if len(url) > URL_MAX_LENGTH:
        raise ValidationError({"url": f"at most {URL_MAX_LENGTH} characters"})
    if any(c.isspace() or ord(c) < 32 or ord(c) == 127 for c in url):
        raise ValidationError({"url": "must not contain spaces or control characters"})
    parts = urlsplit(url)
    if parts.scheme.lower() not in ("http", "https"):
        raise ValidationError({"url": "must start with http:// or https://"})
    try:
        host, _port = parts.hostname, parts.port
    except ValueError:
        raise ValidationError({"url": "its port must be a number between 1 and 65535"}) from None
    if not host:
        raise ValidationError({"url": "must name a host, as in https://hooks.example.com/chaos"})
    if parts.fragment:
        raise ValidationError({"url": "must not have a #fragment (it is never sent)"})
    return url


def url_hint(url: str) -> str:
    """What may be shown of a URL: its scheme, host and port ("https://hooks.slack.com/…"); never the
    path, query or user info, which may be the credential (a Slack URL is its own secret)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    port = f":{parts.port}" if parts.port else ""
    rest = "…" if (parts.path not in ("", "/") or parts.query) else ""
    return f"{parts.scheme.lower()}://{host}{port}/{rest}"[:300]


def check_events(value: Any) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list | tuple) or not all(isinstance(v, str) for v in value):
        raise ValidationError({"events": "a list of event names (empty for all of them)"})
    unknown = [v for v in value if v not in NOTIFICATION_EVENTS]
    if unknown:
        raise ValidationError({"events": f"unknown event {unknown[0]!r}: choose from {', '.join(NOTIFICATION_EVENTS)}"})
    return [e for e in NOTIFICATION_EVENTS if e in value]  # deduplicated, in the documented order


def check_name(value: Any, tenant: Tenant, hook: Webhook | None = None) -> str:
    name = value.strip() if isinstance(value, str) else ""
    if not name:
        raise ValidationError({"name": "a webhook needs a name"})
    if len(name) > Webhook._meta.get_field("name").max_length:
        raise ValidationError({"name": "at most 80 characters"})
    taken = Webhook.objects.filter(tenant=tenant, name=name)
    if hook is not None:
        taken = taken.exclude(pk=hook.pk)
    if taken.exists():
        raise ValidationError({"name": f"a webhook named {name!r} already exists in {tenant.slug}"})
    return name


def check_format(value: Any) -> str:
    if value not in Webhook.Format.values:
        raise ValidationError({"format": f"one of {', '.join(Webhook.Format.values)}"})
    return value


def check_secret(value: Any) -> str:
    if not isinstance(value, str):
        raise ValidationError({"secret": "a string"})
    if len(value) > SECRET_MAX_LENGTH:
        raise ValidationError({"secret": f"at most {SECRET_MAX_LENGTH} characters"})
    if value and (value != value.strip() or any(ord(c) < 32 for c in value)):
        raise ValidationError({"secret": "must not start or end with spaces or hold control characters"})
    return value


def new_secret() -> str:
    return "whsec_" + random_secrets.token_urlsafe(32)


# Reading what is stored ------------------------------------------------------------------------------


def with_last_delivery(queryset: QuerySet) -> QuerySet:
    """Each webhook with its newest delivery's state, event and time: one query for a whole page."""
    newest = WebhookDelivery.objects.filter(webhook=OuterRef("pk")).order_by("-created_at", "-id")
    return queryset.annotate(
        last_state=Subquery(newest.values("state")[:1]),
        last_event=Subquery(newest.values("event")[:1]),
        last_at=Subquery(newest.values("created_at")[:1]),
    )


def url_of(hook: Webhook) -> str:
    return secrets.decrypt(hook.url_encrypted)["url"]


def secret_of(hook: Webhook) -> str:
    return secrets.decrypt(hook.secret_encrypted)["secret"] if hook.secret_encrypted else ""


# Writing -----------------------------------------------------------------------------------------------


def _apply(hook: Webhook, tenant: Tenant, data: dict[str, Any]) -> str | None:
    """Check and set the given fields on `hook`; returns a secret generated for it (generic, none given)."""
    unknown = set(data) - set(FIELDS)
    if unknown:
        raise ValidationError({sorted(unknown)[0]: "not a field of a webhook"})
    if "name" in data:
        hook.name = check_name(data["name"], tenant, hook if hook.pk else None)
    if "url" in data:
        url = check_url(data["url"])
        hook.url_encrypted, hook.url_hint = secrets.encrypt({"url": url}), url_hint(url)
    if "format" in data:
        old_format, hook.format = hook.format, check_format(data["format"])
        if hook.pk and hook.format != old_format:
            # A signing secret is no Grafana token, nor the reverse: a new format needs its own secret.
            hook.secret_encrypted = ""
    if "events" in data:
        hook.events = check_events(data["events"])
    if "enabled" in data:
        if not isinstance(data["enabled"], bool):
            raise ValidationError({"enabled": "true or false"})
        hook.enabled = data["enabled"]
    generated = None
    secret = check_secret(data["secret"]) if data.get("secret") is not None else None
    if secret and hook.format == Webhook.Format.SLACK:
        raise ValidationError({"secret": "Slack webhooks are not signed (the URL is the secret): leave it empty"})
    if secret:
        hook.secret_encrypted = secrets.encrypt({"secret": secret})
    elif hook.format == Webhook.Format.GENERIC and not hook.secret_encrypted:
        generated = new_secret()
        hook.secret_encrypted = secrets.encrypt({"secret": generated})
    if hook.format == Webhook.Format.GRAFANA and not hook.secret_encrypted:
        raise ValidationError({"secret": "a Grafana webhook needs the service account token that may write "
                                         "annotations (sent as its bearer token)"})
    if not hook.url_encrypted:
        raise ValidationError({"url": "a webhook needs a URL (http:// or https://)"})
    return generated


@transaction.atomic
def create_webhook(actor: Actor, tenant: Tenant, data: dict[str, Any]) -> SavedWebhook:
    """A new webhook of `tenant`. A generic one without a secret gets one generated, returned once."""
    _require_owner(actor, tenant)
    if "name" not in data:
        raise ValidationError({"name": "a webhook needs a name"})
    if "url" not in data:
        raise ValidationError({"url": "a webhook needs a URL (http:// or https://)"})
    hook = Webhook(tenant=tenant, created_by=actor.user if actor.user is not None and actor.user.is_authenticated
                   else None)
    generated = _apply(hook, tenant, dict(data))
    hook.save()
    audit.record(actor, tenant, "webhook.create", hook, object_id=hook.uuid, after=snapshot(hook))
    return SavedWebhook(hook, generated)


@transaction.atomic
def update_webhook(actor: Actor, hook: Webhook, data: dict[str, Any]) -> SavedWebhook:
    """Change the given fields. Giving `secret` replaces it; neither it nor the URL is ever shown."""
    hook = Webhook.objects.select_for_update().select_related("tenant").get(pk=hook.pk)
    _require_owner(actor, hook.tenant)
    before = snapshot(hook)
    generated = _apply(hook, hook.tenant, dict(data))
    hook.save()
    after = snapshot(hook)
    if data.get("secret") or generated:
        after["secret_changed"] = True
    if data.get("url") is not None:
        after["url_changed"] = True
    audit.record(actor, hook.tenant, "webhook.update", hook, object_id=hook.uuid, before=before, after=after)
    return SavedWebhook(hook, generated)


@transaction.atomic
def delete_webhook(actor: Actor, hook: Webhook) -> None:
    """Delete the webhook and its delivery log; attempts still queued find nothing and do nothing."""
    hook = Webhook.objects.select_for_update().select_related("tenant").get(pk=hook.pk)
    _require_owner(actor, hook.tenant)
    before = snapshot(hook)
    object_id = hook.uuid
    hook.delete()
    audit.record(actor, hook.tenant, "webhook.delete", object_type="webhook", object_id=object_id, before=before)


def send_test(actor: Actor, hook: Webhook) -> WebhookDelivery:
    """Send a `test` notification now, once (no retries), and return its delivery with the attempt's result."""
    from . import webhooks

    with transaction.atomic():
        hook = Webhook.objects.select_related("tenant").get(pk=hook.pk)
        _require_owner(actor, hook.tenant)
        now = timezone.now()
        delivery = WebhookDelivery.objects.create(
            webhook=hook, event="test", event_key=f"test:{uuid.uuid4()}", next_attempt_at=now,
            payload=webhooks.test_payload(hook.tenant, str(actor), now),
        )
        audit.record(actor, hook.tenant, "webhook.test", hook, object_id=hook.uuid,
                     after={"delivery": str(delivery.uuid), "url": hook.url_hint})
    webhooks.attempt(delivery.pk)
    delivery.refresh_from_db()
    return delivery


def redeliver(actor: Actor, delivery: WebhookDelivery) -> WebhookDelivery:
    """Try a delivered or failed notification again from its first attempt (a pending one is already due)."""
    from . import webhooks

    with transaction.atomic():
        delivery = WebhookDelivery.objects.select_for_update().select_related("webhook__tenant").get(pk=delivery.pk)
        hook = delivery.webhook
        _require_owner(actor, hook.tenant)
        if delivery.state == WebhookDelivery.State.PENDING:
            raise ValidationError({"state": "this delivery is still pending: its next attempt is already scheduled"})
        before = {"state": delivery.state, "attempts": delivery.attempts}
        delivery.state, delivery.attempts, delivery.next_attempt_at = WebhookDelivery.State.PENDING, 0, timezone.now()
        delivery.delivered_at = None
        delivery.save(update_fields=["state", "attempts", "next_attempt_at", "delivered_at"])
        audit.record(actor, hook.tenant, "webhook.redeliver", hook, object_id=hook.uuid, before=before,
                     after={"delivery": str(delivery.uuid), "event": delivery.event})
        webhooks.publish(delivery.pk)
    return delivery

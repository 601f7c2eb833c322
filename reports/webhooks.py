"""Webhook notifications: which events of the timeline notify, the three payload formats, signing, and
delivery with retries (reports.tasks.deliver calls `attempt`, the beat calls `retry_due`).

How an event becomes a delivery: every code path of the run lifecycle writes an experiments Event row;
a post_save receiver here maps the new row to a notification (NOTIFICATION_EVENTS) inside the writer's
transaction, and on commit makes one WebhookDelivery per enabled webhook of the tenant that wants it
and publishes its first attempt. (webhook, event_key) is unique, so a notification noticed twice is
delivered once; each run gets one `run.started` and one terminal notification (key `run.end:<run>`).

Signing (generic format): each attempt sends

    X-Chaosplane-Event: run.finished
    X-Chaosplane-Delivery: <delivery uuid>        (the same on every attempt: receivers deduplicate on it)
    X-Chaosplane-Timestamp: <unix seconds>
    X-Chaosplane-Signature: sha256=<hex HMAC-SHA256(secret, f"{timestamp}.{raw body}")>

A receiver recomputes the HMAC over the raw body bytes it got, compares in constant time, and refuses a
timestamp far from its clock (replays): `verify_signature` below is that check, standard library only.
"""
from __future__ import annotations

import hashlib
import hmac
import http.client
import json
import logging
import random
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.db.models.signals import post_save
from django.urls import NoReverseMatch, reverse
from django.utils import timezone

from experiments.models import Event, Run, Schedule
from injector.models import Agent
from injector.secrets import SecretsError
from tenants.models import Tenant

from .models import Webhook, WebhookDelivery

log = logging.getLogger(__name__)

RUN_END = ("run.finished", "run.failed", "run.aborted")
#: Run events after which the run may have ended (its phase, read in the same transaction, decides).
TERMINAL_REASONS = frozenset({"Finished", "Failed", "PolicyRefused", "SteadyStateFailed", "DryRun"})
#: A run that ends "finished" after one of these was stopped before its deadline: run.aborted.
ABORT_REASONS = ("Stopped", "Halted")
#: Tenant-wide events written by experiments.runs (halt) and its reaper (agents silent past their lease).
HALT_REASON, AGENT_LOST_REASON, MISSED_REASON = "TenantHalted", "AgentLost", "MissedSchedule"
NOTICED_REASONS = TERMINAL_REASONS | {"Started", HALT_REASON, AGENT_LOST_REASON, MISSED_REASON}

SIGNATURE_TOLERANCE_SECONDS = 300
MAX_BACKOFF_SECONDS = 3600.0
BODY_LOG_CHARS = 300
LOG_ENTRIES = 50
USER_AGENT = "Chaosplane-Webhooks/1"
GRAFANA_PATH = "/api/annotations"


# Signing -----------------------------------------------------------------------------------------------


def sign(secret: str, timestamp: str, body: bytes) -> str:
    """The X-Chaosplane-Signature header of `body` sent at `timestamp`."""
    digest = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


def verify_signature(secret: str, timestamp: str, body: bytes, signature: str, *,
                     tolerance: float = SIGNATURE_TOLERANCE_SECONDS, now: float | None = None) -> bool:
    """What a receiver does with a Chaosplane webhook (copy it: it needs only hashlib, hmac and time):
    True when `signature` is the HMAC of exactly these body bytes with this timestamp, and the timestamp
    is within `tolerance` seconds of now."""
    try:
        sent = int(timestamp)
    except (TypeError, ValueError):
        return False
    if abs((time.time() if now is None else now) - sent) > tolerance:
        return False
    expected = "sha256=" + hmac.new(secret.encode(), f"{sent}".encode() + b"." + body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected.encode(), (signature or "").encode())


# Events -> notifications ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Notice:
    tenant_id: int
    event: str
    #: What makes it unique per webhook (WebhookDelivery.event_key).
    key: str
    #: The format-neutral notification: {"event", "tenant", "occurred_at", "data"}.
    payload: dict[str, Any]


def public_url(path: str) -> str:
    """An absolute link when settings.PUBLIC_URL names the portal's address, else the path alone."""
    base = getattr(settings, "PUBLIC_URL", "") or ""
    return f"{base.rstrip('/')}{path}" if base else path


def _portal(name: str, **kwargs: Any) -> str:
    try:
        return public_url(reverse(name, kwargs=kwargs))
    except NoReverseMatch:
        return ""


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def run_data(run: Run, slug: str) -> dict[str, Any]:
    return {
        "run": str(run.uuid), "experiment": run.experiment_name, "kind": run.kind, "action": run.action,
        "environment": run.environment_name, "phase": run.phase, "dry_run": run.dry_run, "origin": run.origin,
        "message": run.message, "created_at": _iso(run.created_at), "started_at": _iso(run.started_at),
        "finished_at": _iso(run.finished_at), "deadline": _iso(run.deadline),
        "url": _portal("experiments:run", tenant_slug=slug, run_id=run.uuid),
    }


def _envelope(event: str, slug: str, at: datetime, data: dict[str, Any]) -> dict[str, Any]:
    return {"event": event, "tenant": slug, "occurred_at": at.isoformat(), "data": data}


def _run_notice(row: Event, slug: str) -> Notice | None:
    run = Run.objects.filter(pk=row.run_id).first()
    if run is None:
        return None
    if row.reason == "Started":
        if run.phase == Run.Phase.REFUSED:  # refused as it started: only its terminal notification
            return None
        name, key = "run.started", f"run.started:{run.uuid}"
    elif run.phase in Run.ENDED:
        if run.phase != Run.Phase.FINISHED:
            name = "run.failed"  # failed, or refused by the policy or by a failed steady-state check
        elif run.events.filter(reason__in=ABORT_REASONS).exists():
            name = "run.aborted"  # stopped by a user, a status check, a workflow or a halt
        else:
            name = "run.finished"
        key = f"run.end:{run.uuid}"
    else:
        return None  # a target failed while the run goes on
    data = run_data(run, slug) | {"reason": row.reason, "event_message": row.message}
    return Notice(row.tenant_id, name, key, _envelope(name, slug, row.created_at, data))


def notice_for(row: Event) -> Notice | None:
    """The notification an Event row makes, or None. Reads the run's phase, so call it in the transaction
    that wrote the row."""
    if row.reason not in NOTICED_REASONS:
        return None
    slug = Tenant.objects.filter(pk=row.tenant_id).values_list("slug", flat=True).first() or ""
    if row.run_id is not None:
        return _run_notice(row, slug) if row.reason in TERMINAL_REASONS | {"Started"} else None
    data: dict[str, Any] = {"message": row.message}
    if row.reason == HALT_REASON:
        name = "halt"
        data["url"] = _portal("experiments:tenant-home", tenant_slug=slug)
    elif row.reason == MISSED_REASON and row.object_type == "schedule":
        name = "schedule.missed"
        schedule = Schedule.objects.filter(uuid=row.object_id).values("uuid", "name").first() or {}
        data |= {"schedule": row.object_id, "name": schedule.get("name", ""),
                 "url": _portal("experiments:schedule", tenant_slug=slug, schedule_id=row.object_id)}
    elif row.reason == AGENT_LOST_REASON and row.object_type == "agent":
        name = "agent.lost"
        agent = (Agent.objects.filter(uuid=row.object_id).select_related("environment").first())
        if agent is not None:
            data |= {"agent": str(agent.uuid), "name": agent.name, "hostname": agent.hostname,
                     "environment": agent.environment.name, "last_heartbeat": _iso(agent.last_heartbeat)}
    else:
        return None
    return Notice(row.tenant_id, name, f"{name}:{row.pk}", _envelope(name, slug, row.created_at, data))


def _on_event(sender: Any, instance: Event, created: bool = False, raw: bool = False, **kwargs: Any) -> None:
    """post_save of experiments.Event: notice it here, deliver after commit. Never breaks the writer."""
    if not created or raw or instance.reason not in NOTICED_REASONS:
        return
    try:
        if not Webhook.objects.filter(tenant_id=instance.tenant_id, enabled=True).exists():
            return
        with transaction.atomic():  # a savepoint: an error here must not spoil the writer's transaction
            notice = notice_for(instance)
    except Exception:  # noqa: BLE001 - notifications must never stop a run, a halt or the reaper
        log.exception("webhooks: could not read event %s", instance.pk)
        return
    if notice is not None:
        transaction.on_commit(partial(fan_out, notice))


post_save.connect(_on_event, sender=Event, dispatch_uid="reports.webhooks.event")


def fan_out(notice: Notice) -> list[int]:
    """One delivery per enabled webhook of the tenant that wants the notification (once per event_key),
    each first attempt published. Returns the new deliveries' ids."""
    created: list[int] = []
    try:
        now = timezone.now()
        wanted = [hook.pk for hook in Webhook.objects.filter(tenant_id=notice.tenant_id, enabled=True)
                  if hook.wants(notice.event)
                  # an annotation marks a run's window: it needs the run's end
                  and (hook.format != Webhook.Format.GRAFANA or notice.event in RUN_END)]
        if wanted:
            key = notice.key[:200]
            WebhookDelivery.objects.bulk_create(
                [WebhookDelivery(webhook_id=pk, event=notice.event, event_key=key, payload=notice.payload,
                                 created_at=now, next_attempt_at=now) for pk in wanted],
                ignore_conflicts=True,  # noticed before: (webhook, event_key) is unique
            )
            # Ours are those made at `now`; one made by an earlier notice has an earlier time.
            created = list(WebhookDelivery.objects.filter(webhook_id__in=wanted, event_key=key, created_at=now)
                           .values_list("pk", flat=True))
    except Exception:  # noqa: BLE001 - called on commit of somebody else's change: log, never raise
        log.exception("webhooks: could not record the %s notification %s", notice.event, notice.key)
    if created:
        publish(*created)
    return created


def publish(*delivery_ids: int, countdown: float = 0.0) -> None:
    """Queue attempts after commit, over one broker connection. A broker that is down loses nothing:
    retry_due publishes them again."""
    def send() -> None:
        from . import tasks

        try:
            with tasks.deliver.app.producer_or_acquire() as producer:
                for pk in delivery_ids:
                    tasks.deliver.apply_async((pk,), countdown=countdown or None, producer=producer)
        except Exception:  # noqa: BLE001 - the sweep publishes due deliveries again
            log.warning("webhooks: could not publish deliveries %s; the sweep will", list(delivery_ids))

    transaction.on_commit(send)


def test_payload(tenant: Tenant, actor: str, at: datetime) -> dict[str, Any]:
    return _envelope("test", tenant.slug, at, {
        "message": f"a test notification sent by {actor}",
        "url": _portal("experiments:tenant-home", tenant_slug=tenant.slug),
    })


# Payload formats ----------------------------------------------------------------------------------------


def _dumps(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":"), sort_keys=True, ensure_ascii=False).encode()


def generic_body(delivery: WebhookDelivery) -> dict[str, Any]:
    return {"id": str(delivery.uuid), **delivery.payload}


TITLES = {
    "run.started": ("rocket", "started"), "run.finished": ("white_check_mark", "finished"),
    "run.failed": ("x", "failed"), "run.aborted": ("octagonal_sign", "was aborted"),
    "halt": ("rotating_light", "Halt"), "schedule.missed": ("alarm_clock", "Schedule missed"),
    "agent.lost": ("electric_plug", "Agent lost"), "test": ("wave", "Test notification"),
}


def _slack_escape(text: Any) -> str:
    return str(text or "").replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def headline(payload: dict[str, Any]) -> str:
    """One line saying what happened, in plain words (Slack's text, Grafana's annotation)."""
    event, data, tenant = payload.get("event", ""), payload.get("data", {}), payload.get("tenant", "")
    if event.startswith("run."):
        dry = "dry run" if data.get("dry_run") else "run"
        return (f"{tenant}: {dry} of {data.get('experiment')} ({data.get('kind')} {data.get('action')}) against "
                f"{data.get('environment')} {TITLES.get(event, ('', event))[1]}")
    if event == "schedule.missed":
        return f"{tenant}: schedule {data.get('name') or data.get('schedule')} missed a tick"
    if event == "agent.lost":
        return f"{tenant}: agent {data.get('name', '?')} in {data.get('environment', '?')} was lost"
    return f"{tenant}: {TITLES.get(event, ('', event))[1]}"


def slack_body(delivery: WebhookDelivery) -> dict[str, Any]:
    """Slack's incoming-webhook JSON: `text` (notifications, fallback) and Block Kit `blocks`."""
    payload = delivery.payload
    data = payload.get("data", {})
    emoji = TITLES.get(payload.get("event", ""), ("bell", ""))[0]
    text = f":{emoji}: {headline(payload)}"
    detail = data.get("message") or data.get("event_message") or ""
    blocks: list[dict[str, Any]] = [{"type": "section", "text": {"type": "mrkdwn", "text": _slack_escape(text)}}]
    context = [f"`{payload.get('event')}`", _slack_escape(detail)[:1500]]
    url = data.get("url") or ""
    if url.startswith(("http://", "https://")):
        context.append(f"<{url}|Open in Chaosplane>")
    blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": " · ".join(c for c in context if c)}]})
    return {"text": text, "blocks": blocks}


def _ms(value: str | None, default: datetime) -> int:
    at = datetime.fromisoformat(value) if value else default
    return int(at.timestamp() * 1000)


def grafana_body(delivery: WebhookDelivery) -> dict[str, Any]:
    """A Grafana region annotation over the run's window: from its start (or creation, if it never
    started) to its end."""
    payload, data = delivery.payload, delivery.payload.get("data", {})
    occurred = datetime.fromisoformat(payload["occurred_at"])
    tags = ["chaosplane", data.get("kind") or payload.get("event", ""), payload.get("tenant", "")]
    if data.get("experiment"):
        tags.append(data["experiment"])
    text = headline(payload)
    if data.get("message"):
        text = f"{text}: {data['message']}"
    if str(data.get("url", "")).startswith(("http://", "https://")):
        text = f'{text} <a href="{data["url"]}">run</a>'
    return {
        "time": _ms(data.get("started_at") or data.get("created_at"), occurred),
        "timeEnd": _ms(data.get("finished_at"), occurred),
        "tags": [t for t in tags if t],
        "text": text[:4000],
    }


def grafana_url(url: str) -> str:
    """The annotations endpoint: a URL ending in /api/annotations as it is, else the Grafana base URL
    (https://grafana.example.com or .../grafana/) with /api/annotations appended."""
    parts = urlsplit(url)
    path = parts.path.rstrip("/")
    if not path.endswith(GRAFANA_PATH):
        path += GRAFANA_PATH
    return urlunsplit((parts.scheme, parts.netloc, path, parts.query, ""))


@dataclass(frozen=True)
class Request:
    url: str
    headers: dict[str, str]
    body: bytes


def build(hook: Webhook, delivery: WebhookDelivery, now: float | None = None) -> Request:
    """The request of one attempt (the URL and secret decrypted here, for this attempt only)."""
    from .services import secret_of, url_of

    url, secret = url_of(hook), secret_of(hook)
    timestamp = str(int(time.time() if now is None else now))
    headers = {"Content-Type": "application/json", "User-Agent": USER_AGENT,
               "X-Chaosplane-Event": delivery.event, "X-Chaosplane-Delivery": str(delivery.uuid),
               "X-Chaosplane-Timestamp": timestamp}
    if hook.format == Webhook.Format.SLACK:
        body = _dumps(slack_body(delivery))
    elif hook.format == Webhook.Format.GRAFANA:
        body, url = _dumps(grafana_body(delivery)), grafana_url(url)
        headers["Authorization"] = f"Bearer {secret}"
    else:
        body = _dumps(generic_body(delivery))
        if secret:
            headers["X-Chaosplane-Signature"] = sign(secret, timestamp, body)
    return Request(url, headers, body)


# Sending ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Outcome:
    status: int | None
    error: str
    ms: int
    body: str

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 300


def _scrub(text: str, url: str, hint: str) -> str:
    """An error text with the URL (and its path, which may be the credential) replaced by its hint."""
    parts = urlsplit(url)
    for secret in sorted({url, parts.path, parts.query, parts.netloc if "@" in parts.netloc else ""}, key=len,
                         reverse=True):
        if secret and len(secret) > 1:
            text = text.replace(secret, hint)
    return text


def send(request: Request, timeout: float, hint: str = "") -> Outcome:
    """POST with the standard library: no proxies, no redirects followed, `timeout` on each socket step."""
    parts = urlsplit(request.url)
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    connection_class = http.client.HTTPSConnection if parts.scheme.lower() == "https" else http.client.HTTPConnection
    headers = dict(request.headers)
    if parts.username is not None and "Authorization" not in headers:
        import base64

        pair = f"{parts.username}:{parts.password or ''}".encode()
        headers["Authorization"] = "Basic " + base64.b64encode(pair).decode()
    started = time.monotonic()
    connection = connection_class(parts.hostname, parts.port, timeout=timeout)
    try:
        connection.request("POST", target, body=request.body, headers=headers)
        response = connection.getresponse()
        text = response.read(4096).decode("utf-8", "replace")[:BODY_LOG_CHARS]
        status = response.status
    except (OSError, http.client.HTTPException, ValueError) as error:
        message = _scrub(f"{type(error).__name__}: {error}", request.url, hint)[:500]
        return Outcome(None, message, int((time.monotonic() - started) * 1000), "")
    finally:
        connection.close()
    ms = int((time.monotonic() - started) * 1000)
    error = "" if 200 <= status < 300 else f"HTTP {status}"
    if 300 <= status < 400:
        error += ": redirects are not followed; give the final URL"
    return Outcome(status, error, ms, text)


def backoff(attempts: int) -> float:
    """Seconds before attempt `attempts + 1`: base * 2^(attempts-1), capped, with ±20% jitter."""
    delay = min(settings.WEBHOOK_RETRY_BASE_SECONDS * 2 ** max(attempts - 1, 0), MAX_BACKOFF_SECONDS)
    return delay * random.uniform(0.8, 1.2)  # noqa: S311 - jitter, not a secret


def attempt(delivery_id: int) -> str | None:
    """One attempt at one delivery, claimed by compare-and-set on its attempt count, so two workers
    never make the same attempt. 2xx: delivered. Otherwise the attempt is logged and the next one
    scheduled with backoff, until WEBHOOK_MAX_ATTEMPTS (a test delivery is tried once). Returns the
    delivery's state after this attempt, or None when there was nothing to do."""
    now = timezone.now()
    delivery = WebhookDelivery.objects.select_related("webhook").filter(pk=delivery_id).first()
    if delivery is None or delivery.state != WebhookDelivery.State.PENDING:
        return None
    if delivery.next_attempt_at is not None and delivery.next_attempt_at > now + timedelta(seconds=1):
        return None  # not due yet: a duplicate of a task that is still to come
    hook, tried = delivery.webhook, delivery.attempts
    limit = 1 if delivery.event == "test" else settings.WEBHOOK_MAX_ATTEMPTS
    timeout = float(settings.WEBHOOK_TIMEOUT_SECONDS)
    # Claimed until the attempt must be over; past that, the sweep may publish it again (a worker died).
    claim = now + timedelta(seconds=2 * timeout + 30)
    if not WebhookDelivery.objects.filter(pk=delivery.pk, state=WebhookDelivery.State.PENDING, attempts=tried).update(
        attempts=tried + 1, next_attempt_at=claim
    ):
        return None
    number = tried + 1
    if tried >= limit:
        outcome = Outcome(None, "out of attempts (its last attempt's worker stopped)", 0, "")
    elif not hook.enabled and delivery.event != "test":
        outcome = Outcome(None, "the webhook is disabled", 0, "")
        limit = number
    else:
        try:
            outcome = send(build(hook, delivery), timeout, hook.url_hint)
        except SecretsError as error:
            outcome, limit = Outcome(None, str(error), 0, ""), number
    done = timezone.now()
    entry = {"attempt": number, "at": done.isoformat(), "status": outcome.status, "error": outcome.error,
             "ms": outcome.ms, "body": outcome.body}
    fields: dict[str, Any] = {"response_status": outcome.status, "error": outcome.error, "duration_ms": outcome.ms,
                              "log": [*delivery.log, entry][-LOG_ENTRIES:]}
    delay = 0.0
    if outcome.ok:
        fields |= {"state": WebhookDelivery.State.DELIVERED, "delivered_at": done, "next_attempt_at": None}
    elif number >= limit:
        fields |= {"state": WebhookDelivery.State.FAILED, "next_attempt_at": None}
    else:
        delay = backoff(number)
        fields["next_attempt_at"] = done + timedelta(seconds=delay)
    WebhookDelivery.objects.filter(pk=delivery.pk, attempts=number).update(**fields)
    log.info("webhook %s (%s) delivery %s attempt %d: %s", hook.uuid, hook.url_hint, delivery.uuid, number,
             outcome.status or outcome.error)
    if delay:
        publish(delivery.pk, countdown=delay)
    return fields.get("state", WebhookDelivery.State.PENDING)


def retry_due() -> int:
    """The safety net beside each countdown: publish again the pending deliveries whose attempt is well
    past due (its task was lost with a worker or a broker). Returns how many."""
    now = timezone.now()
    cutoff = now - timedelta(seconds=max(float(settings.WEBHOOK_SWEEP_SECONDS), 10.0))
    due = Q(next_attempt_at__lt=cutoff) | Q(next_attempt_at__isnull=True, created_at__lt=cutoff)
    ids = list(WebhookDelivery.objects.filter(due, state=WebhookDelivery.State.PENDING)
               .order_by("next_attempt_at").values_list("pk", flat=True)[:500])
    published = 0
    for pk in ids:
        # Due now, so the next sweep leaves it alone while this task is on its way.
        if WebhookDelivery.objects.filter(due, pk=pk, state=WebhookDelivery.State.PENDING).update(next_attempt_at=now):
            publish(pk)
            published += 1
    return published

"""Webhooks over HTTP: who may do what on every endpoint (owner, operator, viewer, outsider, anonymous), the
secret shown once and the URL never again, test deliveries against a real receiver on localhost, the
delivery log, redelivery, every write audited without the secret or the URL, and bad input naming its
field with nothing changed."""
from __future__ import annotations

import json
from typing import Any

import pytest
from django.utils import timezone

from reports import services, webhooks
from reports.models import Webhook, WebhookDelivery
from tenants.models import AuditEntry
from tests.conftest import client_for
from tests.experiments.runs_harness import SYSTEM

from .receiver import receiver

pytestmark = pytest.mark.django_db
T = "/api/v1/tenants/acme"
SECRET = "whsec_api-test-secret-0123456789"
URL_PATH = "/hooks/chaos-s3cr3t-path"


def make_hook(world: Any, url: str = f"http://127.0.0.1:9{URL_PATH}", **extra: Any) -> Webhook:
    data = {"name": extra.pop("name", "ops"), "url": url, "secret": SECRET} | extra
    return services.create_webhook(SYSTEM, world.acme, data).webhook


def failed_delivery(hook: Webhook) -> WebhookDelivery:
    now = timezone.now()
    return WebhookDelivery.objects.create(
        webhook=hook, event="run.failed", event_key="run.end:x", state="failed", attempts=6,
        payload={"event": "run.failed", "tenant": "acme", "occurred_at": now.isoformat(), "data": {}},
    )


def state(hook: Webhook) -> tuple[Any, ...]:
    row = Webhook.objects.filter(pk=hook.pk).first()
    if row is None:
        return ()
    return (row.name, row.url_encrypted, row.url_hint, row.format, row.events, row.secret_encrypted, row.enabled)


def audit_text(world: Any) -> str:
    rows = AuditEntry.objects.filter(tenant=world.acme).values("action", "before", "after", "object_id")
    return json.dumps(list(rows), ensure_ascii=False)


# Who may do what --------------------------------------------------------------------------------------------

ACTORS = ["owner", "operator", "viewer", "outsider", "anonymous"]
# endpoint -> expected status for owner, operator, viewer, outsider, anonymous
MATRIX = {
    "list": (200, 200, 403, 404, 401),
    "create": (201, 403, 403, 404, 401),
    "retrieve": (200, 200, 403, 404, 401),
    "update": (200, 403, 403, 404, 401),
    "test": (200, 403, 403, 404, 401),
    "deliveries": (200, 200, 403, 404, 401),
    "redeliver": (202, 403, 403, 404, 401),
    "delete": (204, 403, 403, 404, 401),
}


@pytest.mark.parametrize("endpoint", list(MATRIX))
@pytest.mark.parametrize("who", ACTORS)
def test_who_may_do_what_with_webhooks(world: Any, who: str, endpoint: str) -> None:
    expected = MATRIX[endpoint][ACTORS.index(who)]
    with receiver() as r:
        hook = make_hook(world, r.url)
        delivery = failed_delivery(hook)
        before, audits = state(hook), AuditEntry.objects.count()
        client = client_for(None if who == "anonymous" else world.member(who))
        url = f"{T}/webhooks/{hook.uuid}/"
        response = {
            "list": lambda: client.get(f"{T}/webhooks/"),
            "create": lambda: client.post(f"{T}/webhooks/", {"name": "new", "url": r.url}, format="json"),
            "retrieve": lambda: client.get(url),
            "update": lambda: client.patch(url, {"enabled": False}, format="json"),
            "test": lambda: client.post(f"{url}test/"),
            "deliveries": lambda: client.get(f"{url}deliveries/"),
            "redeliver": lambda: client.post(f"{url}deliveries/{delivery.uuid}/redeliver/"),
            "delete": lambda: client.delete(url),
        }[endpoint]()
        assert response.status_code == expected, response.content
        if expected >= 400:
            assert state(hook) == before and AuditEntry.objects.count() == audits
            assert Webhook.objects.filter(tenant=world.acme).count() == 1 and r.requests == []
            assert WebhookDelivery.objects.get(pk=delivery.pk).state == "failed"
        else:
            assert AuditEntry.objects.count() == audits + (endpoint not in ("list", "retrieve", "deliveries"))


def test_another_tenants_webhook_is_not_found_through_ones_own_tenant(world: Any) -> None:
    hook = make_hook(world)
    client = client_for(world.outsider)
    for path in ("", "test/", "deliveries/"):
        method = client.post if path == "test/" else client.get
        assert method(f"/api/v1/tenants/globex/webhooks/{hook.uuid}/{path}").status_code == 404
    assert client.delete(f"/api/v1/tenants/globex/webhooks/{hook.uuid}/").status_code == 404
    assert Webhook.objects.filter(pk=hook.pk).exists()


# Secrets ----------------------------------------------------------------------------------------------------


def test_a_generated_secret_is_returned_once_and_the_url_never(world: Any) -> None:
    client = client_for(world.owner)
    url = "https://hooks.example.com/services/T000/B000/XXXXsecretpath"
    created = client.post(f"{T}/webhooks/", {"name": "ops", "url": url}, format="json")
    assert created.status_code == 201, created.json()
    body = created.json()
    secret = body["secret"]
    assert secret.startswith("whsec_") and len(secret) > 30
    assert body["url_hint"] == "https://hooks.example.com/…" and "url" not in body
    assert body["format"] == "generic" and body["events"] == [] and body["enabled"] and body["has_secret"]

    hook = Webhook.objects.get(uuid=body["id"])
    assert services.secret_of(hook) == secret and services.url_of(hook) == url
    shown = [client.get(f"{T}/webhooks/").content, client.get(f"{T}/webhooks/{hook.uuid}/").content,
             client.patch(f"{T}/webhooks/{hook.uuid}/", {"name": "ops2"}, format="json").content]
    for content in shown:
        assert secret.encode() not in content and b"XXXXsecretpath" not in content
    text = audit_text(world)
    assert secret not in text and "XXXXsecretpath" not in text and "services/T000" not in text
    assert "https://hooks.example.com/…" in text


def test_a_secret_given_is_not_echoed_and_a_new_one_signs_from_then_on(world: Any) -> None:
    client = client_for(world.owner)
    with receiver() as r:
        created = client.post(f"{T}/webhooks/", {"name": "ops", "url": r.url, "secret": SECRET}, format="json")
        assert created.status_code == 201 and "secret" not in created.json()
        hook_url = f"{T}/webhooks/{created.json()['id']}/"
        changed = client.patch(hook_url, {"secret": "whsec_rotated-0987654321"}, format="json")
        assert changed.status_code == 200 and "whsec_rotated" not in changed.content.decode()
        assert client.post(f"{hook_url}test/").json()["state"] == "delivered"
    (request,) = r.requests
    stamp, signature = request.header("X-Chaosplane-Timestamp"), request.header("X-Chaosplane-Signature")
    assert webhooks.verify_signature("whsec_rotated-0987654321", stamp, request.body, signature)
    assert not webhooks.verify_signature(SECRET, stamp, request.body, signature)
    assert "whsec_rotated" not in audit_text(world) and SECRET not in audit_text(world)
    entries = list(AuditEntry.objects.filter(tenant=world.acme, action__startswith="webhook.").order_by("seq")
                   .values_list("action", "actor_label", "object_id"))
    assert [e[0] for e in entries] == ["webhook.create", "webhook.update", "webhook.test"]
    assert all("(alice)" in e[1] and e[2] == created.json()["id"] for e in entries)


# Test deliveries, the log, redelivery ----------------------------------------------------------------------


def test_a_test_delivery_is_sent_now_and_answers_with_its_attempt(world: Any) -> None:
    client = client_for(world.owner)
    with receiver() as r:
        hook = make_hook(world, r.url)
        response = client.post(f"{T}/webhooks/{hook.uuid}/test/")
    assert response.status_code == 200
    body = response.json()
    assert body["state"] == "delivered" and body["attempts"] == 1 and body["response_status"] == 200
    assert body["event"] == "test" and body["error"] == "" and isinstance(body["duration_ms"], int)
    (request,) = r.requests
    assert request.header("X-Chaosplane-Event") == "test" and request.path == URL_PATH
    assert request.json()["id"] == body["id"] and request.json()["tenant"] == "acme"
    assert webhooks.verify_signature(SECRET, request.header("X-Chaosplane-Timestamp"), request.body,
                                     request.header("X-Chaosplane-Signature"))


def test_a_failed_test_delivery_is_reported_and_not_retried(world: Any) -> None:
    with receiver(default=500) as r:
        hook = make_hook(world, r.url)
        body = client_for(world.owner).post(f"{T}/webhooks/{hook.uuid}/test/").json()
        assert body["state"] == "failed" and body["response_status"] == 500 and body["error"] == "HTTP 500"
        assert body["next_attempt_at"] is None and len(body["log"]) == 1
        assert webhooks.attempt(WebhookDelivery.objects.get(uuid=body["id"]).pk) is None
    assert len(r.requests) == 1


def test_the_delivery_log_is_paginated_newest_first(world: Any) -> None:
    hook = make_hook(world)
    other = make_hook(world, name="other")
    now = timezone.now()
    for i in range(3):
        WebhookDelivery.objects.create(webhook=hook, event="run.started", event_key=f"run.started:{i}",
                                       created_at=now.replace(microsecond=i), payload={"data": {"i": i}})
    failed_delivery(other)
    page = client_for(world.operator).get(f"{T}/webhooks/{hook.uuid}/deliveries/?page_size=2").json()
    assert page["count"] == 3 and page["next"]
    assert [d["payload"]["data"]["i"] for d in page["results"]] == [2, 1]
    assert {d["webhook"] for d in page["results"]} == {str(hook.uuid)}
    listed = client_for(world.operator).get(f"{T}/webhooks/").json()["results"]
    last = {w["name"]: w["last_delivery"] for w in listed}
    assert last["ops"]["state"] == "pending" and last["other"]["state"] == "failed"


def test_redelivery_queues_a_failed_delivery_again_from_its_first_attempt(world: Any) -> None:
    hook = make_hook(world)
    delivery = failed_delivery(hook)
    client = client_for(world.owner)
    url = f"{T}/webhooks/{hook.uuid}/deliveries/{delivery.uuid}/redeliver/"
    response = client.post(url)
    assert response.status_code == 202
    assert response.json()["state"] == "pending" and response.json()["attempts"] == 0
    again = client.post(url)
    assert again.status_code == 400 and "state" in again.json()
    # Another webhook's delivery is not found under this one.
    other = failed_delivery(make_hook(world, name="other"))
    assert client.post(f"{T}/webhooks/{hook.uuid}/deliveries/{other.uuid}/redeliver/").status_code == 404
    assert AuditEntry.objects.filter(action="webhook.redeliver").count() == 1


# Bad input -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "field", "words"),
    [
        ({"url": "ftp://example.com/x"}, "url", "http:// or https://"),
        ({"url": "example.com/hook"}, "url", "http:// or https://"),
        ({"url": "http:///nohost"}, "url", "host"),
        ({"url": "http://example.com:99999/"}, "url", "port"),
        ({"url": "http://exa mple.com/"}, "url", "spaces"),
        ({"url": ""}, "url", ""),
        ({"events": ["run.exploded"]}, "events", "run.exploded"),
        ({"events": "run.failed"}, "events", ""),
        ({"format": "email"}, "format", ""),
        ({"name": ""}, "name", ""),
        ({"name": "x" * 81}, "name", "80"),
        ({"name": "taken"}, "name", "already exists"),
        ({"format": "grafana"}, "secret", "token"),
        ({"format": "slack", "secret": "shh"}, "secret", "not signed"),
        ({"enabled": "maybe"}, "enabled", ""),
        ({"secret": " padded "}, "secret", "spaces"),
    ],
)
def test_bad_input_names_the_field_and_changes_nothing(world: Any, body: dict, field: str, words: str) -> None:
    existing = make_hook(world, name="taken")
    client = client_for(world.owner)
    audits, before = AuditEntry.objects.count(), state(existing)

    created = client.post(f"{T}/webhooks/", {"name": "new", "url": "https://example.com/h"} | body, format="json")
    assert created.status_code == 400, created.content
    assert field in created.json() and words in json.dumps(created.json()), created.json()

    patch = {k: v for k, v in body.items() if not (k == "name" and v == "taken")} or {"name": ""}
    changed = client.patch(f"{T}/webhooks/{existing.uuid}/", patch, format="json")
    assert changed.status_code == 400, changed.content
    assert Webhook.objects.count() == 1 and state(existing) == before and AuditEntry.objects.count() == audits


def test_an_unknown_webhook_or_delivery_id_is_not_found(world: Any) -> None:
    client = client_for(world.owner)
    assert client.get(f"{T}/webhooks/not-a-uuid/").status_code == 404
    assert client.get(f"{T}/webhooks/00000000-0000-0000-0000-000000000000/").status_code == 404

"""Settings → Webhooks in the portal, through Django's test Client: who sees the tab and the pages, adding
a webhook (its generated secret shown once), a test delivery against a real receiver on localhost, the
delivery log, disabling and deleting; bad input names its field and changes nothing."""
from __future__ import annotations

import re
from typing import Any

import pytest
from django.utils import timezone

from reports import services
from reports.models import Webhook, WebhookDelivery
from tenants.models import AuditEntry
from tests.experiments.runs_harness import SYSTEM
from tests.portal.test_portal import signed_in

from .receiver import receiver

pytestmark = pytest.mark.django_db
PAGE = "/t/acme/settings/webhooks/"
SECRET_SHOWN = re.compile(r'value="(whsec_[A-Za-z0-9_-]+)"')


def make_hook(world: Any, url: str = "http://127.0.0.1:9/hooks/chaos-s3cr3t-path", **extra: Any) -> Webhook:
    data = {"name": extra.pop("name", "ops"), "url": url} | extra
    return services.create_webhook(SYSTEM, world.acme, data).webhook


@pytest.mark.parametrize(("who", "tab", "page", "add"), [
    ("owner", True, 200, True),
    ("operator", True, 200, False),
    ("viewer", False, 403, False),
    ("outsider", False, 404, False),
])
def test_who_sees_the_webhooks_tab_and_pages(world: Any, who: str, tab: bool, page: int, add: bool) -> None:
    hook = make_hook(world)
    client = signed_in(world.member(who))
    settings_page = client.get("/t/acme/settings/")
    if who != "outsider":
        assert (f'href="{PAGE}"' in settings_page.content.decode()) == tab
    listing = client.get(PAGE)
    assert listing.status_code == page
    assert client.get(f"{PAGE}{hook.uuid}/").status_code == page
    if page == 200:
        body = listing.content.decode()
        assert "ops" in body and "http://127.0.0.1:9/…" in body and "chaos-s3cr3t-path" not in body
        assert ("Add a webhook" in body) == add
        assert ("Send a test" in client.get(f"{PAGE}{hook.uuid}/").content.decode()) == add


@pytest.mark.parametrize("who", ["operator", "viewer", "outsider"])
def test_only_owners_add_test_disable_or_delete(world: Any, who: str) -> None:
    with receiver() as r:
        hook = make_hook(world, r.url)
        client = signed_in(world.member(who))
        audits = AuditEntry.objects.count()
        expected = 404 if who == "outsider" else 403
        assert client.post(PAGE, {"name": "new", "url": r.url, "format": "generic"}).status_code == expected
        for action in ("test/", "enabled/", "delete/"):
            assert client.post(f"{PAGE}{hook.uuid}/{action}", {"enabled": "false"}).status_code == expected
    assert r.requests == [] and AuditEntry.objects.count() == audits
    assert list(Webhook.objects.values_list("name", "enabled")) == [("ops", True)]


def test_an_owner_adds_a_webhook_and_sees_its_secret_once(world: Any) -> None:
    client = signed_in(world.owner)
    url = "https://hooks.example.com/chaos/very-secret-path"
    response = client.post(PAGE, {"name": "pager", "url": url, "format": "generic",
                                  "events": ["run.failed", "halt"]})
    assert response.status_code == 200
    body = response.content.decode()
    (secret,) = SECRET_SHOWN.findall(body)
    assert "no-store" in response["Cache-Control"] or "max-age=0" in response["Cache-Control"]
    hook = Webhook.objects.get(name="pager")
    assert services.secret_of(hook) == secret and hook.events == ["run.failed", "halt"]
    again = client.get(PAGE).content.decode()
    assert secret not in again and "very-secret-path" not in again and "https://hooks.example.com/…" in again
    assert secret not in client.get(f"{PAGE}{hook.uuid}/").content.decode()


def test_a_bad_url_names_the_field_and_adds_nothing(world: Any) -> None:
    client = signed_in(world.owner)
    response = client.post(PAGE, {"name": "pager", "url": "ftp://example.com/x", "format": "generic"})
    assert response.status_code == 400
    assert re.search(r'id="id_url_error".*http:// or https://', response.content.decode(), re.S)
    response = client.post(PAGE, {"name": "g", "url": "https://grafana.example.com", "format": "grafana"})
    assert response.status_code == 400 and "service account token" in response.content.decode()
    assert not Webhook.objects.exists() and not AuditEntry.objects.filter(action__startswith="webhook.").exists()


def test_a_test_delivery_is_sent_and_shown_in_the_delivery_log(world: Any) -> None:
    client = signed_in(world.owner)
    with receiver(statuses=[500]) as r:
        hook = make_hook(world, r.url)
        failed = client.post(f"{PAGE}{hook.uuid}/test/", follow=True).content.decode()
        assert "Test not delivered to http://127.0.0.1" in failed and "HTTP 500" in failed
        delivered = client.post(f"{PAGE}{hook.uuid}/test/", follow=True).content.decode()
        assert "Test delivered to http://127.0.0.1" in delivered
    assert [q.header("X-Chaosplane-Event") for q in r.requests] == ["test", "test"]
    log = client.get(f"{PAGE}{hook.uuid}/").content.decode()
    assert log.count("<code>test</code>") == 2 and "delivered" in log and "failed" in log
    listing = client.get(PAGE).content.decode()
    assert 'class="delivery-delivered"' in listing


def test_an_owner_disables_then_deletes_a_webhook(world: Any) -> None:
    hook = make_hook(world)
    WebhookDelivery.objects.create(webhook=hook, event="test", event_key="test:x", next_attempt_at=timezone.now())
    client = signed_in(world.owner)
    assert client.post(f"{PAGE}{hook.uuid}/enabled/", {"enabled": "false"}).status_code == 302
    assert not Webhook.objects.get(pk=hook.pk).enabled
    assert client.post(f"{PAGE}{hook.uuid}/delete/").status_code == 302
    assert not Webhook.objects.exists() and not WebhookDelivery.objects.exists()
    assert list(AuditEntry.objects.filter(action__startswith="webhook.").order_by("seq")
                .values_list("action", flat=True)) == ["webhook.create", "webhook.update", "webhook.delete"]

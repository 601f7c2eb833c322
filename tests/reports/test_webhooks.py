"""Webhook notifications end to end but for the worker: the run lifecycle (real database, the real relay
in Redis, simulated agents) writes its events; the receiver in reports.webhooks turns them into
deliveries on commit; each attempt is made here, by calling reports.webhooks.attempt() as the deliver
task does, against a real HTTP receiver on localhost (tests/reports/receiver.py). Through a real Celery
worker: test_webhooks_worker.py.

The test transaction never commits, so the on-commit callbacks are captured and only the webhooks' own
(fan_out) are run; the run lifecycle's task publishing is left out as in tests/experiments/test_runs.py."""
from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from functools import partial
from typing import Any

import pytest
from django.db import connection
from django.utils import timezone

from experiments import runs, scheduling
from experiments import services as experiment_services
from experiments.models import Run
from injector import secrets
from injector.models import Agent
from reports import services, webhooks
from reports.models import Webhook, WebhookDelivery
from tenants.actors import Actor
from tests.experiments.runs_harness import SYSTEM, host_experiment, hosts_environment, simulated

from .receiver import Receiver, receiver

pytestmark = pytest.mark.django_db

SECRET = "whsec_test-secret-1234567890"
Phase = Run.Phase


@pytest.fixture
def redis_url(settings: Any) -> str:
    settings.AGENT_COMMAND_TIMEOUT = 1.0
    settings.RUN_RETRY_BASE_SECONDS = 0.01
    settings.WEBHOOK_RETRY_BASE_SECONDS = 5
    settings.WEBHOOK_MAX_ATTEMPTS = 6
    settings.WEBHOOK_TIMEOUT_SECONDS = 3
    return settings.REDIS_URL


@pytest.fixture
def notified(django_capture_on_commit_callbacks: Any) -> Any:
    """A context: what the lifecycle does inside it is noticed, and its deliveries made, as on commit."""

    @contextmanager
    def notice() -> Iterator[None]:
        with django_capture_on_commit_callbacks(execute=False) as callbacks:
            yield
        for callback in callbacks:
            if isinstance(callback, partial) and callback.func is webhooks.fan_out:
                callback()

    return notice


def hook(world: Any, url: str, **extra: Any) -> Webhook:
    data = {"name": extra.pop("name", "ops"), "url": url, "secret": SECRET} | extra
    return services.create_webhook(SYSTEM, world.acme, data).webhook


def deliver_due() -> list[str | None]:
    """What the deliver tasks would do now: one attempt at each pending delivery that is due."""
    pending = WebhookDelivery.objects.filter(state=WebhookDelivery.State.PENDING).order_by("created_at", "id")
    return [webhooks.attempt(pk) for pk in pending.values_list("pk", flat=True)]


def verified(r: Receiver) -> list[dict[str, Any]]:
    bodies = []
    for request in r.requests:
        assert webhooks.verify_signature(SECRET, request.header("X-Chaosplane-Timestamp"), request.body,
                                         request.header("X-Chaosplane-Signature"))
        bodies.append(request.json())
    return bodies


def make_due(delivery: WebhookDelivery) -> None:
    WebhookDelivery.objects.filter(pk=delivery.pk).update(next_attempt_at=timezone.now() - timedelta(seconds=1))


# Each event of a run, once, signed -----------------------------------------------------------------------


def test_a_run_notifies_started_then_finished_once_and_signed(world: Any, redis_url: str, notified: Any) -> None:
    env = hosts_environment(world.acme, agents=2)
    with receiver() as r:
        hook(world, r.url)
        with simulated(env, redis_url):
            with notified():
                run = runs.start_run(Actor(user=world.operator.user), host_experiment(world.acme), "lab")
            deliver_due()
            with notified():
                runs.inject(run.pk)
                Run.objects.filter(pk=run.pk).update(deadline=timezone.now() - timedelta(seconds=1))
                runs.expire(run.pk)
                runs.recover(run.pk)
            deliver_due()
            deliver_due()  # nothing left: each notification is sent once
        run.refresh_from_db()
        assert run.phase == Phase.FINISHED
        assert r.events() == ["run.started", "run.finished"]
        started, finished = verified(r)
    assert started["event"] == "run.started" and started["tenant"] == "acme"
    assert started["data"]["run"] == str(run.uuid) and started["data"]["phase"] == "pending"
    assert finished["data"].items() >= {"run": str(run.uuid), "experiment": "cpu", "kind": "PhysicalMachineChaos",
                                        "environment": "lab", "phase": "finished"}.items()
    assert finished["data"]["url"].endswith(f"/t/acme/runs/{run.uuid}/")
    assert finished["id"] == r.requests[1].header("X-Chaosplane-Delivery")
    assert WebhookDelivery.objects.filter(state="delivered").count() == 2


def test_a_tampered_body_or_a_wrong_secret_fails_verification(world: Any, redis_url: str, notified: Any) -> None:
    env = hosts_environment(world.acme, agents=1)
    with receiver() as r:
        hook(world, r.url)
        with notified():
            runs.start_run(SYSTEM, host_experiment(world.acme), env.name)
        deliver_due()
    (request,) = r.requests
    stamp, signature = request.header("X-Chaosplane-Timestamp"), request.header("X-Chaosplane-Signature")
    assert signature.startswith("sha256=")
    assert webhooks.verify_signature(SECRET, stamp, request.body, signature)
    tampered = request.body.replace(b'"run.started"', b'"run.finished"')
    assert tampered != request.body
    assert not webhooks.verify_signature(SECRET, stamp, tampered, signature)
    assert not webhooks.verify_signature("another-secret", stamp, request.body, signature)
    assert not webhooks.verify_signature(SECRET, str(int(stamp) + 1), request.body, signature)
    # A replay long after it was sent is refused too.
    assert not webhooks.verify_signature(SECRET, stamp, request.body, signature, now=int(stamp) + 3600)


def test_a_failed_run_notifies_run_failed(world: Any, redis_url: str, notified: Any) -> None:
    env = hosts_environment(world.acme, agents=2)
    experiment = host_experiment(world.acme, selector={"labelSelectors": {"tier": "nowhere"}})
    with receiver() as r:
        hook(world, r.url)
        with simulated(env, redis_url), notified():
            run = runs.start_run(SYSTEM, experiment, "lab")
            runs.inject(run.pk)
        deliver_due()
    assert Run.objects.get(pk=run.pk).phase == Phase.FAILED
    assert r.events() == ["run.started", "run.failed"]
    assert "matched no target" in verified(r)[1]["data"]["message"]


def test_a_stopped_run_notifies_run_aborted_and_not_finished(world: Any, redis_url: str, notified: Any) -> None:
    env = hosts_environment(world.acme, agents=2)
    with receiver() as r:
        hook(world, r.url)
        with simulated(env, redis_url), notified():
            run = runs.start_run(SYSTEM, host_experiment(world.acme), "lab")
            runs.inject(run.pk)
            runs.stop(Actor(user=world.operator.user), run)
            runs.recover(run.pk)
        deliver_due()
    assert Run.objects.get(pk=run.pk).phase == Phase.FINISHED
    assert r.events() == ["run.started", "run.aborted"]
    assert verified(r)[1]["data"]["message"] == "stopped by bob"


def test_a_halt_notifies_halt_and_aborts_the_running_runs(world: Any, redis_url: str, notified: Any) -> None:
    env = hosts_environment(world.acme, agents=2)
    with receiver() as r:
        hook(world, r.url, events=["halt", "run.aborted", "run.finished"])
        with simulated(env, redis_url):
            run = runs.start_run(SYSTEM, host_experiment(world.acme), "lab")
            runs.inject(run.pk)
            with notified():
                runs.halt(Actor(user=world.operator.user), world.acme)
        deliver_due()
        # A halt with nothing running is still a halt.
        with notified():
            runs.halt(Actor(user=world.owner.user), world.acme)
        deliver_due()
    assert r.events() == ["run.aborted", "halt", "halt"] or r.events() == ["halt", "run.aborted", "halt"]
    halts = [b for b in verified(r) if b["event"] == "halt"]
    assert "halted by bob: 1 runs stopped" in halts[0]["data"]["message"]
    assert "halted by alice: 0 runs stopped" in halts[1]["data"]["message"]


def test_a_missed_schedule_tick_notifies_schedule_missed(world: Any, notified: Any) -> None:
    hosts_environment(world.acme, agents=1)
    host_experiment(world.acme, "cpu")
    schedule = experiment_services.save_schedule(SYSTEM, world.acme, {
        "name": "nightly", "cron": "0 2 * * *", "experiment": "cpu", "environment": "lab",
        "starting_deadline_seconds": 10,
    })
    with receiver() as r:
        hook(world, r.url)
        with notified():
            assert scheduling.fire(schedule.pk, timezone.now() - timedelta(minutes=5)) == "missed"
        deliver_due()
    (body,) = verified(r)
    assert body["event"] == "schedule.missed"
    assert body["data"]["schedule"] == str(schedule.uuid) and body["data"]["name"] == "nightly"
    assert "startingDeadlineSeconds 10" in body["data"]["message"]


def test_an_agent_silent_past_its_lease_notifies_agent_lost_once(world: Any, notified: Any) -> None:
    env = hosts_environment(world.acme, agents=2)
    Agent.objects.filter(environment=env, name="host-1").update(last_heartbeat=timezone.now() - timedelta(minutes=5))
    with receiver() as r:
        hook(world, r.url)
        with notified():
            assert runs.reap()["agents"] == 1
            assert runs.reap()["agents"] == 0  # already marked: not lost again
        deliver_due()
    (body,) = verified(r)
    assert body["event"] == "agent.lost"
    assert body["data"].items() >= {"name": "host-1", "hostname": "host-1.lab", "environment": "lab"}.items()


# Once, and only to who wants it ------------------------------------------------------------------------


def test_an_event_noticed_twice_is_delivered_once(world: Any, redis_url: str,
                                                  django_capture_on_commit_callbacks: Any) -> None:
    env = hosts_environment(world.acme, agents=1)
    with receiver() as r:
        hook(world, r.url)
        with django_capture_on_commit_callbacks(execute=False) as callbacks:
            run = runs.start_run(SYSTEM, host_experiment(world.acme), env.name)
        (fan_out,) = [c for c in callbacks if isinstance(c, partial) and c.func is webhooks.fan_out]
        assert len(fan_out()) == 1
        assert fan_out() == []  # a second notice of the same event (a retried task, another worker)
        assert webhooks.fan_out(webhooks.notice_for(run.events.get(reason="Started"))) == []
        deliver_due()
        deliver_due()
    assert r.events() == ["run.started"]
    assert WebhookDelivery.objects.count() == 1


def test_only_enabled_webhooks_that_want_the_event_get_it(world: Any, redis_url: str, notified: Any) -> None:
    env = hosts_environment(world.acme, agents=1)
    with receiver() as all_events, receiver() as failures, receiver() as disabled:
        hook(world, all_events.url, name="all")
        hook(world, failures.url, name="failures", events=["run.failed"])
        hook(world, disabled.url, name="off", enabled=False)
        with notified():
            runs.start_run(SYSTEM, host_experiment(world.acme), env.name)
        deliver_due()
        assert all_events.events() == ["run.started"]
        assert failures.requests == [] and disabled.requests == []


def test_a_refused_run_notifies_only_run_failed(world: Any, notified: Any) -> None:
    hosts_environment(world.acme, agents=1)
    world.acme.policy.max_duration_seconds = 10
    world.acme.policy.save()
    with receiver() as r:
        hook(world, r.url)
        with notified():
            run = runs.start_run(SYSTEM, host_experiment(world.acme, duration="60s"), "lab")
        deliver_due()
    assert run.phase == Phase.REFUSED
    assert r.events() == ["run.failed"]
    assert verified(r)[0]["data"]["phase"] == "refused"


# Retries -------------------------------------------------------------------------------------------------


def test_a_failing_receiver_is_retried_with_backoff_and_every_attempt_logged(world: Any, settings: Any) -> None:
    settings.WEBHOOK_RETRY_BASE_SECONDS = 5
    with receiver(statuses=[500, 500], default=200) as r:
        delivery = _delivery(hook(world, r.url))

        assert webhooks.attempt(delivery.pk) == "pending"
        first = WebhookDelivery.objects.get(pk=delivery.pk)
        assert first.attempts == 1 and first.response_status == 500 and first.error == "HTTP 500"
        wait = (first.next_attempt_at - timezone.now()).total_seconds()
        assert 5 * 0.8 - 1 <= wait <= 5 * 1.2  # base * 2^0, with jitter
        assert webhooks.attempt(delivery.pk) is None  # an early task does nothing
        assert len(r.requests) == 1

        make_due(delivery)
        assert webhooks.attempt(delivery.pk) == "pending"
        second = WebhookDelivery.objects.get(pk=delivery.pk)
        wait = (second.next_attempt_at - timezone.now()).total_seconds()
        assert 10 * 0.8 - 1 <= wait <= 10 * 1.2  # base * 2^1

        make_due(delivery)
        assert webhooks.attempt(delivery.pk) == "delivered"
        assert webhooks.attempt(delivery.pk) is None
    done = WebhookDelivery.objects.get(pk=delivery.pk)
    assert done.state == "delivered" and done.attempts == 3 and done.delivered_at and done.next_attempt_at is None
    assert [e["status"] for e in done.log] == [500, 500, 200]
    assert [e["attempt"] for e in done.log] == [1, 2, 3]
    assert all(isinstance(e["ms"], int) and e["at"] for e in done.log)
    assert done.log[0]["body"].startswith("receiver says no") and len(done.log[0]["body"]) <= 300
    assert len(r.requests) == 3
    assert len({req.header("X-Chaosplane-Delivery") for req in r.requests}) == 1


def test_a_receiver_that_always_fails_ends_failed_after_the_last_attempt(world: Any, settings: Any) -> None:
    settings.WEBHOOK_MAX_ATTEMPTS = 4
    with receiver(default=503) as r:
        delivery = _delivery(hook(world, r.url))
        states = []
        for _ in range(4):
            make_due(delivery)
            states.append(webhooks.attempt(delivery.pk))
        assert states == ["pending", "pending", "pending", "failed"]
        assert WebhookDelivery.objects.get(pk=delivery.pk).next_attempt_at is None
        make_due(delivery)
        assert webhooks.attempt(delivery.pk) is None  # a late duplicate task: nothing more is sent
    row = WebhookDelivery.objects.get(pk=delivery.pk)
    assert row.state == "failed" and row.attempts == 4 and row.error == "HTTP 503"
    assert [e["status"] for e in row.log] == [503] * 4
    assert len(r.requests) == 4


def test_an_unreachable_receiver_is_logged_without_its_url(world: Any, settings: Any) -> None:
    with receiver() as r:
        url = r.url
    delivery = _delivery(hook(world, url))  # the server is gone: connection refused
    assert webhooks.attempt(delivery.pk) == "pending"
    row = WebhookDelivery.objects.get(pk=delivery.pk)
    assert row.response_status is None and "ConnectionRefused" in row.error
    assert "chaos-s3cr3t-path" not in json.dumps(row.log) + row.error


def test_redirects_are_not_followed(world: Any) -> None:
    with receiver(statuses=[302]) as r:
        delivery = _delivery(hook(world, r.url))
        webhooks.attempt(delivery.pk)
    row = WebhookDelivery.objects.get(pk=delivery.pk)
    assert row.response_status == 302 and "redirects are not followed" in row.error
    assert [q.path for q in r.requests] == ["/hooks/chaos-s3cr3t-path"]


def test_the_sweep_publishes_again_only_what_is_well_past_due(world: Any, settings: Any,
                                                             django_capture_on_commit_callbacks: Any) -> None:
    settings.WEBHOOK_SWEEP_SECONDS = 30
    webhook = hook(world, "http://127.0.0.1:9/")
    lost = _delivery(webhook, "a")
    fresh = _delivery(webhook, "b")
    done = _delivery(webhook, "c")
    WebhookDelivery.objects.filter(pk__in=[lost.pk, done.pk]).update(
        next_attempt_at=timezone.now() - timedelta(minutes=5))
    WebhookDelivery.objects.filter(pk=done.pk).update(state="delivered")
    with django_capture_on_commit_callbacks(execute=False) as published:
        assert webhooks.retry_due() == 1
    assert len(published) == 1
    assert WebhookDelivery.objects.get(pk=lost.pk).next_attempt_at > timezone.now() - timedelta(seconds=5)
    assert webhooks.retry_due() == 0  # just published: left alone until it is well past due again
    assert WebhookDelivery.objects.get(pk=fresh.pk).attempts == 0


def test_a_disabled_webhook_stops_its_pending_retries(world: Any) -> None:
    with receiver() as r:
        webhook = hook(world, r.url)
        delivery = _delivery(webhook)
        services.update_webhook(SYSTEM, webhook, {"enabled": False})
        assert webhooks.attempt(delivery.pk) == "failed"
    assert r.requests == []
    assert WebhookDelivery.objects.get(pk=delivery.pk).error == "the webhook is disabled"


def _delivery(webhook: Webhook, key: str = "k") -> WebhookDelivery:
    now = timezone.now()
    return WebhookDelivery.objects.create(
        webhook=webhook, event="run.started", event_key=f"run.started:{key}", next_attempt_at=now,
        payload={"event": "run.started", "tenant": "acme", "occurred_at": now.isoformat(), "data": {"run": key}},
    )


# Formats -------------------------------------------------------------------------------------------------


def test_the_slack_format_posts_text_and_blocks_unsigned(world: Any, redis_url: str, notified: Any) -> None:
    env = hosts_environment(world.acme, agents=2)
    with receiver() as r:
        services.create_webhook(SYSTEM, world.acme, {"name": "slack", "url": r.url, "format": "slack"})
        with simulated(env, redis_url), notified():
            run = runs.start_run(SYSTEM, host_experiment(world.acme, "cpu<1>"), "lab")
            runs.inject(run.pk)
            runs.stop(SYSTEM, run, "enough")
            runs.recover(run.pk)
        deliver_due()
    started, aborted = (q.json() for q in r.requests)
    assert set(aborted) == {"text", "blocks"}
    assert aborted["text"] == (":octagonal_sign: acme: run of cpu<1> (PhysicalMachineChaos stress-cpu) against lab "
                               "was aborted")
    section, context = aborted["blocks"]
    assert section["type"] == "section" and section["text"]["type"] == "mrkdwn"
    assert "cpu&lt;1&gt;" in section["text"]["text"]  # Slack's escaping of < > &
    assert context["type"] == "context" and "enough" in context["elements"][0]["text"]
    assert started["text"].startswith(":rocket: acme: run of cpu<1>")
    assert all(q.header("X-Chaosplane-Signature") == "" for q in r.requests)
    assert r.requests[0].header("Content-Type") == "application/json"


def test_the_grafana_format_posts_one_annotation_of_the_run_window(world: Any, redis_url: str,
                                                                   notified: Any) -> None:
    env = hosts_environment(world.acme, agents=2)
    with receiver() as r:
        base = r.url.rsplit("/", 2)[0] + "/grafana/"
        services.create_webhook(SYSTEM, world.acme, {"name": "grafana", "url": base, "format": "grafana",
                                                     "secret": "glsa_token_abc"})
        with simulated(env, redis_url), notified():
            run = runs.start_run(SYSTEM, host_experiment(world.acme), "lab")
            runs.inject(run.pk)
            Run.objects.filter(pk=run.pk).update(deadline=timezone.now() - timedelta(seconds=1))
            runs.expire(run.pk)
            runs.recover(run.pk)
        deliver_due()
    run.refresh_from_db()
    (request,) = r.requests  # run.started makes no annotation: only the run's end does
    assert request.path == "/grafana/api/annotations"
    assert request.header("Authorization") == "Bearer glsa_token_abc"
    body = request.json()
    assert body["time"] == int(run.started_at.timestamp() * 1000)
    assert body["timeEnd"] == int(run.finished_at.timestamp() * 1000)
    assert body["timeEnd"] > body["time"]
    assert body["tags"] == ["chaosplane", "PhysicalMachineChaos", "acme", "cpu"]
    assert "run of cpu" in body["text"] and "finished" in body["text"]


def test_a_full_annotations_url_is_used_as_given() -> None:
    assert webhooks.grafana_url("https://g.example.com/api/annotations") == "https://g.example.com/api/annotations"
    assert webhooks.grafana_url("https://g.example.com") == "https://g.example.com/api/annotations"
    assert webhooks.grafana_url("https://g.example.com/sub/") == "https://g.example.com/sub/api/annotations"


# Secrets at rest -------------------------------------------------------------------------------------------


def test_the_url_and_secret_are_stored_encrypted(world: Any) -> None:
    url = "https://hooks.slack.com/services/T000/B000/XXXXsecretpath"
    webhook = hook(world, url.replace("hooks.slack.com", "hooks.example.com"), name="generic")
    slack = services.create_webhook(SYSTEM, world.acme, {"name": "slack", "url": url, "format": "slack"}).webhook
    with connection.cursor() as cursor:
        cursor.execute("SELECT url_encrypted, url_hint, secret_encrypted FROM reports_webhook ORDER BY id")
        rows = cursor.fetchall()
    raw = json.dumps(rows)
    assert "XXXXsecretpath" not in raw and SECRET not in raw and "services/T000" not in raw
    assert [r[1] for r in rows] == ["https://hooks.example.com/…", "https://hooks.slack.com/…"]
    assert secrets.decrypt(rows[0][0]) == {"url": url.replace("hooks.slack.com", "hooks.example.com")}
    assert services.secret_of(webhook) == SECRET and services.url_of(slack) == url
    assert rows[1][2] == ""  # Slack: no signing secret


# Through a real worker, and two at once --------------------------------------------------------------------


def _database_url() -> str:
    s = connection.settings_dict
    return f"postgres://{s['USER']}:{s['PASSWORD']}@{s['HOST']}:{s['PORT']}/{s['NAME']}"


@pytest.mark.integration
@pytest.mark.django_db(transaction=True)
def test_a_real_worker_delivers_a_halt_and_retries_it_after_a_failure(world: Any, settings: Any,
                                                                      tmp_path: Any) -> None:
    from pathlib import Path

    from devtools.servers import CeleryWorker
    from tests.conftest import client_for

    env = dict(os.environ, DATABASE_URL=_database_url(), REDIS_URL=settings.REDIS_URL,
               WEBHOOK_RETRY_BASE_SECONDS="0.3", WEBHOOK_TIMEOUT_SECONDS="3")
    worker = CeleryWorker(env=env, cwd=Path(__file__).resolve().parents[2], logfile=tmp_path / "worker.log")
    with receiver(statuses=[500]) as r:
        hook(world, r.url)
        worker.start()
        try:
            response = client_for(world.operator).post("/api/v1/tenants/acme/halt/")
            assert response.status_code == 200, response.content
            r.wait_for(2)
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline and not WebhookDelivery.objects.filter(state="delivered").exists():
                time.sleep(0.1)
        finally:
            worker.stop()
    assert r.events() == ["halt", "halt"]
    verified(r)
    delivery = WebhookDelivery.objects.get()
    assert delivery.state == "delivered" and [e["status"] for e in delivery.log] == [500, 200]
    gap = datetime.fromisoformat(delivery.log[1]["at"]) - datetime.fromisoformat(delivery.log[0]["at"])
    assert gap.total_seconds() >= 0.3 * 0.8  # the countdown of the backoff was kept


@pytest.mark.django_db(transaction=True)
def test_two_workers_attempting_the_same_delivery_send_it_once(world: Any) -> None:
    with receiver(delay=0.5) as r:
        delivery = _delivery(hook(world, r.url))
        start = threading.Barrier(2)
        results: list[Any] = []

        def work() -> None:
            start.wait()
            try:
                results.append(webhooks.attempt(delivery.pk))
            finally:
                connection.close()

        threads = [threading.Thread(target=work) for _ in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(10)
    assert len(results) == 2 and results.count(None) == 1 and "delivered" in results
    assert len(r.requests) == 1
    assert WebhookDelivery.objects.get(pk=delivery.pk).attempts == 1

"""GET /metrics (reports.metrics): the Prometheus text parses, every family has its type, and the values
move with what happens: runs driven step by step with the real database, the real relay in Redis and
simulated agents (tests/experiments/runs_harness.py), agents connecting, tasks waiting in a real Redis
queue that no worker reads, and the bearer token when METRICS_TOKEN is set.

The test transaction never commits, so the on-commit callbacks are captured and only the metrics' own
(reports.metrics.observe) are run, as in test_webhooks.py. The latency histograms live in the test
runner's Redis for the whole session (and carry only the kind): the tests compare before and after."""
from __future__ import annotations

import socket
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from functools import partial
from typing import Any

import pytest
import redis
from django.test import Client
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families

from config.celery import app as celery_app
from experiments import runs
from experiments.models import Run, Schedule
from injector.models import Agent
from reports import metrics
from tenants.actors import Actor
from tests.experiments.runs_harness import SYSTEM, host_experiment, hosts_environment, simulated

pytestmark = pytest.mark.django_db

KIND = "PhysicalMachineChaos"
TYPES = {
    "chaosplane_runs": "counter",
    "chaosplane_runs_active": "gauge",
    "chaosplane_injection_latency_seconds": "histogram",
    "chaosplane_recovery_latency_seconds": "histogram",
    "chaosplane_active_injections": "gauge",
    "chaosplane_agents_connected": "gauge",
    "chaosplane_celery_queue_length": "gauge",
    "chaosplane_schedules": "gauge",
    "chaosplane_webhook_deliveries": "gauge",
    "chaosplane_redis_up": "gauge",
}


@pytest.fixture
def redis_url(settings: Any) -> str:
    settings.AGENT_COMMAND_TIMEOUT = 1.0
    settings.RUN_RETRY_BASE_SECONDS = 0.01
    settings.METRICS_TOKEN = ""
    return settings.REDIS_URL


@pytest.fixture
def observed(django_capture_on_commit_callbacks: Any) -> Any:
    """A context: the run steps inside it are observed by the metrics as on commit (and nothing else)."""

    @contextmanager
    def observe() -> Iterator[None]:
        with django_capture_on_commit_callbacks(execute=False) as callbacks:
            yield
        for callback in callbacks:
            if isinstance(callback, partial) and callback.func is metrics.observe:
                callback()

    return observe


class Scrape:
    def __init__(self, text: str) -> None:
        self.families = {f.name: f for f in text_string_to_metric_families(text)}

    def value(self, sample: str, **labels: str) -> float:
        """The sample's value (0 when the series is absent, as Prometheus sums it)."""
        family = self.families[sample.removesuffix("_total").removesuffix("_count").removesuffix("_sum")
                               .removesuffix("_bucket")]
        found = [s.value for s in family.samples if s.name == sample and labels.items() <= s.labels.items()]
        return sum(found)


def scrape(**headers: str) -> Scrape:
    response = Client().get("/metrics", **headers)
    assert response.status_code == 200, response.content
    assert response["Content-Type"].startswith("text/plain; version=0.0.4")
    return Scrape(response.content.decode())


def fresh(run: Run) -> Run:
    return Run.objects.get(pk=run.pk)


# The format ---------------------------------------------------------------------------------------------


def test_every_metric_is_there_with_its_type(world: Any, redis_url: str, observed: Any) -> None:
    env = hosts_environment(world.acme, agents=2)
    experiment = host_experiment(world.acme)
    Schedule.objects.create(tenant=world.acme, name="nightly", cron="0 3 * * *", experiment=experiment,
                            environment=env, paused=True)
    with simulated(env, redis_url), observed():
        run = runs.start_run(SYSTEM, experiment, "lab")
        runs.inject(run.pk)
        runs.stop(SYSTEM, fresh(run))
        runs.recover(run.pk)

    got = scrape()

    assert {name: got.families[name].type for name in TYPES} == TYPES
    assert got.value("chaosplane_redis_up") == 1
    assert got.value("chaosplane_schedules", tenant="acme", state="paused") == 1
    assert got.value("chaosplane_celery_queue_length", queue="celery") >= 0
    assert [s.labels for s in got.families["chaosplane_celery_queue_length"].samples] == [{"queue": "celery"}]
    buckets = [s for s in got.families["chaosplane_injection_latency_seconds"].samples
               if s.name.endswith("_bucket") and s.labels == {"kind": KIND, "le": s.labels["le"]}]
    assert [s.labels["le"] for s in buckets] == [*(str(b) for b in metrics.BUCKETS), "+Inf"]
    assert [s.value for s in buckets] == sorted(s.value for s in buckets)  # cumulative


# Moving with runs -----------------------------------------------------------------------------------------


def test_counters_and_latencies_move_with_runs(world: Any, redis_url: str, observed: Any) -> None:
    env = hosts_environment(world.acme, agents=3)
    experiment = host_experiment(world.acme)  # mode all: three targets per run
    before = scrape()
    began = timezone.now()
    with simulated(env, redis_url) as sim:
        started = []
        for _ in range(2):
            with observed():
                run = runs.start_run(SYSTEM, experiment, "lab")
                runs.inject(run.pk)
            started.append(run)
            assert fresh(run).phase == Run.Phase.RUNNING
        during = scrape()
        for run in started:
            with observed():
                runs.stop(SYSTEM, fresh(run))
                runs.recover(run.pk)
        assert sim.all_held() == {}
    took = (timezone.now() - began).total_seconds()
    after = scrape()

    def moved(scrape_: Scrape, sample: str, **labels: str) -> float:
        return scrape_.value(sample, **labels) - before.value(sample, **labels)

    acme = {"tenant": "acme", "kind": KIND}
    assert during.value("chaosplane_active_injections", **acme) == 6
    assert during.value("chaosplane_runs_active", tenant="acme", phase="running") == 2
    assert moved(during, "chaosplane_runs_total", **acme, phase="finished") == 0
    assert after.value("chaosplane_active_injections", **acme) == 0
    assert after.value("chaosplane_runs_active", tenant="acme") == 0
    assert moved(after, "chaosplane_runs_total", **acme, phase="finished") == 2
    for family in ("chaosplane_injection_latency_seconds", "chaosplane_recovery_latency_seconds"):
        assert moved(after, f"{family}_count", kind=KIND) == 6
        assert moved(after, f"{family}_bucket", kind=KIND, le="+Inf") == 6
        assert 0 <= moved(after, f"{family}_sum", kind=KIND) <= 6 * took


def test_each_target_is_counted_once_however_often_it_is_observed(world: Any, redis_url: str,
                                                                   observed: Any) -> None:
    env = hosts_environment(world.acme, agents=2)
    with simulated(env, redis_url), observed():
        run = runs.start_run(SYSTEM, host_experiment(world.acme), "lab")
        runs.inject(run.pk)
    assert metrics.observe(run.pk, "Injected") == 0  # already counted on commit
    assert metrics.observe(run.pk, "Recovered") == 0  # nothing recovered yet
    assert metrics.observe(run.pk, "Running") == 0


def test_a_deadline_recovery_counts_from_the_deadline(world: Any, redis_url: str, observed: Any) -> None:
    env = hosts_environment(world.acme, agents=1)
    before = scrape()
    with simulated(env, redis_url), observed():
        run = runs.start_run(SYSTEM, host_experiment(world.acme), "lab")
        runs.inject(run.pk)
        # The deadline passed 40 s ago and nobody noticed until now (a lost eta task, a slow reaper).
        Run.objects.filter(pk=run.pk).update(deadline=timezone.now() - timedelta(seconds=40))
        assert runs.expire(run.pk)
        runs.recover(run.pk)
    after = scrape()
    late = after.value("chaosplane_recovery_latency_seconds_sum", kind=KIND) - before.value(
        "chaosplane_recovery_latency_seconds_sum", kind=KIND)
    assert 40 <= late < 60
    bucket = "chaosplane_recovery_latency_seconds_bucket"
    up_to_30_and_60 = [after.value(bucket, kind=KIND, le=le) - before.value(bucket, kind=KIND, le=le)
                       for le in ("30.0", "60.0")]
    assert up_to_30_and_60 == [0, 1]


def test_a_paused_and_resumed_run_counts_each_round(world: Any, redis_url: str, observed: Any) -> None:
    env = hosts_environment(world.acme, agents=2)
    actor = Actor(user=world.operator.user)
    before = scrape()
    with simulated(env, redis_url):
        with observed():
            run = runs.start_run(actor, host_experiment(world.acme), "lab")
            runs.inject(run.pk)
            runs.pause(actor, fresh(run))
            runs.recover(run.pk)
        paused = scrape()
        with observed():
            runs.resume(actor, fresh(run))
            runs.inject(run.pk)
        resumed = scrape()
        with observed():
            runs.stop(actor, fresh(run))
            runs.recover(run.pk)
    after = scrape()
    acme = {"tenant": "acme", "kind": KIND}
    counts = [s.value(f"chaosplane_{what}_latency_seconds_count", kind=KIND)
              - before.value(f"chaosplane_{what}_latency_seconds_count", kind=KIND)
              for s in (paused, resumed, after) for what in ("injection", "recovery")]
    assert counts == [2, 2, 4, 2, 4, 4]
    assert paused.value("chaosplane_runs_active", tenant="acme", phase="paused") == 1
    assert paused.value("chaosplane_active_injections", **acme) == 0
    assert resumed.value("chaosplane_active_injections", **acme) == 2


def test_agents_connected_match_the_rows(world: Any, redis_url: str) -> None:
    hosts_environment(world.acme, "lab", agents=3)
    hosts_environment(world.acme, "edge", agents=2)
    hosts_environment(world.globex, "lab", agents=1)
    Agent.objects.filter(environment__name="edge", name="host-0").update(connected=False)

    got = scrape()

    assert got.value("chaosplane_agents_connected", tenant="acme", environment="lab") == 3
    assert got.value("chaosplane_agents_connected", tenant="acme", environment="edge") == 1
    assert got.value("chaosplane_agents_connected", tenant="globex", environment="lab") == 1
    Agent.objects.filter(tenant=world.acme, environment__name="edge").update(connected=False)
    gone = scrape().families["chaosplane_agents_connected"].samples
    assert [s.value for s in gone if s.labels == {"tenant": "acme", "environment": "edge"}] == [0]


# Celery's queues -------------------------------------------------------------------------------------------


def test_queue_length_counts_the_tasks_waiting(redis_url: str, settings: Any) -> None:
    """Real task messages published to a queue that no worker consumes."""
    queue = f"metrics-test-{uuid.uuid4().hex[:8]}"
    client = redis.Redis.from_url(settings.CELERY_BROKER_URL)
    try:
        for _ in range(3):
            celery_app.send_task("reports.tasks.deliver", args=[0], queue=queue)
        celery_app.send_task("reports.tasks.deliver", args=[0], queue=queue, priority=9)
        assert client.llen(queue) == 3
        # Only now, and only for the metrics: Celery builds its router once, at its first publish, and a
        # route it saw would send every later task of this test session to the test's queue.
        settings.CELERY_TASK_ROUTES = {"reports.tasks.deliver": {"queue": queue}}
        assert scrape().value("chaosplane_celery_queue_length", queue=queue) == 4
        client.lpop(queue)
        assert scrape().value("chaosplane_celery_queue_length", queue=queue) == 3
    finally:
        client.delete(*[queue + suffix for suffix in metrics.PRIORITY_SUFFIXES], f"_kombu.binding.{queue}")
        client.close()
    left = scrape().families["chaosplane_celery_queue_length"].samples
    assert [s.value for s in left if s.labels == {"queue": queue}] == [0]


def test_without_redis_the_scrape_still_answers_from_the_database(world: Any, settings: Any) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: nothing listens there
    settings.REDIS_URL = f"redis://127.0.0.1:{port}/0"  # the broker's URL stays: Celery may cache a pool of it
    settings.METRICS_TOKEN = ""
    hosts_environment(world.acme, agents=2)

    got = scrape()

    assert got.value("chaosplane_redis_up") == 0
    assert got.value("chaosplane_agents_connected", tenant="acme", environment="lab") == 2
    assert "chaosplane_celery_queue_length" not in got.families
    assert metrics.observe(0, "Injected") == 0  # never raises


# The token -------------------------------------------------------------------------------------------------


TOKEN = "metrics-token-7f3a9c2e51b04d8a"  # noqa: S105 - a test token


@pytest.mark.parametrize("authorization", [None, "Bearer wrong-token", f"Basic {TOKEN}", "Bearer ", TOKEN])
def test_a_set_token_is_required(db: Any, settings: Any, authorization: str | None) -> None:
    settings.METRICS_TOKEN = TOKEN
    headers = {} if authorization is None else {"HTTP_AUTHORIZATION": authorization}
    response = Client().get("/metrics", **headers)
    assert response.status_code == 401
    assert response["WWW-Authenticate"].startswith("Bearer")
    assert b"chaosplane_" not in response.content


def test_the_right_token_opens_it(db: Any, settings: Any) -> None:
    settings.METRICS_TOKEN = TOKEN
    got = scrape(HTTP_AUTHORIZATION=f"Bearer {TOKEN}")
    assert got.families["chaosplane_runs"].type == "counter"
    assert TOKEN not in Client().get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}").content.decode()


def test_without_a_token_it_is_open(db: Any, settings: Any) -> None:
    settings.METRICS_TOKEN = ""
    assert "chaosplane_runs" in scrape().families
    assert Client().post("/metrics").status_code == 405

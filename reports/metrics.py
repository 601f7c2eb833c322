"""GET /metrics: the platform's own state in the Prometheus text format, the same whichever process answers.

Web processes and any number of Celery workers do the work, and any one of them may serve a scrape, so
nothing here lives in one process's memory. Two sources:

- the database, read at scrape time by a few GROUP BY queries: runs by phase, live injections, agents,
  schedules, webhook deliveries. They move with the rows and cost nothing between scrapes.
- Redis, for what has to be seen as it happens: the injection and recovery latency histograms. A
  post_save receiver on experiments' Event rows notices "Injected" and "Recovered" and, after the
  writer's commit, adds each target that reached that state to a bucket counter in Redis, exactly once
  (a Lua script: SADD into the run's set of targets already counted, and HINCRBY the bucket, the count
  and the sum only when the member is new). Recomputing these from the rows at every scrape would
  mean a join of every injection with its run's events (300,000 lateral look-ups at 100,000 runs);
  observing them costs a few rows and one Redis call per step, and the scrape reads two hashes.
  The Celery queues' lengths are Redis LLENs of the broker, read at scrape time.

Latencies, per target (an Injection row, one per target and round):
- injection: from the moment the round began (the run's started_at: a worker took it, pending ->
  injecting, then resolved the targets and ran any steady-state check; for a resumed run's later
  rounds, its Resumed event) to the target's injected_at;
- recovery: from the moment recovery was asked for (the first Stopped, Halted or Pausing event of the
  round; a Deadline event counts from the run's deadline itself, so a late eta task or reaper shows;
  otherwise the Failed event that moved the run to recovering) to the target's recovered_at.

The histograms are labelled by kind only: with the tenant too, 100 tenants and 8 kinds made 25,000
histogram samples (2.4 MB of text, a quarter of a second per scrape); per tenant, the runs and live
injections say who is busy. Labels carry tenant slugs, kinds, phases, states, environment and queue
names: never a secret. Names, labels and a scrape config: docs/metrics.md.
"""
from __future__ import annotations

import bisect
import hashlib
import hmac
import logging
from collections import defaultdict
from collections.abc import Iterable, Iterator
from datetime import datetime, timedelta
from functools import lru_cache, partial
from typing import Any

import redis
from django.conf import settings
from django.db import transaction
from django.db.models import Count, Q
from django.db.models.signals import post_save
from django.http import HttpRequest, HttpResponse
from django.urls import path
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET
from prometheus_client import CONTENT_TYPE_PLAIN_0_0_4, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric

from experiments.models import Event, Injection, Run, Schedule
from injector.models import Agent
from tenants.models import Tenant

from .models import WebhookDelivery

log = logging.getLogger(__name__)

#: Upper bounds (seconds) of the latency buckets: an agent answers in milliseconds, a cloud API in
#: minutes (an instance stopping), a late deadline shows in the last ones.
BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0)
PREFIX = "chaosplane:metrics"
INJECTION, RECOVERY = "injection", "recovery"
HISTOGRAM_KEYS = {INJECTION: f"{PREFIX}:injection_latency_seconds", RECOVERY: f"{PREFIX}:recovery_latency_seconds"}
#: A run's set of targets already counted lives until a day past its deadline (a run never
#: injects after its deadline; recovery retries rarely last that long).
SEEN_GRACE = timedelta(days=1)
REDIS_TIMEOUT = 0.5

INJECTED, RECOVERED, RESUMED, FAILED, DEADLINE = "Injected", "Recovered", "Resumed", "Failed", "Deadline"
#: Events that ask a run to take its faults out (experiments.runs: stop, halt, expire, pause).
RECOVERY_REQUESTS = ("Stopped", "Halted", DEADLINE, "Pausing")
OBSERVED = {INJECTED: INJECTION, RECOVERED: RECOVERY}

#: KEYS[1]: the run's set of targets already counted; KEYS[2]: the histogram's hash.
#: ARGV[1]: the set's time to live (s); ARGV[2]: the series (the kind); then per target:
#: member, bucket index, seconds. A target is counted once however many events, workers or retries see it.
OBSERVE_LUA = """
local added = 0
local series = ARGV[2]
for i = 3, #ARGV, 3 do
  if redis.call('SADD', KEYS[1], ARGV[i]) == 1 then
    redis.call('HINCRBY', KEYS[2], series .. '|' .. ARGV[i + 1], 1)
    redis.call('HINCRBY', KEYS[2], series .. '|count', 1)
    redis.call('HINCRBYFLOAT', KEYS[2], series .. '|sum', ARGV[i + 2])
    added = added + 1
  end
end
redis.call('EXPIRE', KEYS[1], ARGV[1])
return added
"""


@lru_cache(maxsize=4)
def redis_client(url: str) -> redis.Redis:
    """One connection pool per URL and process (redis-py makes a new pool in a forked child)."""
    return redis.Redis.from_url(url, socket_timeout=REDIS_TIMEOUT, socket_connect_timeout=REDIS_TIMEOUT)


@lru_cache(maxsize=4)
def _observe_script(url: str) -> Any:
    return redis_client(url).register_script(OBSERVE_LUA)


def seen_key(run_uuid: Any) -> str:
    return f"{PREFIX}:seen:{run_uuid}"


# Observing latencies ----------------------------------------------------------------------------------


def _seconds(start: datetime, end: datetime) -> float:
    return max((end - start).total_seconds(), 0.0)


def injection_samples(run: Run) -> list[tuple[str, float]]:
    """(member, seconds) for every target of the run that has been injected."""
    resumed = list(run.events.filter(reason=RESUMED).order_by("created_at", "id").values_list("created_at", flat=True))
    samples = []
    for pk, round_, injected_at in run.injections.filter(injected_at__isnull=False).values_list(
        "pk", "round", "injected_at"
    ):
        start = run.started_at if round_ == 1 else (resumed[round_ - 2] if round_ - 2 < len(resumed) else None)
        if start is not None:
            samples.append((f"i{pk}", _seconds(start, injected_at)))
    return samples


def _recovery_start(run: Run, requests: list[tuple[str, datetime]], failures: list[datetime],
                    recovered_at: datetime) -> datetime | None:
    """When recovery of a target of this round was asked for (see the module's docstring)."""
    for reason, at in requests:
        if at <= recovered_at:
            return min(run.deadline, at) if reason == DEADLINE else at
    earlier = [at for at in failures if at <= recovered_at]
    return earlier[-1] if earlier else None


def recovery_samples(run: Run) -> list[tuple[str, float]]:
    """(member, seconds) for every target of the run that has been recovered."""
    rounds: dict[int, tuple[list[tuple[str, datetime]], list[datetime]]] = defaultdict(lambda: ([], []))
    current = 1
    events = run.events.filter(reason__in=(*RECOVERY_REQUESTS, FAILED, RESUMED)).order_by("created_at", "id")
    for reason, at in events.values_list("reason", "created_at"):
        if reason == RESUMED:
            current += 1
        elif reason == FAILED:
            rounds[current][1].append(at)
        else:
            rounds[current][0].append((reason, at))
    samples = []
    for pk, round_, recovered_at in run.injections.filter(recovered_at__isnull=False).values_list(
        "pk", "round", "recovered_at"
    ):
        requests, failures = rounds[round_]
        start = _recovery_start(run, requests, failures, recovered_at)
        if start is not None:
            samples.append((f"r{pk}", _seconds(start, recovered_at)))
    return samples


def bucket_index(seconds: float) -> int:
    """The first bucket whose upper bound holds `seconds` (len(BUCKETS): +Inf)."""
    return bisect.bisect_left(BUCKETS, seconds)


def observe(run_id: int, reason: str) -> int:
    """Count the targets of the run that the `reason` event ("Injected" or "Recovered") may have
    brought, into that latency histogram in Redis; each target once. Returns how many were new.
    Called after the writer's commit; never raises (a metric must not stop a run)."""
    what = OBSERVED.get(reason)
    if what is None:
        return 0
    try:
        run = Run.objects.filter(pk=run_id).first()
        if run is None:
            return 0
        samples = injection_samples(run) if what == INJECTION else recovery_samples(run)
        if not samples:
            return 0
        expires = max(run.deadline, timezone.now()) + SEEN_GRACE - timezone.now()
        args: list[Any] = [int(expires.total_seconds()) + 1, run.kind]
        for member, seconds in samples:
            args += [member, bucket_index(seconds), repr(seconds)]
        return int(_observe_script(settings.REDIS_URL)(keys=[seen_key(run.uuid), HISTOGRAM_KEYS[what]], args=args))
    except Exception:  # noqa: BLE001 - Redis away or a bug here: the run goes on, the metric misses it
        log.warning("metrics: could not observe %s of run %s", reason, run_id, exc_info=True)
        return 0


def _on_event(sender: Any, instance: Event, created: bool = False, raw: bool = False, **kwargs: Any) -> None:
    """post_save of experiments.Event: an Injected or Recovered step is observed after its commit."""
    if created and not raw and instance.run_id is not None and instance.reason in OBSERVED:
        transaction.on_commit(partial(observe, instance.run_id, instance.reason), robust=True)


post_save.connect(_on_event, sender=Event, dispatch_uid="reports.metrics.observe")


# The scrape --------------------------------------------------------------------------------------------


def celery_queues() -> list[str]:
    """The Celery queues this deployment uses: the default one and any that routes or queues name."""
    names = {getattr(settings, "CELERY_TASK_DEFAULT_QUEUE", None) or "celery"}
    routes = getattr(settings, "CELERY_TASK_ROUTES", None)
    for route in (routes.values() if isinstance(routes, dict) else []):
        if isinstance(route, dict) and isinstance(route.get("queue"), str):
            names.add(route["queue"])
    for queue in getattr(settings, "CELERY_TASK_QUEUES", None) or []:
        name = getattr(queue, "name", queue)
        if isinstance(name, str):
            names.add(name)
    return sorted(names)


#: kombu's Redis transport keeps a queue's prioritised messages in lists beside it (kombu.transport.redis:
#: `_q_for_pri`, separator "\x06\x16", steps 0, 3, 6, 9): the length of a queue is the sum of all four.
PRIORITY_SUFFIXES = ("", "\x06\x163", "\x06\x166", "\x06\x169")


def _parse_histogram(raw: dict[bytes, bytes]) -> dict[str, dict[str, float]]:
    series: dict[str, dict[str, float]] = defaultdict(dict)
    for field, value in raw.items():
        kind, part = field.decode().rsplit("|", 1)
        series[kind][part] = float(value)
    return series


def _histogram(name: str, documentation: str, raw: dict[bytes, bytes]) -> HistogramMetricFamily:
    family = HistogramMetricFamily(name, documentation, labels=["kind"])
    for kind, parts in sorted(_parse_histogram(raw).items()):
        running, buckets = 0.0, []
        for i, bound in enumerate((*BUCKETS, float("inf"))):
            running += parts.get(str(i), 0.0)
            buckets.append(("+Inf" if i == len(BUCKETS) else repr(bound), running))
        family.add_metric([kind], buckets, parts.get("sum", 0.0))
    return family


class ChaosplaneCollector:
    """Yields every chaosplane_* family; one instance on REGISTRY, collected at each scrape."""

    def collect(self) -> Iterator[Metric]:
        slugs = dict(Tenant.objects.values_list("pk", "slug"))
        yield from self._runs(slugs)
        yield self._active_injections(slugs)
        yield self._agents(slugs)
        yield self._schedules(slugs)
        yield self._webhook_deliveries(slugs)
        yield from self._redis()

    @staticmethod
    def _runs(slugs: dict[int, str]) -> Iterable[Metric]:
        total = CounterMetricFamily(
            "chaosplane_runs", "Runs that ended, by how they ended (finished, failed, refused).",
            labels=["tenant", "kind", "phase"])
        active = GaugeMetricFamily("chaosplane_runs_active", "Runs not ended yet, by phase.",
                                   labels=["tenant", "phase"])
        live: dict[tuple[str, str], int] = defaultdict(int)
        rows = Run.objects.order_by().values_list("tenant_id", "kind", "phase").annotate(n=Count("id"))
        for tenant_id, kind, phase, n in rows:
            slug = slugs.get(tenant_id, "")
            if phase in Run.ENDED:
                total.add_metric([slug, kind, phase], n)
            else:
                live[(slug, phase)] += n
        for (slug, phase), n in sorted(live.items()):
            active.add_metric([slug, phase], n)
        return total, active

    @staticmethod
    def _active_injections(slugs: dict[int, str]) -> Metric:
        family = GaugeMetricFamily(
            "chaosplane_active_injections",
            "Targets of active runs on which a fault may be in place (injecting, injected, recovering).",
            labels=["tenant", "kind"])
        rows = (Injection.objects.order_by().filter(state__in=Injection.LIVE, run__phase__in=Run.ACTIVE)
                .values_list("run__tenant_id", "run__kind").annotate(n=Count("id")))
        for tenant_id, kind, n in rows:
            family.add_metric([slugs.get(tenant_id, ""), kind], n)
        return family

    @staticmethod
    def _agents(slugs: dict[int, str]) -> Metric:
        family = GaugeMetricFamily(
            "chaosplane_agents_connected", "Node agents connected now, per environment that has agents.",
            labels=["tenant", "environment"])
        rows = (Agent.objects.order_by().values_list("tenant_id", "environment__name")
                .annotate(n=Count("id", filter=Q(connected=True))))
        for tenant_id, environment, n in rows:
            family.add_metric([slugs.get(tenant_id, ""), environment], n)
        return family

    @staticmethod
    def _schedules(slugs: dict[int, str]) -> Metric:
        family = GaugeMetricFamily("chaosplane_schedules", "Schedules, active or paused.", labels=["tenant", "state"])
        rows = (Schedule.objects.order_by().filter(workflow_node__isnull=True).values_list("tenant_id", "paused")
                .annotate(n=Count("id")))
        for tenant_id, paused, n in rows:
            family.add_metric([slugs.get(tenant_id, ""), "paused" if paused else "active"], n)
        return family

    @staticmethod
    def _webhook_deliveries(slugs: dict[int, str]) -> Metric:
        family = GaugeMetricFamily(
            "chaosplane_webhook_deliveries", "Webhook deliveries in the delivery log, by state (pending, "
            "delivered, failed).", labels=["tenant", "state"])
        rows = (WebhookDelivery.objects.order_by().values_list("webhook__tenant_id", "state")
                .annotate(n=Count("id")))
        for tenant_id, state, n in rows:
            family.add_metric([slugs.get(tenant_id, ""), state], n)
        return family

    @staticmethod
    def _redis() -> Iterable[Metric]:
        up = GaugeMetricFamily("chaosplane_redis_up", "1 when Redis answered this scrape (histograms and "
                               "queue lengths come from it; without it they are left out).")
        queues = celery_queues()
        try:
            pipe = redis_client(settings.REDIS_URL).pipeline(transaction=False)
            pipe.hgetall(HISTOGRAM_KEYS[INJECTION])
            pipe.hgetall(HISTOGRAM_KEYS[RECOVERY])
            injection, recovery = pipe.execute()
            broker = settings.CELERY_BROKER_URL or settings.REDIS_URL
            pipe = redis_client(broker).pipeline(transaction=False)
            for queue in queues:
                for suffix in PRIORITY_SUFFIXES:
                    pipe.llen(queue + suffix)
            lengths = pipe.execute()
        except redis.RedisError as error:
            log.warning("metrics: Redis did not answer: %s", error)
            up.add_metric([], 0)
            return [up]
        up.add_metric([], 1)
        queue_family = GaugeMetricFamily("chaosplane_celery_queue_length",
                                         "Tasks waiting in the Celery queue (not yet taken by a worker).",
                                         labels=["queue"])
        step = len(PRIORITY_SUFFIXES)
        for i, queue in enumerate(queues):
            queue_family.add_metric([queue], sum(lengths[i * step:(i + 1) * step]))
        return [
            up,
            queue_family,
            _histogram("chaosplane_injection_latency_seconds",
                       "Per target: from the start of its run's injection round to the fault in place.", injection),
            _histogram("chaosplane_recovery_latency_seconds",
                       "Per target: from the moment recovery was asked for to the fault taken out.", recovery),
        ]


REGISTRY = CollectorRegistry(auto_describe=False)
REGISTRY.register(ChaosplaneCollector())  # type: ignore[arg-type]  # collect() is all a collector needs


# The endpoint ------------------------------------------------------------------------------------------


def _digest(value: str) -> bytes:
    return hashlib.sha256(value.encode()).digest()


def authorized(request: HttpRequest) -> bool:
    """True when METRICS_TOKEN is unset, or the request carries it as its bearer token (compared in
    constant time, over digests so that not even its length shows)."""
    expected = settings.METRICS_TOKEN
    if not expected:
        return True
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(_digest(given.strip()), _digest(expected))


@never_cache
@require_GET
def metrics(request: HttpRequest) -> HttpResponse:
    if not authorized(request):
        response = HttpResponse("a bearer token is required: Authorization: Bearer <METRICS_TOKEN>\n",
                                status=401, content_type="text/plain; charset=utf-8")
        response["WWW-Authenticate"] = 'Bearer realm="chaosplane-metrics"'
        return response
    return HttpResponse(generate_latest(REGISTRY), content_type=CONTENT_TYPE_PLAIN_0_0_4)


urlpatterns: list = [path("metrics", metrics, name="metrics")]

"""What /metrics costs: a scrape over a large history, and the observation a run step adds to its worker.

    .venv/bin/python bench/metrics.py [--runs 100000] [--injections 300000] [--tenants 100] [--scrapes 50]

Starts its own PostgreSQL and Redis (devtools.servers), migrates, and bulk-creates `--tenants` tenants
with `--runs` runs over eight kinds (about 1% of them active, the rest ended) and `--injections`
injections (the active runs' targets live), 10 agents and 10 schedules per tenant, and two webhook
deliveries per 10 runs. Then it prints:

- the latency observation that an Injected and a Recovered event add to the worker after its commit
  (reports.metrics.observe: the run's rows, one Lua call to Redis), p50/p99, over one run of every
  tenant and kind (so the histograms carry every series);
- the scrape (reports.metrics.metrics, the view: queries, Redis, text): p50/p99 over `--scrapes`,
  its queries and their time, the size of the text, and the memory Python allocated for one scrape;
- what Redis holds for the histograms and the targets already counted.
"""
from __future__ import annotations

import argparse
import sys
import time
import tracemalloc
from datetime import timedelta
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench.common import percentiles, platform_database  # noqa: E402

KINDS = ("PodChaos", "NetworkChaos", "StressChaos", "IOChaos", "DNSChaos", "HTTPChaos", "TimeChaos",
         "PhysicalMachineChaos")
BATCH = 5000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=100_000)
    parser.add_argument("--injections", type=int, default=300_000)
    parser.add_argument("--tenants", type=int, default=100)
    parser.add_argument("--scrapes", type=int, default=50)
    args = parser.parse_args()

    with platform_database(METRICS_TOKEN=""):
        from django.db import connection

        started = time.monotonic()
        sample = seed(args.runs, args.injections, args.tenants)
        with connection.cursor() as cursor:
            cursor.execute("VACUUM ANALYZE")  # what autovacuum does to a table this size
        print(f"seeded {args.runs} runs, {args.injections} injections over {args.tenants} tenants "
              f"in {time.monotonic() - started:.1f} s")
        measure_observe(sample)
        measure_scrape(args.scrapes)
        redis_memory()


def seed(runs: int, injections: int, tenants: int) -> list[int]:
    """Bulk rows; returns one ended run per tenant and kind, with what observing it needs."""
    from django.utils import timezone

    from experiments.models import Event, Experiment, Injection, Run, Schedule
    from injector.models import Agent, Environment
    from reports.models import Webhook, WebhookDelivery
    from tenants.models import Tenant

    now = timezone.now()
    rows = Tenant.objects.bulk_create([Tenant(slug=f"t{i:03d}", name=f"Tenant {i}") for i in range(tenants)])
    envs = Environment.objects.bulk_create(Environment(tenant=t, name="lab", kind="hosts") for t in rows)
    Agent.objects.bulk_create(
        Agent(tenant=t, environment=e, name=f"host-{i}", connected=i % 5 != 0)
        for t, e in zip(rows, envs, strict=True) for i in range(10)
    )
    experiments = Experiment.objects.bulk_create(
        Experiment(tenant=t, name="cpu", kind="PhysicalMachineChaos", action="stress-cpu") for t in rows
    )
    Schedule.objects.bulk_create(
        Schedule(tenant=t, name=f"s{i}", cron="* * * * *", experiment=x, environment=e, paused=i % 3 == 0)
        for t, e, x in zip(rows, envs, experiments, strict=True) for i in range(10)
    )
    active = max(runs // 100, 1)
    phases = ("finished", "finished", "finished", "failed", "refused")
    per_run = max(injections // runs, 1)
    run_ids: list[int] = []
    for start in range(0, runs, BATCH):
        batch = []
        for n in range(start, min(start + BATCH, runs)):
            tenant, env = rows[n % tenants], envs[n % tenants]
            live = n >= runs - active
            created = now - timedelta(seconds=(runs - n) * 30)
            batch.append(Run(
                tenant=tenant, experiment_name="cpu", environment=env, environment_name="lab", spec={},
                kind=KINDS[(n // tenants) % len(KINDS)], action="x", seed=n, phase="running" if live else
                phases[(n // 7) % len(phases)], created_at=created, started_at=created + timedelta(seconds=1),
                deadline=created + timedelta(seconds=60), finished_at=None if live else created + timedelta(seconds=62),
            ))
        run_ids += [r.pk for r in Run.objects.bulk_create(batch)]
    made = 0
    for start in range(0, len(run_ids), BATCH // per_run):
        batch = []
        for i, pk in enumerate(run_ids[start:start + BATCH // per_run], start):
            live = i >= runs - active
            for k in range(per_run):
                if made >= injections:
                    break
                created = now - timedelta(seconds=(runs - i) * 30)
                batch.append(Injection(
                    run_id=pk, fault_id=f"cp-{pk}-1-{k}", target_key=f"host-{k}", target_display=f"host-{k}",
                    state="injected" if live else "recovered", injected_at=created + timedelta(seconds=1.2 + k / 10),
                    recovered_at=None if live else created + timedelta(seconds=60.3 + k / 10),
                ))
                made += 1
        Injection.objects.bulk_create(batch)
    hooks = Webhook.objects.bulk_create(Webhook(tenant=t, name="ops", url_encrypted="-", url_hint="-") for t in rows)
    deliveries = [
        WebhookDelivery(webhook=hooks[i % tenants], event="run.finished", event_key=f"run.end:{i}",
                        state=("delivered", "delivered", "delivered", "pending", "failed")[i % 5])
        for i in range(runs // 5)
    ]
    WebhookDelivery.objects.bulk_create(deliveries, batch_size=BATCH)
    # One ended run of every tenant and kind (the first ones), with the Deadline event that began its recovery.
    sample = run_ids[: tenants * len(KINDS)]
    Event.objects.bulk_create(
        Event(tenant_id=run.tenant_id, run=run, reason="Deadline", created_at=run.deadline + timedelta(seconds=0.2))
        for run in Run.objects.filter(pk__in=sample)
    )
    return sample


def measure_observe(sample: list[int]) -> None:
    from reports import metrics

    for reason in ("Injected", "Recovered"):
        took, counted = [], 0
        for pk in sample:
            began = time.perf_counter()
            counted += metrics.observe(pk, reason)
            took.append((time.perf_counter() - began) * 1000)
        p50, p99 = percentiles(took)
        print(f"observing an {reason} event (after its commit, in the worker): p50 {p50:.2f} ms, p99 {p99:.2f} ms "
              f"({counted} targets counted over {len(sample)} runs)")


def measure_scrape(scrapes: int) -> None:
    from django.db import connection
    from django.test import RequestFactory
    from django.test.utils import CaptureQueriesContext

    from reports import metrics

    request = RequestFactory().get("/metrics")
    body = metrics.metrics(request).content  # warm: connections, the Lua script, plans
    took = []
    for _ in range(scrapes):
        began = time.perf_counter()
        response = metrics.metrics(request)
        took.append((time.perf_counter() - began) * 1000)
        assert response.status_code == 200
    p50, p99 = percentiles(took)
    with CaptureQueriesContext(connection) as queries:
        metrics.metrics(request)
    sql_ms = sum(float(q["time"]) for q in queries.captured_queries) * 1000
    tracemalloc.start()
    metrics.metrics(request)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    series = sum(1 for line in body.decode().splitlines() if line and not line.startswith("#"))
    print(f"scrape: p50 {p50:.1f} ms, p99 {p99:.1f} ms over {scrapes}; {len(queries)} queries taking {sql_ms:.1f} ms; "
          f"{len(body) / 1024:.0f} KiB of text, {series} samples; {peak / 1024 / 1024:.1f} MiB allocated at peak")
    for query in sorted(queries.captured_queries, key=lambda q: -float(q["time"])):
        print(f"  {float(query['time']) * 1000:6.1f} ms  {query['sql'][:110]}")


def redis_memory() -> None:
    from django.conf import settings

    from reports import metrics

    client = metrics.redis_client(settings.REDIS_URL)
    hashes = {what: client.memory_usage(key) or 0 for what, key in metrics.HISTOGRAM_KEYS.items()}
    seen = sum(client.memory_usage(k) or 0 for k in client.scan_iter(f"{metrics.PREFIX}:seen:*", count=1000))
    fields = sum(client.hlen(key) for key in metrics.HISTOGRAM_KEYS.values())
    print(f"Redis: histograms {sum(hashes.values()) / 1024:.0f} KiB ({fields} fields), targets counted "
          f"{seen / 1024:.0f} KiB for the observed runs (each set expires a day after its run's deadline)")


if __name__ == "__main__":
    main()

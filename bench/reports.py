"""What reports cost: a tenant's audit report over a big month, and the report of a wide run.

    .venv/bin/python bench/reports.py [--entries 10000] [--runs 2000] [--targets 200] [--repeat 3]

Starts its own PostgreSQL (devtools.servers), migrates, and makes one tenant with `--entries` audit
entries (a real hash chain, written in bulk) and `--runs` runs spread over the last 30 days (mixed phases,
steady states, kinds and environments, with stop and refusal events), plus one run over `--targets`
targets with a status check probed 120 times and an event per target. Then it prints, best of `--repeat`:

- the audit report's summary (every count, the score series, and the whole chain verified), its HTML
  (every entry listed), its PDF (the first 2,000 entries), and the CSV streamed (rows per second);
- the wide run's report: the dict (the JSON), its HTML with the charts, and its PDF.
"""
from __future__ import annotations

import argparse
import secrets
import sys
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench.common import platform_database  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entries", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=2_000)
    parser.add_argument("--targets", type=int, default=200)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    with platform_database(redis=False):  # nothing here publishes a task
        started = time.monotonic()
        tenant = seed_tenant()
        seed_entries(tenant, args.entries)
        seed_runs(tenant, args.runs)
        wide = seed_wide_run(tenant, args.targets)
        print(f"seeded {args.entries} audit entries, {args.runs} runs and a run over {args.targets} targets "
              f"in {time.monotonic() - started:.1f} s")
        measure_audit(tenant, args.repeat)
        measure_run(wide, args.repeat)


def best(repeat: int, fn: Callable[[], Any]) -> tuple[float, Any]:
    """(fastest seconds, last result) of `repeat` calls."""
    times, result = [], None
    for _ in range(repeat):
        started = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - started)
    return min(times), result


def seed_tenant() -> Any:
    from django.contrib.auth import get_user_model

    from injector import services as injector_services
    from tenants import services as tenant_services
    from tenants.actors import Actor

    system = Actor.system_actor("bench")
    owner = get_user_model().objects.create_user(username="alice", password=secrets.token_urlsafe(16))
    tenant = tenant_services.create_tenant(system, "bench", "Bench Corp", owner)
    for name in ("prod", "staging", "lab"):
        injector_services.create_environment(system, tenant, name, "hosts")
    return tenant


def seed_entries(tenant: Any, count: int) -> None:
    """A real chain, hashed as tenants.audit.record hashes it, written in bulk, spread over 30 days."""
    from django.utils import timezone

    from tenants.audit import entry_digest
    from tenants.models import AuditEntry

    last = AuditEntry.objects.filter(tenant=tenant).order_by("-seq").first()
    seq, prev = last.seq, last.entry_hash
    start = timezone.now() - timedelta(days=30)
    step = timedelta(days=29) / max(count, 1)
    actions = ["run.start", "run.stop", "experiment.create", "schedule.update", "policy.update", "token.create"]
    rows = []
    for i in range(count):
        seq += 1
        entry = AuditEntry(
            tenant=tenant, seq=seq, created_at=start + step * i, actor_kind="user", actor_label=f"user{i % 17}",
            action=actions[i % len(actions)], object_type="run", object_id=f"{i:032x}",
            before=None, after={"n": i, "note": "bench"}, remote_addr="10.0.0.1", prev_hash=prev,
        )
        entry.entry_hash = entry_digest(entry)
        prev = entry.entry_hash
        rows.append(entry)
    AuditEntry.objects.bulk_create(rows, batch_size=2000)


def seed_runs(tenant: Any, count: int) -> None:
    import random

    from django.utils import timezone

    from experiments.models import Event, Run
    from injector.models import Environment

    envs = list(Environment.objects.filter(tenant=tenant))
    rng = random.Random(9)  # noqa: S311 - a repeatable spread of test data, not a secret
    now = timezone.now()
    kinds = ["PhysicalMachineChaos", "NetworkChaos", "PodChaos", "StressChaos", "IOChaos"]
    outcomes = [("finished", "held")] * 6 + [("finished", "broken"), ("finished", "not-restored"),
                                             ("finished", ""), ("failed", ""), ("refused", "")]
    runs = []
    for i in range(count):
        phase, steady = rng.choice(outcomes)
        created = now - timedelta(days=30) + timedelta(seconds=rng.randrange(29 * 86400))
        env = envs[i % len(envs)]
        runs.append(Run(
            tenant=tenant, experiment_name=f"exp-{i % 40}", environment=env, environment_name=env.name,
            spec={"name": f"exp-{i % 40}"}, kind=kinds[i % len(kinds)], action="x", dry_run=i % 9 == 0,
            phase=phase, steady_state=steady, seed=i, deadline=created + timedelta(minutes=1),
            created_at=created, started_at=created, finished_at=created + timedelta(seconds=60),
        ))
    runs = Run.objects.bulk_create(runs, batch_size=1000)
    events = []
    for run in runs:
        events.append(Event(tenant=tenant, run=run, reason="Started", message="started", created_at=run.created_at))
        if run.phase == "refused":
            events.append(Event(tenant=tenant, run=run, reason="PolicyRefused", type="warning",
                                message="policy max-targets: 9 targets; the policy allows 5",
                                created_at=run.created_at))
        elif run.seed % 7 == 0:
            events.append(Event(tenant=tenant, run=run, reason="Stopped", message="stopped by alice",
                                created_at=run.created_at + timedelta(seconds=20)))
    Event.objects.bulk_create(events, batch_size=2000)


def seed_wide_run(tenant: Any, targets: int) -> Any:
    from django.utils import timezone

    from experiments.models import CheckResult, CheckRun, Event, Injection, Run
    from injector.models import Environment

    env = Environment.objects.get(tenant=tenant, name="prod")
    start = timezone.now() - timedelta(minutes=10)
    run = Run.objects.create(
        tenant=tenant, experiment_name="wide-cpu", environment=env, environment_name=env.name,
        spec={"name": "wide-cpu", "spec": {"action": "stress-cpu", "mode": "all", "duration": "5m"}},
        kind="PhysicalMachineChaos", action="stress-cpu", phase="finished", steady_state="held", seed=1,
        deadline=start + timedelta(minutes=5), created_at=start, started_at=start,
        finished_at=start + timedelta(minutes=5, seconds=3), duration_seconds=300,
    )
    Injection.objects.bulk_create(Injection(
        run=run, fault_id=f"f-{i}", target_key=f"agent:host-{i}", target_display=f"host-{i} (host-{i}.prod)",
        state="recovered", injected_at=start + timedelta(milliseconds=5 * i),
        recovered_at=start + timedelta(minutes=5, milliseconds=7 * i),
    ) for i in range(targets))
    check = CheckRun.objects.create(tenant=tenant, name="shop", purpose="during", run=run, phase="succeeded",
                                    probes=120, created_at=start)
    CheckResult.objects.bulk_create(CheckResult(
        check_run=check, at=start + timedelta(seconds=2.5 * i), ok=i % 31 != 0, latency_ms=20 + (i * 7) % 50,
    ) for i in range(120))
    Event.objects.bulk_create(Event(
        tenant=tenant, run=run, reason="Injected", message=f"host-{i} took the fault",
        created_at=start + timedelta(milliseconds=5 * i)) for i in range(targets))
    return run


def measure_audit(tenant: Any, repeat: int) -> None:
    from reports import audit_report, pdf

    period = audit_report.period_from({})
    took, report = best(repeat, lambda: audit_report.build(tenant, period))
    print(f"audit report, {report['audit']['entries']} entries and {report['runs']['total']} runs in the period "
          f"(chain of {report['chain']['verified_entries']} verified: {report['chain']['verdict']}):")
    print(f"  summary (counts, score series, chain verified)  {took * 1000:8.0f} ms")
    took, _ = best(repeat, lambda: audit_report.chain_of(tenant))
    print(f"    of which the chain verified                   {took * 1000:8.0f} ms")
    took, html = best(repeat, lambda: audit_report.render_html(report, tenant, period))
    print(f"  HTML, every entry listed                        {took * 1000:8.0f} ms  ({len(html) / 1e6:.1f} MB)")
    took, document = best(1, lambda: pdf.render(audit_report.render_html(report, tenant, period, pdf=True)))
    print(f"  PDF, the first {audit_report.PDF_ENTRY_LIMIT} entries                  {took * 1000:8.0f} ms  "
          f"({len(document) / 1e3:.0f} kB)")
    took, lines = best(repeat, lambda: sum(text.count("\n") for text in audit_report.csv_lines(tenant, period)))
    rows = lines - 1
    print(f"  CSV streamed, {rows} rows                      {took * 1000:8.0f} ms  ({rows / took:,.0f} rows/s)")


def measure_run(run: Any, repeat: int) -> None:
    from reports import pdf, run_report

    took, report = best(repeat, lambda: run_report.build(run))
    print(f"run report, {len(report['targets'])} targets, {len(report['events'])} events, "
          f"{sum(len(c['results']) for c in report['checks'])} probes:")
    print(f"  dict (the JSON)                                 {took * 1000:8.0f} ms")
    took, html = best(repeat, lambda: run_report.render_html(report))
    print(f"  HTML with its charts                            {took * 1000:8.0f} ms  ({len(html) / 1e3:.0f} kB)")
    took, document = best(1, lambda: pdf.render(html))
    print(f"  PDF                                             {took * 1000:8.0f} ms  ({len(document) / 1e3:.0f} kB)")


if __name__ == "__main__":
    main()

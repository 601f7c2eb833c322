"""The scheduler's cost: the beat's sweep over many schedules, and a tick from claim to run.

    .venv/bin/python bench/schedules.py [--schedules 10000] [--due 1000] [--ticks 200]

Starts its own PostgreSQL (devtools.servers), migrates, and makes 100 tenants sharing `--schedules`
cron schedules of a dry-run experiment against a hosts environment. Then it prints:

- an idle sweep (nothing due), which beat runs every second: p50/p99 over 200 sweeps;
- one sweep claiming `--due` ticks at once (every schedule of a `* * * * *` minute);
- `--ticks` ticks fired one after the other (experiments.scheduling.fire: Forbid check, policy, the
  Run row, its event and audit entry): p50/p99 per tick.

Tasks are published to a real Redis (its own, started here) that no worker reads: the figures are the
control plane's own work, not a worker's.
"""
from __future__ import annotations

import argparse
import sys
import time
from datetime import timedelta
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench.common import percentiles, platform_database  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--schedules", type=int, default=10_000)
    parser.add_argument("--due", type=int, default=1_000, help="ticks due in the one busy sweep")
    parser.add_argument("--ticks", type=int, default=200, help="ticks fired for the per-tick figure")
    args = parser.parse_args()

    with platform_database():
        started = time.monotonic()
        schedules = seed(args.schedules)
        print(f"seeded {args.schedules} schedules over 100 tenants in {time.monotonic() - started:.1f} s")
        measure(schedules, args.due, args.ticks)


def seed(count: int) -> list[int]:
    from django.utils import timezone

    from experiments import services as experiment_services
    from experiments.models import Schedule
    from injector import services as injector_services
    from tenants.actors import Actor
    from tenants.models import Policy, Tenant

    system = Actor.system_actor("bench")
    tenants = Tenant.objects.bulk_create([Tenant(slug=f"t{i:03d}", name=f"Tenant {i}") for i in range(100)])
    Policy.objects.bulk_create([Policy(tenant=t) for t in tenants])
    parts = []
    for tenant in tenants:
        env, _ = injector_services.create_environment(system, tenant, "lab", "hosts")
        experiment = experiment_services.create_experiment(system, tenant, {
            "name": "cpu", "kind": "PhysicalMachineChaos", "action": "stress-cpu", "mode": "all", "selector": {},
            "params": {"stress-cpu": {"load": 10, "workers": 1}}, "duration": "30s"})
        parts.append((tenant, env, experiment))
    far = timezone.now() + timedelta(days=1)
    rows = Schedule.objects.bulk_create(
        Schedule(tenant=tenant, name=f"s{i}", cron="* * * * *", experiment=experiment, environment=env,
                 dry_run=True, concurrency_policy="Allow", next_fire_at=far)
        for i in range(count) for tenant, env, experiment in [parts[i % len(parts)]]
    )
    return [s.pk for s in rows]


def measure(schedules: list[int], due: int, ticks: int) -> None:
    from django.utils import timezone

    from experiments import scheduling
    from experiments.models import Schedule

    idle = []
    for _ in range(200):
        began = time.perf_counter()
        assert scheduling.sweep() == []
        idle.append((time.perf_counter() - began) * 1000)
    p50, p99 = percentiles(idle)
    print(f"idle sweep over {len(schedules)} schedules: p50 {p50:.2f} ms, p99 {p99:.2f} ms")

    now = timezone.now()
    Schedule.objects.filter(pk__in=schedules[:due]).update(next_fire_at=now)
    began = time.perf_counter()
    claimed = scheduling.sweep(now + timedelta(milliseconds=10), publish=False)
    claim = (time.perf_counter() - began) * 1000
    began = time.perf_counter()
    scheduling._publish(claimed)  # what the sweep does after its commit
    publish = (time.perf_counter() - began) * 1000
    assert len(claimed) == due, len(claimed)
    print(f"one sweep claiming {due} due ticks: {claim:.0f} ms to claim, {publish:.0f} ms to publish "
          f"({(claim + publish) / due:.2f} ms per tick)")

    fired = []
    for pk, tick in claimed[:ticks]:
        began = time.perf_counter()
        assert scheduling.fire(pk, tick) == "fired"
        fired.append((time.perf_counter() - began) * 1000)
    p50, p99 = percentiles(fired)
    print(f"{len(fired)} ticks fired (a dry run each): p50 {p50:.1f} ms, p99 {p99:.1f} ms per tick")


if __name__ == "__main__":
    main()

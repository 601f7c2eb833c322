"""What the run tests share: a hosts environment whose agents are simulated behind the real relay
(devtools.simagents), and experiments to run on them."""
from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from django.utils import timezone

from devtools.simagents import SimulatedAgents
from experiments import services as experiment_services
from injector import services
from injector.models import Agent, Environment
from tenants.actors import Actor
from tenants.models import Tenant

SYSTEM = Actor.system_actor("system:test")


def hosts_environment(tenant: Tenant, name: str = "lab", agents: int = 3, **labels: str) -> Environment:
    env, _ = services.create_environment(SYSTEM, tenant, name, "hosts")
    now = timezone.now()
    Agent.objects.bulk_create(
        Agent(
            tenant=tenant, environment=env, name=f"host-{i}", hostname=f"host-{i}.lab",
            labels={"tier": "web" if i % 2 == 0 else "db", **labels}, connected=True, connected_at=now,
            last_heartbeat=now,
        )
        for i in range(agents)
    )
    return env


def host_experiment(tenant: Tenant, name: str = "cpu", *, mode: str = "all", value: Any = None,
                    duration: str = "60s", selector: dict[str, Any] | None = None) -> Any:
    data = {
        "name": name, "kind": "PhysicalMachineChaos", "action": "stress-cpu",
        "params": {"stress-cpu": {"load": 10, "workers": 1}}, "selector": selector or {}, "mode": mode,
        "duration": duration,
    }
    if value is not None:
        data["value"] = value
    return experiment_services.create_experiment(SYSTEM, tenant, data)


@contextmanager
def simulated(env: Environment, redis_url: str) -> Iterator[SimulatedAgents]:
    ids = list(Agent.objects.filter(environment=env).values_list("uuid", flat=True))
    with SimulatedAgents(redis_url, ids) as sim:
        yield sim

"""Runs end to end, all real: the REST API -> PostgreSQL -> a Celery worker (its own process, with beat
running the reaper) -> Redis -> the agent gateway (TLS) -> the real agent daemon (root, real iptables)
-> a partition in network namespaces this test made; and back out, whatever fails in between: the
worker SIGKILLed, Redis restarted, the gateway restarted. The lab fixture fails a test that leaves
a rule, a namespace or a process behind.

The agent carries the label chaosplane.io/target-netns, so its host faults land in the lab's
namespace `a`; the demo service listens in namespace `b`.
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from devtools.servers import RedisServer
from experiments.models import Experiment, Injection, Run
from injector.drivers import agent as agent_api
from injector.management.commands.devcerts import DevCerts
from injector.models import Agent
from tenants.actors import Actor
from tests.conftest import client_for
from tests.injector.gateway_harness import wait_until
from tests.nodeagent.netns import Lab, needs_root

from .platform_harness import PORT, Platform, T, cut, events, make_platform, partition, phase, start, wait_phase

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True), needs_root]


def test_a_partition_run_cuts_the_service_for_its_duration_and_heals(platform: Platform, world: Any, lab: Lab):
    run = start(world, partition(world, lab, "4s"))

    wait_until(lambda: cut(lab), what="the partition to cut the service")
    assert phase(run["id"]) == Run.Phase.RUNNING
    assert cut(lab)  # still, during its duration

    done = wait_phase(run["id"], Run.Phase.FINISHED, timeout=20)
    assert lab.connects(lab.path_a, lab.ip_b, PORT)
    injection = done.injections.get()
    assert injection.state == Injection.State.RECOVERED and injection.injected_at < injection.recovered_at
    elapsed = (injection.recovered_at - injection.injected_at).total_seconds()
    assert 3.0 <= elapsed < 12.0, elapsed
    assert events(run["id"])[:4] == ["Started", "Selected", "Injected", "Running"]
    assert agent_api.list_faults(Agent.objects.get(name="e2e")).faults == ()


def test_pause_resume_and_a_halt_that_heals_within_two_seconds(platform: Platform, world: Any, lab: Lab):
    run = start(world, partition(world, lab, "120s"))
    wait_until(lambda: cut(lab), what="the partition")
    operator = client_for(world.operator)

    assert operator.post(f"{T}/runs/{run['id']}/pause/").status_code == 200
    wait_phase(run["id"], Run.Phase.PAUSED)
    assert lab.connects(lab.path_a, lab.ip_b, PORT)

    assert operator.post(f"{T}/runs/{run['id']}/resume/").status_code == 200
    wait_phase(run["id"], Run.Phase.RUNNING)
    assert cut(lab)

    began = time.monotonic()
    response = operator.post(f"{T}/halt/")
    wait_until(lambda: lab.connects(lab.path_a, lab.ip_b, PORT, timeout=0.2), timeout=5, what="the halt to heal")
    healed = time.monotonic() - began
    assert response.status_code == 200 and response.json()["halted"] == 1
    assert healed < 2.0, f"halt took {healed:.2f} s"
    wait_phase(run["id"], Run.Phase.FINISHED)
    assert "Halted" in events(run["id"])
    assert agent_api.list_faults(Agent.objects.get(name="e2e")).faults == ()


def test_a_dry_run_changes_nothing(platform: Platform, world: Any, lab: Lab) -> None:
    run = start(world, partition(world, lab, "30s"), dry_run=True)
    done = wait_phase(run["id"], Run.Phase.FINISHED)
    assert lab.connects(lab.path_a, lab.ip_b, PORT)
    assert done.injections.get().state == Injection.State.DRY_RUN
    assert agent_api.list_faults(Agent.objects.get(name="e2e")).faults == ()


def test_a_worker_killed_mid_run_leaves_nothing_behind(platform: Platform, world: Any, lab: Lab) -> None:
    run = start(world, partition(world, lab, "5s"))
    wait_phase(run["id"], Run.Phase.RUNNING)
    assert cut(lab)
    assert platform.worker is not None
    platform.worker.kill()  # SIGKILL: the deadline's eta task dies with it, unacknowledged
    platform.start_worker()

    done = wait_phase(run["id"], Run.Phase.FINISHED, timeout=40)
    assert lab.connects(lab.path_a, lab.ip_b, PORT)
    assert "Deadline" in events(run["id"])  # the reaper (or the eta task) recovered it, not only the agent's lease
    assert done.injections.get().state == Injection.State.RECOVERED


def test_the_gateway_restarting_mid_run_leaves_nothing_behind(platform: Platform, world: Any, lab: Lab) -> None:
    run = start(world, partition(world, lab, "6s"))
    wait_phase(run["id"], Run.Phase.RUNNING)
    agent = Agent.objects.get(name="e2e")
    platform.stop_gateway()
    assert cut(lab)  # the agent holds the fault while the gateway is away (within its lease)
    platform.start_gateway()  # same port; the agent dials again
    wait_until(lambda: Agent.objects.filter(pk=agent.pk, connected=True, connected_at__gt=agent.connected_at).exists(),
               timeout=20, what="the agent to reconnect")

    wait_phase(run["id"], Run.Phase.FINISHED, timeout=40)
    assert lab.connects(lab.path_a, lab.ip_b, PORT)
    assert Run.objects.get(uuid=run["id"]).injections.get().state == Injection.State.RECOVERED


def test_redis_restarting_mid_run_leaves_nothing_behind(
    tmp_path: Path, certs: DevCerts, settings: Any, world: Any, lab: Lab
) -> None:
    """Its own Redis, so it can restart it: broker and relay both go away and come back. The run is
    injected from here (the test's own Celery app publishes to the session's Redis); the worker's
    beat finds it at its deadline."""
    from experiments import runs

    own = RedisServer(tmp_path / "redis").start()
    settings.REDIS_URL = own.url
    settings.AGENT_COMMAND_TIMEOUT = 3.0
    p = make_platform(tmp_path, certs, own.url, world, lab)
    try:
        experiment = partition(world, lab, "6s")
        started = runs.start_run(Actor(user=world.operator.user), Experiment.objects.get(uuid=experiment), "lab",
                                 publish=False)
        runs.inject(started.pk)
        assert Run.objects.get(pk=started.pk).phase == Run.Phase.RUNNING and cut(lab)

        own.stop()
        time.sleep(1)
        own.start()

        wait_phase(str(started.uuid), Run.Phase.FINISHED, timeout=60)
        assert lab.connects(lab.path_a, lab.ip_b, PORT)
        assert Run.objects.get(pk=started.pk).injections.get().state == Injection.State.RECOVERED
    finally:
        p.stop()
        own.stop()

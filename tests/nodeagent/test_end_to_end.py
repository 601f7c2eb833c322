"""The whole agent path for real: a worker-side call (injector.drivers.agent) -> Redis -> the gateway
(TLS, in this process) -> the stream the real agent (`python -m nodeagent`, real executors) opened ->
a partition in a network namespace this test made; then recovery, and nothing left behind."""
from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from injector import services
from injector.drivers import agent as driver
from injector.management.commands.devcerts import DevCerts, write_dev_certs
from injector.models import Agent
from tenants.actors import Actor
from tests.injector.gateway_harness import running_gateway, wait_until
from tests.nodeagent.real_agent import AgentRunner, connected_agent

from .netns import needs_root

REPO = Path(__file__).resolve().parents[2]
pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True), needs_root]


@pytest.fixture
def certs(tmp_path: Path) -> DevCerts:
    return write_dev_certs(tmp_path / "certs")


@pytest.fixture
def gateway(certs: DevCerts, settings: Any) -> Iterator[Any]:
    with running_gateway(certs, settings.REDIS_URL, "gw-e2e") as gw:
        yield gw


@pytest.fixture
def runner(world: Any, gateway: Any, certs: DevCerts, tmp_path: Path) -> Iterator[AgentRunner]:
    environment, token = services.create_environment(Actor.system_actor(), world.acme, "lab", "hosts")
    runner = AgentRunner(gateway, certs, tmp_path, token)
    runner.environment = environment  # type: ignore[attr-defined]
    runner.start()
    try:
        yield runner
    finally:
        runner.stop()


@pytest.fixture
def agent_process(runner: AgentRunner) -> Agent:
    return connected_agent(runner)


def test_a_partition_travels_to_the_real_agent_and_comes_back_out(lab: Any, agent_process: Agent) -> None:
    lab.tcp_server(lab.path_b, lab.ip_b, 8080)
    assert lab.connects(lab.path_a, lab.ip_b, 8080)
    fault_id = f"e2e-{uuid.uuid4().hex[:12]}"
    params = {"direction": "to", "externalTargets": [lab.ip_b]}

    result = driver.inject(
        agent_process, fault_id, "NetworkChaos", "partition", params, driver.AgentTarget(kind="netns", name=lab.a),
        time.time() + 60,
    )

    assert result.ok, result.error
    assert not lab.connects(lab.path_a, lab.ip_b, 8080)
    assert [f.fault_id for f in driver.list_faults(agent_process).faults] == [fault_id]

    assert driver.recover(agent_process, fault_id).ok
    assert lab.connects(lab.path_a, lab.ip_b, 8080)
    assert driver.list_faults(agent_process).faults == ()


def test_a_fault_the_agent_cannot_do_is_refused_with_the_reason(lab: Any, agent_process: Agent) -> None:
    result = driver.inject(
        agent_process, "e2e-bad", "NetworkChaos", "partition", {"direction": "to", "device": "eth0; touch /tmp/x"},
        driver.AgentTarget(kind="netns", name=lab.a), time.time() + 60,
    )
    assert not result.ok and "interface" in result.error
    assert not Path("/tmp/x").exists()


def test_a_killed_agent_removes_its_real_faults_when_it_starts_again(lab: Any, runner: AgentRunner) -> None:
    agent = connected_agent(runner)
    lab.tcp_server(lab.path_b, lab.ip_b, 8080)
    target = driver.AgentTarget(kind="netns", name=lab.a)
    params = {"direction": "to", "externalTargets": [lab.ip_b]}
    assert driver.inject(agent, "e2e-held", "NetworkChaos", "partition", params, target, time.time() + 300).ok
    assert not lab.connects(lab.path_a, lab.ip_b, 8080)

    runner.kill()  # SIGKILL: no chance to clean up
    assert not lab.connects(lab.path_a, lab.ip_b, 8080)  # the rules outlive the process
    runner.start()

    wait_until(lambda: lab.connects(lab.path_a, lab.ip_b, 8080), what="the restarted agent to remove the partition")
    again = connected_agent(runner, after=agent.connected_at)
    assert driver.list_faults(again).faults == ()

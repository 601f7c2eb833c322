"""The real platform a run goes through in the end-to-end tests (test_runs_e2e, test_workflows_e2e):
Redis, the TLS gateway, the real agent (root) and a Celery worker with beat, each restartable; and the
helpers those tests share (a partition experiment, starting runs, waiting for phases)."""
from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.db import connection

from devtools.servers import CeleryWorker
from experiments.models import Event, Run
from injector import services
from injector.drivers.hosts import TARGET_NETNS_LABEL
from injector.management.commands.devcerts import DevCerts, write_dev_certs
from injector.models import Agent
from tests.conftest import client_for
from tests.experiments.runs_harness import SYSTEM
from tests.injector.gateway_harness import running_gateway, wait_until
from tests.nodeagent.netns import Lab
from tests.nodeagent.real_agent import AgentRunner, connected_agent

REPO = Path(__file__).resolve().parents[2]
T = "/api/v1/tenants/acme"
PORT = 8080


def database_url() -> str:
    """The test database (pytest-django's), for the worker process to use the same rows."""
    s = connection.settings_dict
    return f"postgres://{s['USER']}:{s['PASSWORD']}@{s['HOST']}:{s['PORT']}/{s['NAME']}"


class Platform:
    """The parts a run goes through, each restartable: Redis (the session's, or a test's own), the
    gateway, the agent, the worker."""

    def __init__(self, tmp_path: Path, certs: DevCerts, redis_url: str, world: Any) -> None:
        self.tmp_path, self.certs, self.redis_url, self.world = tmp_path, certs, redis_url, world
        self.gateway_port: int | None = None
        self._gateway: Any = None
        self.worker: CeleryWorker | None = None
        self.environment, token = services.create_environment(SYSTEM, world.acme, "lab", "hosts")
        self.token = token
        self.agent: AgentRunner | None = None

    def start_gateway(self) -> None:
        self._gateway_cm = running_gateway(self.certs, self.redis_url, "gw-runs", port=self.gateway_port)
        self._gateway = self._gateway_cm.__enter__()
        self.gateway_port = self._gateway.port

    def stop_gateway(self) -> None:
        if self._gateway is not None:
            self._gateway_cm.__exit__(None, None, None)
            self._gateway = None

    def start_agent(self, lab: Lab) -> Agent:
        self.agent = AgentRunner(self._gateway, self.certs, self.tmp_path, self.token,
                                 labels={TARGET_NETNS_LABEL: lab.a})
        self.agent.environment = self.environment  # type: ignore[attr-defined]
        self.agent.start()
        return connected_agent(self.agent)

    def start_worker(self) -> CeleryWorker:
        env = dict(os.environ, DATABASE_URL=database_url(), REDIS_URL=self.redis_url, REAPER_INTERVAL_SECONDS="1",
                   AGENT_COMMAND_TIMEOUT="3", RUN_RETRY_BASE_SECONDS="0.5")
        log = self.tmp_path / f"worker-{time.monotonic_ns()}.log"
        self.worker = CeleryWorker(env=env, cwd=REPO, logfile=log, extra_args=["-B", "-s", str(log) + ".beat"])
        return self.worker.start()

    def stop(self) -> None:
        if self.worker is not None:
            self.worker.stop()
        if self.agent is not None:
            self.agent.stop()
        self.stop_gateway()


@pytest.fixture
def certs(tmp_path: Path) -> DevCerts:
    return write_dev_certs(tmp_path / "certs")


def make_platform(tmp_path: Path, certs: DevCerts, redis_url: str, world: Any, lab: Lab) -> Platform:
    platform = Platform(tmp_path, certs, redis_url, world)
    platform.start_gateway()
    platform.start_agent(lab)
    platform.start_worker()
    lab.tcp_server(lab.path_b, lab.ip_b, PORT)
    assert lab.connects(lab.path_a, lab.ip_b, PORT)
    return platform


@pytest.fixture
def platform(tmp_path: Path, certs: DevCerts, settings: Any, world: Any, lab: Lab) -> Iterator[Platform]:
    settings.AGENT_COMMAND_TIMEOUT = 3.0
    p = make_platform(tmp_path, certs, settings.REDIS_URL, world, lab)
    try:
        yield p
    finally:
        p.stop()


def partition(world: Any, lab: Lab, duration: str, name: str = "cut") -> str:
    body = {
        "name": name, "kind": "PhysicalMachineChaos", "action": "network-partition", "mode": "all",
        "selector": {"agents": ["e2e"]}, "duration": duration,
        "params": {"network-partition": {"device": "veth0", "ip-address": lab.ip_b, "direction": "to"}},
    }
    response = client_for(world.operator).post(f"{T}/experiments/", body, format="json")
    assert response.status_code == 201, response.json()
    return response.json()["id"]


def start(world: Any, experiment: str, **extra: Any) -> dict[str, Any]:
    response = client_for(world.operator).post(
        f"{T}/experiments/{experiment}/runs/", {"environment": "lab", **extra}, format="json"
    )
    assert response.status_code == 201, response.json()
    return response.json()


def phase(run_id: str) -> str:
    return Run.objects.get(uuid=run_id).phase


def wait_phase(run_id: str, *phases: str, timeout: float = 30.0) -> Run:
    wait_until(lambda: phase(run_id) in phases, timeout=timeout,
               what=f"run {run_id} to be {' or '.join(phases)} (it is {phase(run_id)}; events: {events(run_id)})")
    return Run.objects.get(uuid=run_id)


def events(run_id: str) -> list[str]:
    return list(Event.objects.filter(run__uuid=run_id).order_by("created_at", "id").values_list("reason", flat=True))


def cut(lab: Lab) -> bool:
    return not lab.connects(lab.path_a, lab.ip_b, PORT, timeout=0.3)



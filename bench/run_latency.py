"""How long a run takes to land and to come back out, through every real part.

    .venv/bin/python bench/run_latency.py [--runs 100] [--targets 1000]      (as root, on Linux)

Starts its own PostgreSQL and Redis, a Celery worker (solo pool), a TLS gateway and a real agent
(`python -m nodeagent`) whose faults land in a network namespace this bench creates. Each round
starts a PhysicalMachineChaos partition through the API (Django's test client in this process: the
view, the database, the on-commit publish, no socket) and times until the run's fault is active on
the agent (the injection row says injected, which the agent confirms after applying the rules), then
stops it and times until it is recovered. Then one run over `--targets` simulated agents (devtools.
simagents: they acknowledge through the real relay without acting), from the API call to every
target injected. One line per figure; goals: start to active p99 < 250 ms, 1,000 targets < 2 s.
"""
from __future__ import annotations

import argparse
import os
import secrets
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench.common import percentiles, wait_for  # noqa: E402 - after the path is set

NETNS = f"cprun{os.getpid() % 10000}"
POLL = 0.002  # seconds between looks at the run's phase: small beside what is measured




def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=100)
    parser.add_argument("--targets", type=int, default=1000)
    args = parser.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("run as root: the faults go into a network namespace this bench creates")

    from devtools.servers import PostgresServer, RedisServer

    with tempfile.TemporaryDirectory(prefix="chaosplane-bench-") as tmp_name:
        tmp = Path(tmp_name)
        with PostgresServer(tmp / "pg") as pg, RedisServer(tmp / "redis") as redis_server:
            env = dict(os.environ, DATABASE_URL=pg.url, REDIS_URL=redis_server.url,
                       SECRET_KEY=secrets.token_urlsafe(40), DEBUG="0", LOG_LEVEL="WARNING",
                       DJANGO_SETTINGS_MODULE="config.settings", ALLOWED_HOSTS="testserver,localhost")
            os.environ.update(env)
            import django

            django.setup()
            from django.core.management import call_command

            call_command("migrate", verbosity=0)
            import config.wsgi  # noqa: F401 - this process serves the API calls, set up as the web server is
            run(env, tmp, args)


def spawn(argv: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with open(log, "wb") as out:
        return subprocess.Popen(argv, cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)


def run(env: dict[str, str], tmp: Path, args: argparse.Namespace) -> None:
    from django.contrib.auth import get_user_model
    from django.test import Client
    from django.utils import timezone

    from devtools.servers import CeleryWorker, free_port
    from devtools.simagents import SimulatedAgents
    from experiments import services as experiment_services
    from experiments.models import Run
    from injector import services
    from injector.drivers.hosts import TARGET_NETNS_LABEL
    from injector.management.commands.devcerts import write_dev_certs
    from injector.models import Agent
    from tenants import services as tenant_services
    from tenants.actors import Actor
    from tenants.roles import Role

    system = Actor.system_actor("bench")
    owner = get_user_model().objects.create_user("bench")
    tenant = tenant_services.create_tenant(system, "bench", "Bench", owner)
    token = tenant_services.issue_token(system, tenant, "bench", Role.OPERATOR, user=owner).secret
    client = Client(HTTP_AUTHORIZATION=f"Bearer {token}")
    environment, registration = services.create_environment(system, tenant, "lab", "hosts")
    certs = write_dev_certs(tmp / "certs")
    port = free_port()
    processes: list[subprocess.Popen[bytes]] = []
    worker = CeleryWorker(env=env, cwd=REPO, logfile=tmp / "worker.log")
    subprocess.run(["ip", "netns", "add", NETNS], check=True)
    try:
        processes.append(spawn(
            [sys.executable, "manage.py", "agentgateway", "--listen", f"127.0.0.1:{port}", "--cert",
             str(certs.server_cert), "--key", str(certs.server_key), "--client-ca", str(certs.ca)],
            env, tmp / "gateway.log",
        ))
        agent_env = {k: v for k, v in env.items() if not k.startswith("CHAOSPLANE_AGENT")}
        agent_env.update(CHAOSPLANE_AGENT_TOKEN=registration, PYTHONPATH=str(REPO),
                         CHAOSPLANE_AGENT_LABELS=f"{TARGET_NETNS_LABEL}={NETNS}")
        processes.append(spawn(
            [sys.executable, "-m", "nodeagent", "--gateway", f"127.0.0.1:{port}", "--ca-file", str(certs.ca),
             "--cert-file", str(certs.agent_cert), "--key-file", str(certs.agent_key), "--journal",
             str(tmp / "journal.sqlite3"), "--state-dir", str(tmp / "state"), "--name", "bench", "--log-level",
             "WARNING"],
            agent_env, tmp / "agent.log",
        ))
        worker.start()
        wait_for(lambda: Agent.objects.filter(environment=environment, name="bench", connected=True).exists(),
                 30, "the agent to connect", 0.05)

        experiment = experiment_services.create_experiment(system, tenant, {
            "name": "cut", "kind": "PhysicalMachineChaos", "action": "network-partition", "mode": "all",
            "selector": {"agents": ["bench"]}, "duration": "10m",
            "params": {"network-partition": {"device": "lo", "ip-address": "10.251.0.2", "direction": "to"}},
        })
        base = "/api/v1/tenants/bench"
        starts, stops, answers = [], [], []
        for _ in range(args.runs):
            t0 = time.perf_counter()
            response = client.post(f"{base}/experiments/{experiment.uuid}/runs/", {"environment": "lab"},
                                   content_type="application/json")
            assert response.status_code == 201, response.content
            answers.append((time.perf_counter() - t0) * 1000)
            run_id = response.json()["id"]
            wait_for(lambda run_id=run_id: Run.objects.filter(uuid=run_id, phase=Run.Phase.RUNNING).exists(), 30,
                     f"run {run_id} to be running", POLL)
            t1 = time.perf_counter()
            assert client.post(f"{base}/runs/{run_id}/stop/").status_code == 200
            wait_for(lambda run_id=run_id: Run.objects.filter(uuid=run_id, phase=Run.Phase.FINISHED).exists(), 30,
                     f"run {run_id} to finish", POLL)
            t2 = time.perf_counter()
            starts.append((t1 - t0) * 1000)
            stops.append((t2 - t1) * 1000)
        p50, p99 = percentiles(starts)
        print(f"start to active: p50 {p50:.0f} ms, p99 {p99:.0f} ms ({args.runs} runs, real agent)")
        p50, p99 = percentiles(stops)
        print(f"stop to recovered: p50 {p50:.0f} ms, p99 {p99:.0f} ms ({args.runs} runs, real agent)")
        queued, injecting = [], []
        for done in Run.objects.filter(experiment=experiment).prefetch_related("injections"):
            row = done.injections.all()[0]
            queued.append((done.started_at - done.created_at).total_seconds() * 1000)
            injecting.append((row.injected_at - done.started_at).total_seconds() * 1000)
        for what, samples in (("the API's answer", answers), ("created to picked up by the worker", queued),
                              ("picked up to injected", injecting)):
            p50, p99 = percentiles(samples)
            print(f"  of which {what}: p50 {p50:.0f} ms, p99 {p99:.0f} ms")

        fleet, _ = services.create_environment(system, tenant, "fleet", "hosts")
        now = timezone.now()
        Agent.objects.bulk_create(
            Agent(tenant=tenant, environment=fleet, name=f"sim-{i:04d}", hostname=f"sim-{i:04d}", connected=True,
                  connected_at=now, last_heartbeat=now)
            for i in range(args.targets)
        )
        many = experiment_services.create_experiment(system, tenant, {
            "name": "burn", "kind": "PhysicalMachineChaos", "action": "stress-cpu", "mode": "all", "selector": {},
            "duration": "10m", "params": {"stress-cpu": {"load": 10, "workers": 1}},
        })
        ids = list(Agent.objects.filter(environment=fleet).values_list("uuid", flat=True))
        with SimulatedAgents(env["REDIS_URL"], ids) as sim:
            t0 = time.perf_counter()
            response = client.post(f"{base}/experiments/{many.uuid}/runs/", {"environment": "fleet"},
                                   content_type="application/json")
            assert response.status_code == 201, response.content
            run_id = response.json()["id"]
            wait_for(lambda: Run.objects.filter(uuid=run_id).exclude(phase__in=["pending", "injecting"]).exists(),
                     60, "the 1,000-target run to be injected", 0.005)
            elapsed = time.perf_counter() - t0
            done = Run.objects.get(uuid=run_id)
            injected = done.injections.filter(state="injected").count()
            held = sum(len(f) for f in sim.all_held().values())
            print(f"{args.targets:,} targets: all injected in {elapsed:.2f} s "
                  f"({injected} injected, {held} held by the simulated agents, phase {done.phase})")
            client.post(f"{base}/runs/{run_id}/stop/")
            wait_for(lambda: Run.objects.filter(uuid=run_id, phase=Run.Phase.FINISHED).exists(), 60,
                     "the 1,000-target run to finish", 0.01)
    finally:
        worker.stop()
        for process in reversed(processes):
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
                try:
                    process.wait(30)
                except subprocess.TimeoutExpired:
                    os.killpg(process.pid, signal.SIGKILL)
                    process.wait(10)
        subprocess.run(["ip", "netns", "del", NETNS], check=False)


if __name__ == "__main__":
    main()

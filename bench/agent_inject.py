"""Inject and recover through the real gateway and a real agent, and the gateway's memory with many
idle agent streams.

    .venv/bin/python bench/agent_inject.py [--rounds 200] [--streams 1000]      (as root, on Linux)

Starts its own PostgreSQL and Redis (devtools.servers), a TLS gateway (`manage.py agentgateway`, a
process of its own so its memory can be read), a real agent (`python -m nodeagent`, real executors)
and a network namespace for the faults. Each round sends inject then recover from the worker side
(injector.drivers.agent -> Redis -> gateway -> agent stream -> executor -> result back) and times
each call. Then a load client opens idle agent streams and the gateway's resident memory is read
from /proc. Prints one line per figure; the goal is p99 under 100 ms per command.
"""
from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench.common import percentiles, wait_for  # noqa: E402 - after the path is set

NETNS = f"cpbench{os.getpid() % 10000}"


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0




def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=200)
    parser.add_argument("--streams", type=int, default=1000)
    args = parser.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("run as root: the faults go into a network namespace this bench creates")

    from devtools.servers import PostgresServer, RedisServer, free_port

    with tempfile.TemporaryDirectory(prefix="chaosplane-bench-") as tmp_name:
        tmp = Path(tmp_name)
        with PostgresServer(tmp / "pg") as pg, RedisServer(tmp / "redis") as redis_server:
            env = dict(os.environ, DATABASE_URL=pg.url, REDIS_URL=redis_server.url,
                       SECRET_KEY=secrets.token_urlsafe(40), DEBUG="0", LOG_LEVEL="WARNING")
            os.environ.update(env)
            os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
            import django

            django.setup()
            from django.core.management import call_command

            call_command("migrate", verbosity=0)
            run(env, tmp, args, free_port)


def run(env: dict[str, str], tmp: Path, args: argparse.Namespace, free_port) -> None:  # type: ignore[no-untyped-def]
    from django.contrib.auth import get_user_model

    from injector import services
    from injector.drivers import agent as driver
    from injector.management.commands.devcerts import write_dev_certs
    from injector.models import Agent
    from tenants import services as tenant_services
    from tenants.actors import Actor

    system = Actor.system_actor("bench")
    owner = get_user_model().objects.create_user("bench")
    tenant = tenant_services.create_tenant(system, "bench", "Bench", owner)
    environment, token = services.create_environment(system, tenant, "lab", "hosts")
    certs = write_dev_certs(tmp / "certs")
    port = free_port()
    processes: list[subprocess.Popen[bytes]] = []
    subprocess.run(["ip", "netns", "add", NETNS], check=True)
    try:
        gateway = subprocess.Popen(
            [sys.executable, "manage.py", "agentgateway", "--listen", f"127.0.0.1:{port}", "--cert",
             str(certs.server_cert), "--key", str(certs.server_key), "--client-ca", str(certs.ca),
             "--max-streams", str(args.streams + 16)],
            cwd=REPO, env=env, stdout=open(tmp / "gateway.log", "wb"), stderr=subprocess.STDOUT,  # noqa: SIM115
            start_new_session=True,
        )
        processes.append(gateway)
        agent_env = {k: v for k, v in env.items() if not k.startswith("CHAOSPLANE_AGENT")}
        agent_env.update(CHAOSPLANE_AGENT_TOKEN=token, PYTHONPATH=str(REPO))
        agent = subprocess.Popen(
            [sys.executable, "-m", "nodeagent", "--gateway", f"127.0.0.1:{port}", "--ca-file", str(certs.ca),
             "--cert-file", str(certs.agent_cert), "--key-file", str(certs.agent_key), "--journal",
             str(tmp / "journal.sqlite3"), "--state-dir", str(tmp / "state"), "--name", "bench", "--log-level",
             "WARNING"],
            cwd=REPO, env=agent_env, stdout=open(tmp / "agent.log", "wb"), stderr=subprocess.STDOUT,  # noqa: SIM115
            start_new_session=True,
        )
        processes.append(agent)
        row = wait_for(lambda: Agent.objects.filter(environment=environment, name="bench", connected=True).first(),
                       30, "the agent to connect")
        print(f"gateway memory with 1 agent: {rss_mb(gateway.pid):.0f} MB")
        target = driver.AgentTarget(kind="netns", name=NETNS)
        faults = {
            "partition": {"direction": "to", "externalTargets": ["10.251.0.2"]},
            "loss": {"direction": "from", "loss": {"loss": "30"}, "externalTargets": ["10.251.0.2"]},
        }
        for action, params in faults.items():
            injects, recovers = [], []
            for _ in range(args.rounds):
                fault_id = f"bench-{uuid.uuid4().hex[:12]}"
                t0 = time.perf_counter()
                result = driver.inject(row, fault_id, "NetworkChaos", action, params, target, time.time() + 120)
                t1 = time.perf_counter()
                assert result.ok, result.error
                assert driver.recover(row, fault_id).ok
                t2 = time.perf_counter()
                injects.append((t1 - t0) * 1000)
                recovers.append((t2 - t1) * 1000)
            for what, samples in (("inject", injects), ("recover", recovers)):
                p50, p99 = percentiles(samples)
                print(f"{action} {what}: p50 {p50:.1f} ms, p99 {p99:.1f} ms ({args.rounds} rounds)")
        if args.streams:
            opened = asyncio.run(idle_streams(port, certs, token, args.streams, gateway.pid))
            print(f"gateway memory with {opened} idle agent streams: {rss_mb(gateway.pid):.0f} MB")
    finally:
        for process in reversed(processes):
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
                try:
                    process.wait(30)
                except subprocess.TimeoutExpired:
                    os.killpg(process.pid, signal.SIGKILL)
                    process.wait(10)
        subprocess.run(["ip", "netns", "del", NETNS], check=False)


async def idle_streams(port: int, certs, token: str, count: int, gateway_pid: int) -> int:  # type: ignore[no-untyped-def]
    """Open `count` agent streams that say Hello and then stay idle (a load tool, not the agent)."""
    import grpc

    from nodeagent.proto.chaosplane.agent.v1 import agent_pb2, agent_pb2_grpc

    credentials = grpc.ssl_channel_credentials(
        certs.ca.read_bytes(), certs.agent_key.read_bytes(), certs.agent_cert.read_bytes()
    )
    channel = grpc.aio.secure_channel(f"127.0.0.1:{port}", credentials)
    stub = agent_pb2_grpc.AgentGatewayStub(channel)
    welcomed = 0
    calls = []
    stop = asyncio.Event()

    async def one(i: int) -> None:
        nonlocal welcomed

        async def requests():  # type: ignore[no-untyped-def]
            yield agent_pb2.AgentMessage(hello=agent_pb2.Hello(name=f"idle-{i}", hostname=f"idle-{i}"))
            await stop.wait()

        call = stub.Connect(requests(), metadata=[("authorization", f"Bearer {token}")])
        calls.append(call)
        async for message in call:
            if message.WhichOneof("body") == "welcome":
                welcomed += 1
                break

    batch = 50
    for start in range(0, count, batch):
        await asyncio.gather(*(one(i) for i in range(start, min(start + batch, count))))
    await asyncio.sleep(2)  # let the gateway settle before reading its memory
    print(f"idle streams welcomed: {welcomed} of {count}; gateway memory now {rss_mb(gateway_pid):.0f} MB")
    stop.set()
    for call in calls:
        call.cancel()
    await channel.close()
    return welcomed


if __name__ == "__main__":
    main()

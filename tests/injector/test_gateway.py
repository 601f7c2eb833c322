"""The agent gateway, end to end: a real gateway (mutual TLS, real Redis, real PostgreSQL) and a real
gRPC client in the role of the node agent; workers talk to it through injector.drivers.agent."""
from __future__ import annotations

import io
import json
import os
import stat
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
import redis
from django.core.exceptions import PermissionDenied
from django.core.management import CommandError, call_command

from devtools.servers import ManagedProcess, RedisServer, free_port
from injector import services
from injector.drivers import agent as driver
from injector.management.commands.devcerts import DevCerts, write_dev_certs
from injector.models import Agent, Environment
from nodeagent.proto.chaosplane.agent.v1 import agent_pb2
from tenants.actors import Actor
from tenants.bearer import hash_secret
from tenants.models import AuditEntry

from .gateway_harness import FakeAgent, running_gateway, wait_until

REPO = Path(__file__).resolve().parents[2]

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]
SYSTEM = Actor.system_actor("system:test")
LOSS_PARAMS = {"loss": {"loss": "30"}, "direction": "to"}


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The suite's Redis (make test starts one), else one of our own."""
    url = os.environ.get("REDIS_URL")
    if url:
        try:
            redis.Redis.from_url(url).ping()
            yield url
            return
        except redis.RedisError:
            pass
    with RedisServer(tmp_path_factory.mktemp("redis")) as server:
        yield server.url


@pytest.fixture(autouse=True)
def _redis_setting(settings: Any, redis_url: str) -> None:
    settings.REDIS_URL = redis_url  # the driver's default


@pytest.fixture(scope="session")
def certs(tmp_path_factory: pytest.TempPathFactory) -> DevCerts:
    return write_dev_certs(tmp_path_factory.mktemp("certs"))


@pytest.fixture
def gateway(certs: DevCerts, redis_url: str) -> Iterator[Any]:
    with running_gateway(certs, redis_url, "gw-a") as gw:
        yield gw


@pytest.fixture
def lab(world: Any) -> tuple[Environment, str]:
    """acme's hosts environment and its registration token."""
    return services.create_environment(SYSTEM, world.acme, "lab", "hosts")


@pytest.fixture
def agents(gateway: Any, certs: DevCerts) -> Iterator[Any]:
    """Open FakeAgents on `gateway` (or another), all closed after the test."""
    opened: list[FakeAgent] = []

    def connect(token: str | None, on: Any = None, **kw: Any) -> FakeAgent:
        opened.append(FakeAgent(on or gateway, certs, token, **kw))
        return opened[-1]

    yield connect
    for fake in opened:
        fake.cancel()


def registered(agents: Any, token: str, hostname: str = "web-1", on: Any = None) -> tuple[FakeAgent, Agent]:
    """A fake agent that registered and got its Welcome, and its row."""
    fake = agents(token, on=on)
    fake.hello(hostname=hostname)
    welcome = fake.welcome()
    return fake, Agent.objects.get(uuid=welcome.agent_id)


def inject_in_background(agent: Agent, timeout: float = 10.0, **kw: Any) -> dict[str, Any]:
    """Run driver.inject on a worker-like thread; the returned dict gets "result" or "error"."""
    out: dict[str, Any] = {}

    def call() -> None:
        try:
            out["result"] = driver.inject(
                agent, kw.get("fault_id", "fault-1"), "NetworkChaos", "loss", LOSS_PARAMS,
                driver.AgentTarget("netns", name="ns1"), time.time() + 60, timeout=timeout,
            )
        except Exception as error:  # noqa: BLE001 - the test inspects it
            out["error"] = error

    out["thread"] = threading.Thread(target=call, daemon=True)
    out["thread"].start()
    return out


# Registration and authentication --------------------------------------------------------------------


def test_registration_token_creates_the_agent_and_returns_a_credential_stored_hashed(lab: Any, agents: Any) -> None:
    env, token = lab
    fake = agents(token)
    fake.hello(hostname="web-1", labels={"rack": "r1"}, capabilities=[
        agent_pb2.Capability(name="netem", available=True, detail="sch_netem"),
        agent_pb2.Capability(name="bpf", available=False, detail="kernel too old"),
    ])
    welcome = fake.welcome()

    assert welcome.credential.startswith("cpa_") and welcome.lease_seconds > 0 and welcome.heartbeat_seconds > 0
    agent = Agent.objects.get(uuid=welcome.agent_id)
    assert (agent.tenant, agent.environment, agent.name, agent.hostname) == (env.tenant, env, "web-1", "web-1")
    assert agent.labels == {"rack": "r1"} and agent.version == "0.1.0"
    assert agent.has_capability("netem") and not agent.has_capability("bpf")
    assert agent.connected and agent.connected_gateway == "gw-a" and agent.last_heartbeat is not None
    _, prefix, secret = welcome.credential.split("_", 2)
    assert (agent.credential_prefix, agent.credential_hash) == (prefix, hash_secret(secret))
    stored = json.dumps(list(Agent.objects.values()), default=str)
    assert secret not in stored and welcome.credential not in stored
    assert AuditEntry.objects.filter(tenant=env.tenant, action="agent.register", object_id=str(agent.pk)).exists()


def test_a_credential_identifies_the_agent_and_no_new_credential_is_issued(lab: Any, agents: Any) -> None:
    fake = agents(lab[1])
    fake.hello(hostname="web-1")
    first = fake.welcome()
    fake.close()

    again = agents(first.credential)
    again.hello(hostname="web-1b", agent_id=first.agent_id)
    welcome = again.welcome()

    assert welcome.agent_id == first.agent_id and welcome.credential == ""
    agent = Agent.objects.get(uuid=first.agent_id)
    assert agent.hostname == "web-1b" and agent.connected
    assert Agent.objects.count() == 1


@pytest.mark.parametrize("kind", ["none", "garbage", "wrong secret", "api token", "unknown credential"])
def test_anything_but_a_registration_token_or_credential_is_unauthenticated(
    kind: str, lab: Any, world: Any, agents: Any
) -> None:
    env, token = lab
    tokens = {
        "none": None,
        "garbage": "hello",
        "wrong secret": token.rsplit("_", 1)[0] + "_not-the-secret",
        "api token": world.owner.token,
        "unknown credential": "cpa_" + "0" * 12 + "_x",
    }
    fake = agents(tokens[kind])
    fake.hello()
    assert fake.status() == grpc.StatusCode.UNAUTHENTICATED
    assert not Agent.objects.exists()


def test_an_agent_without_a_client_certificate_is_turned_away(lab: Any, agents: Any) -> None:
    fake = agents(lab[1], client_cert=False)
    fake.hello()
    assert fake.status() == grpc.StatusCode.UNAVAILABLE
    assert not Agent.objects.exists()


# Commands -------------------------------------------------------------------------------------------


def test_a_command_reaches_the_agent_and_its_result_returns_to_the_caller(lab: Any, agents: Any) -> None:
    fake, agent = registered(agents, lab[1])
    call = inject_in_background(agent)

    command = fake.command()
    assert command is not None and command.WhichOneof("op") == "inject"
    assert (command.inject.fault_id, command.inject.kind, command.inject.action) == ("fault-1", "NetworkChaos", "loss")
    assert json.loads(command.inject.params_json) == {"direction": "to", "loss": {"loss": "30"}}
    assert command.inject.target.netns.name == "ns1"
    assert command.deadline_unix_ms > time.time() * 1000
    held = agent_pb2.HeldFault(fault_id="fault-1", kind="NetworkChaos", action="loss", target=command.inject.target,
                               expires_at_unix_ms=command.inject.expires_at_unix_ms)
    fake.answer(command.command_id, detail="netem loss 30% on veth0", faults=[held])

    call["thread"].join(10)
    result = call["result"]
    assert result.ok and result.detail == "netem loss 30% on veth0" and result.command_id == command.command_id
    assert result.faults[0].fault_id == "fault-1" and result.faults[0].target == driver.AgentTarget("netns", name="ns1")


@pytest.mark.parametrize(
    "send, op",
    [
        (lambda a: driver.recover(a, "fault-1"), "recover"),
        (lambda a: driver.recover_all(a, "halt"), "recover_all"),
        (lambda a: driver.list_faults(a), "list"),
    ],
)
def test_recover_recover_all_and_list_reach_the_agent(send: Any, op: str, lab: Any, agents: Any) -> None:
    fake, agent = registered(agents, lab[1])
    out: dict[str, Any] = {}
    thread = threading.Thread(target=lambda: out.update(result=send(agent)), daemon=True)
    thread.start()
    command = fake.command()
    assert command is not None and command.WhichOneof("op") == op
    fake.answer(command.command_id, ok=False, error="nothing to do")
    thread.join(10)
    assert not out["result"].ok and out["result"].error == "nothing to do"


def test_a_caller_gets_a_clear_timeout_when_no_agent_is_connected(lab: Any, agents: Any, redis_url: str) -> None:
    fake, agent = registered(agents, lab[1])
    fake.close()
    wait_until(lambda: not Agent.objects.get(pk=agent.pk).connected, what="the agent to be disconnected")

    with pytest.raises(driver.AgentTimeout, match=r"agent web-1 .* did not answer within 0.5 s; is it connected\?"):
        driver.inject(agent, "f", "NetworkChaos", "loss", {}, None, time.time() + 60, timeout=0.5)
    # Taken back, so an agent connecting later does not get it.
    assert redis.Redis.from_url(redis_url).llen(driver.commands_key(str(agent.uuid))) == 0


def test_an_agent_never_receives_a_command_of_another_tenant_and_the_refusal_is_audited(
    lab: Any, agents: Any, world: Any, redis_url: str
) -> None:
    fake, agent = registered(agents, lab[1])
    forged_id = uuid.uuid4().hex
    forged = {
        "v": 1, "command_id": forged_id, "tenant_id": world.globex.pk, "agent_id": str(agent.uuid),
        "deadline_unix_ms": int(time.time() * 1000) + 30_000, "op": "recover_all", "args": {"reason": "forged"},
    }
    client = redis.Redis.from_url(redis_url)
    client.rpush(driver.commands_key(str(agent.uuid)), json.dumps(forged))

    answer = client.blpop([driver.result_key(forged_id)], timeout=10)
    assert answer is not None
    result = driver.AgentResult.from_json(answer[1])
    assert not result.ok and "tenant" in result.error
    assert fake.command(timeout=0.5) is None
    entry = AuditEntry.objects.get(tenant=world.acme, action="agent.command.refused")
    assert entry.object_id == str(agent.pk) and entry.actor_label == "gateway:gw-a"
    assert entry.after["claimed_tenant_id"] == world.globex.pk and entry.after["command_id"] == forged_id
    assert not AuditEntry.objects.filter(tenant=world.globex, action="agent.command.refused").exists()

    # The stream is still good for the agent's own tenant.
    call = inject_in_background(agent)
    command = fake.command()
    assert command is not None
    fake.answer(command.command_id)
    call["thread"].join(10)
    assert call["result"].ok


def test_a_command_past_its_deadline_is_dropped(lab: Any, agents: Any, redis_url: str) -> None:
    fake, agent = registered(agents, lab[1])
    late = {
        "v": 1, "command_id": uuid.uuid4().hex, "tenant_id": agent.tenant_id, "agent_id": str(agent.uuid),
        "deadline_unix_ms": int(time.time() * 1000) - 1, "op": "list", "args": {},
    }
    redis.Redis.from_url(redis_url).rpush(driver.commands_key(str(agent.uuid)), json.dumps(late))
    assert fake.command(timeout=1.0) is None


def test_a_command_reaches_the_gateway_that_holds_the_stream(
    lab: Any, agents: Any, gateway: Any, certs: DevCerts, redis_url: str
) -> None:
    with running_gateway(certs, redis_url, "gw-b") as other:
        on_a, agent_a = registered(agents, lab[1], hostname="web-a", on=gateway)
        on_b, agent_b = registered(agents, lab[1], hostname="web-b", on=other)
        assert (agent_a.connected_gateway, agent_b.connected_gateway) == ("gw-a", "gw-b")

        for fake, agent in ((on_b, agent_b), (on_a, agent_a)):
            call = inject_in_background(agent, fault_id=f"fault-{agent.name}")
            command = fake.command()
            assert command is not None and command.inject.fault_id == f"fault-{agent.name}"
            fake.answer(command.command_id, detail=agent.name)
            call["thread"].join(10)
            assert call["result"].detail == agent.name
        on_b.cancel()  # before gw-b stops, so the fixture does not outlive it


def test_an_agent_that_reconnects_elsewhere_ends_its_stale_stream(
    lab: Any, agents: Any, gateway: Any, certs: DevCerts, redis_url: str
) -> None:
    old = agents(lab[1], on=gateway)
    old.hello()
    first = old.welcome()
    with running_gateway(certs, redis_url, "gw-b") as other:
        new = agents(first.credential, on=other)
        new.hello(agent_id=first.agent_id)
        new.welcome()
        agent = Agent.objects.get(uuid=first.agent_id)
        assert agent.connected_gateway == "gw-b"

        old.heartbeat()  # the stale stream learns that it was replaced, and ends
        assert old.status() == grpc.StatusCode.OK
        assert Agent.objects.get(pk=agent.pk).connected  # ...without marking the agent disconnected

        call = inject_in_background(agent)
        command = new.command()
        assert command is not None
        new.answer(command.command_id, detail="via gw-b")
        call["thread"].join(10)
        assert call["result"].detail == "via gw-b"
        new.cancel()


def test_the_caller_hears_at_once_when_the_agent_leaves_without_answering(lab: Any, agents: Any) -> None:
    fake, agent = registered(agents, lab[1])
    call = inject_in_background(agent, timeout=30)
    assert fake.command() is not None
    fake.cancel()
    call["thread"].join(10)
    assert not call["result"].ok and "disconnected before answering" in call["result"].error


# Connection state -----------------------------------------------------------------------------------


@pytest.mark.parametrize("ending", ["close", "cancel"])
def test_connected_flips_to_false_when_the_stream_ends(ending: str, lab: Any, agents: Any) -> None:
    fake, agent = registered(agents, lab[1])
    before = agent.last_heartbeat
    time.sleep(0.01)
    fake.heartbeat()
    wait_until(lambda: Agent.objects.get(pk=agent.pk).last_heartbeat > before, what="the heartbeat")

    getattr(fake, ending)()

    wait_until(lambda: not Agent.objects.get(pk=agent.pk).connected, what="connected=False")
    assert Agent.objects.get(pk=agent.pk).connected_gateway == ""


def test_stopping_the_gateway_marks_its_agents_disconnected(
    lab: Any, agents: Any, certs: DevCerts, redis_url: str
) -> None:
    with running_gateway(certs, redis_url, "gw-c") as short_lived:
        fake, agent = registered(agents, lab[1], on=short_lived)
    assert fake.status() != grpc.StatusCode.OK
    assert not Agent.objects.get(pk=agent.pk).connected


# Services and commands ------------------------------------------------------------------------------


def test_only_agent_environments_get_a_registration_token_and_only_owners_create_them(world: Any) -> None:
    env, token = services.create_environment(
        SYSTEM, world.acme, "cloud", "aws", config={"region": "us-east-1"},
        secrets={"access_key_id": "AKIAEXAMPLE", "secret_access_key": "not-a-real-secret"},
    )
    assert token is None and env.registration_prefix is None
    cluster, token = services.create_environment(
        SYSTEM, world.acme, "cluster", "kubernetes", config={"api_url": "https://k8s.test:6443", "namespaces": ["a"]}
    )
    assert token.startswith(f"cpr_{cluster.registration_prefix}_")  # for the agent DaemonSet
    env, token = services.create_environment(Actor(user=world.owner.user), world.acme, "hosts", "hosts")
    assert token.startswith(f"cpr_{env.registration_prefix}_") and token.split("_", 2)[2] not in env.registration_hash
    with pytest.raises(PermissionDenied):
        services.create_environment(Actor(user=world.operator.user), world.acme, "mine", "hosts")
    assert AuditEntry.objects.filter(tenant=world.acme, action="environment.create").count() == 3


def test_rotating_the_registration_token_retires_the_old_one(lab: Any, world: Any) -> None:
    env, old = lab
    new = services.rotate_registration_token(Actor(user=world.owner.user), env)
    assert services.environment_for_registration(old) is None
    assert services.environment_for_registration(new) == env
    assert AuditEntry.objects.filter(tenant=world.acme, action="environment.rotate_token").exists()


def test_devcerts_writes_keys_readable_by_the_owner_only(tmp_path: Path) -> None:
    call_command("devcerts", str(tmp_path / "certs"), stdout=io.StringIO())
    for name in ("server-key.pem", "agent-key.pem"):
        assert stat.S_IMODE((tmp_path / "certs" / name).stat().st_mode) == 0o600
    with pytest.raises(CommandError, match="already exist"):
        call_command("devcerts", str(tmp_path / "certs"))


def test_the_agentgateway_command_serves_until_sigterm(certs: DevCerts, tmp_path: Path) -> None:
    port = free_port()
    argv = [
        sys.executable, "manage.py", "agentgateway", "--listen", f"127.0.0.1:{port}", "--name", "cmd",
        "--cert", str(certs.server_cert), "--key", str(certs.server_key), "--client-ca", str(certs.ca),
    ]
    process = ManagedProcess(
        argv, logfile=tmp_path / "gateway.log", cwd=REPO, env=dict(os.environ, PYTHONUNBUFFERED="1"),
        ready=lambda p: "listening on port" in p.log_text(), name="agentgateway",
    )
    process.start()
    try:
        assert "(mutual TLS)" in process.log_text()
        fake = FakeAgent(port, certs, "not-a-token")
        fake.hello()
        assert fake.status() == grpc.StatusCode.UNAUTHENTICATED
        fake.cancel()
    finally:
        process.stop()
    assert process.returncode == 0, process.log_tail()


def test_agentgateway_requires_tls_unless_insecure_dev() -> None:
    with pytest.raises(CommandError, match="TLS is required"):
        call_command("agentgateway", "--listen", "127.0.0.1:0")

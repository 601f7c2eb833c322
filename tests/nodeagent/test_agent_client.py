"""The real agent (`python -m nodeagent`, a subprocess) against a minimal gateway in this process: a
real gRPC server over TLS with certificates made here. The agent's executor writes marker files, so
what is applied is visible on disk."""
from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from nodeagent.config import ConfigError, parse
from nodeagent.proto.chaosplane.agent.v1 import agent_pb2
from tests.nodeagent.agent_harness import (
    AgentProcess,
    Pki,
    TestGateway,
    inject,
    make_pki,
    markers,
    run_agent,
    wait_for,
)

TOKEN = "regtok-5f1c9a77e3b24d0c8a"
LEASE = 2.0


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture
def gateways(pki: Pki):
    started: list[TestGateway] = []

    def make(**kwargs) -> TestGateway:
        gw = TestGateway(pki, registration_token=TOKEN, **kwargs).start()
        started.append(gw)
        return gw

    yield make
    for gw in started:
        gw.stop()


@pytest.fixture
def agents(tmp_path: Path, pki: Pki):
    started: list[AgentProcess] = []

    def make(gw: TestGateway, *extra: str, mtls: bool = False) -> AgentProcess:
        args = [
            "--gateway", gw.address,
            "--ca-file", str(pki.ca),
            "--journal", str(tmp_path / "journal" / "journal.sqlite3"),
            "--state-dir", str(tmp_path / "state"),
            "--lease", str(LEASE),
            "--name", "edge-1",
            "--label", "zone=eu-west-1a",
            "--label", "example.com/tier=db",
            "--backoff-max", "0.5",
            *extra,
        ]  # fmt: skip
        if mtls:
            args += ["--cert-file", str(pki.client_cert), "--key-file", str(pki.client_key)]
        agent = AgentProcess(tmp_path, args, {"CHAOSPLANE_AGENT_TOKEN": TOKEN})
        started.append(agent)
        return agent.start()

    yield make
    for agent in started:
        agent.stop()
        assert agent.proc is None or agent.proc.poll() is not None


def test_registration_stores_the_credential_and_uses_it_next_time(gateways, agents, tmp_path: Path) -> None:
    gw = gateways(require_client_cert=True)
    agent = agents(gw, mtls=True)

    first = gw.live()
    assert first.bearer == f"Bearer {TOKEN}"  # the registration token, the first time
    assert first.peer_cert  # mutual TLS: the gateway saw our client certificate
    hello = first.hello
    assert hello.agent_id == ""
    assert (hello.name, dict(hello.labels)) == ("edge-1", {"zone": "eu-west-1a", "example.com/tier": "db"})
    assert hello.hostname and hello.version
    assert [(c.name, c.available) for c in hello.capabilities] == [("marker", True), ("netem", False)]

    state = tmp_path / "state" / "agent.json"
    wait_for(state.exists, what="the stored credential")
    stored = json.loads(state.read_text())
    credential = stored["credential"]
    assert gw.credentials[credential] == first.agent_id == stored["agent_id"]
    assert state.stat().st_mode & 0o777 == 0o600
    assert (tmp_path / "state").stat().st_mode & 0o777 == 0o700

    wait_for(lambda: len(first.heartbeats) >= 2, timeout=4, what="heartbeats")  # every heartbeat_seconds (1)
    assert agent.stop() == 0

    agent.start()
    second = gw.live(after=first.number)
    assert second.bearer == f"Bearer {credential}"  # the stored credential, though the token is still set
    assert second.hello.agent_id == first.agent_id
    assert agent.stop() == 0

    log = agent.log()
    assert "registered as agent" in log
    assert TOKEN not in log and credential not in log
    assert TOKEN not in state.read_text()
    assert gw.refused == []


def test_commands_are_executed_and_answered_one_log_line_each(gateways, agents, tmp_path: Path) -> None:
    gw = gateways()
    agent = agents(gw)
    conn = gw.live()
    applied = tmp_path / "markers"

    ok = gw.command(conn, command_id="c-inject", inject=inject("f1", expires_in=60))
    assert ok.ok and ok.detail == "marker f1"
    assert [f.fault_id for f in ok.faults] == ["f1"]
    assert markers(applied) == {"f1"}
    gw.command(conn, inject=inject("f2", expires_in=60))

    listed = gw.command(conn, list=agent_pb2.ListFaults())
    assert sorted(f.fault_id for f in listed.faults) == ["f1", "f2"]
    assert all(f.kind == "NetworkChaos" and f.target.WhichOneof("target") == "host" for f in listed.faults)

    assert gw.command(conn, recover=agent_pb2.Recover(fault_id="f1")).detail == "recovered"
    assert markers(applied) == {"f2"}
    again = gw.command(conn, recover=agent_pb2.Recover(fault_id="f1"))
    assert again.ok and again.detail == "not held: nothing to do"

    late = gw.command(conn, inject=inject("late", expires_in=-5))
    assert not late.ok and "expiry has already passed" in late.error
    refused = gw.command(conn, inject=inject("nope", expires_in=60, action="refuse"))
    assert not refused.ok and "cannot do 'refuse'" in refused.error
    stale = gw.command(conn, deadline_unix_ms=int((time.time() - 1) * 1000), inject=inject("stale", expires_in=60))
    assert not stale.ok and "deadline" in stale.error
    assert markers(applied) == {"f2"}  # none of those three was applied

    everything = gw.command(conn, recover_all=agent_pb2.RecoverAll(reason="experiment aborted"))
    assert everything.ok and everything.detail == "recovered 1 fault(s)"
    assert markers(applied) == set()

    gw.command(conn, inject=inject("f3", expires_in=60))
    assert agent.stop() == 0  # SIGTERM: a stopped agent leaves nothing applied
    assert markers(applied) == set()

    log = agent.log()
    assert "command c-inject inject fault f1 (NetworkChaos/loss): ok: marker f1" in log
    assert log.count("nodeagent.client: command ") == 10  # one line per command, with its outcome
    assert log.count(": ok: ") == 7
    assert "refused: fault late: its expiry has already passed" in log
    assert "skipped: not executed: its deadline" in log


def test_a_restarted_agent_removes_what_a_killed_one_left_before_connecting(gateways, agents, tmp_path: Path) -> None:
    gw = gateways()
    applied = tmp_path / "markers"
    gw.on_hello = lambda hello: markers(applied)  # what is applied at the moment the agent says Hello
    agent = agents(gw)
    first = gw.live()
    gw.command(first, inject=inject("k1", expires_in=120))
    gw.command(first, inject=inject("k2", expires_in=120))

    agent.kill()  # SIGKILL: no chance to clean up
    assert markers(applied) == {"k1", "k2"}

    agent.start()
    second = gw.live(after=first.number)
    assert second.seen_at_hello == set()  # removed before it connected
    assert list(second.hello.faults) == []
    assert markers(applied) == set()
    assert "recovered 2 fault(s) a previous process left: k1, k2" in agent.log()


def test_without_the_gateway_the_lease_removes_everything_and_the_agent_comes_back(
    gateways, agents, tmp_path: Path
) -> None:
    gw = gateways()
    applied = tmp_path / "markers"
    agent = agents(gw)
    first = gw.live()
    gw.command(first, inject=inject("g1", expires_in=120))
    gw.command(first, inject=inject("g2", expires_in=120))

    gw.stop()
    stopped = time.monotonic()
    time.sleep(0.3)
    assert markers(applied) == {"g1", "g2"}  # not at the first broken stream: the lease decides
    wait_for(lambda: markers(applied) == set(), timeout=LEASE + 2, what="recovery after the lease")
    assert time.monotonic() - stopped <= LEASE + 1
    assert "no contact with the gateway for over 2 s" in agent.log()

    gw.start()  # the same port
    second = gw.live(after=first.number, timeout=10)
    assert second.bearer.removeprefix("Bearer ") in gw.credentials  # its credential, not the token
    assert second.hello.agent_id == first.agent_id
    assert list(second.hello.faults) == []


def test_an_expiry_passes_with_nobody_sending_anything(gateways, agents, tmp_path: Path) -> None:
    gw = gateways(heartbeat_seconds=30)  # the agent still beats every lease/4, see below
    applied = tmp_path / "markers"
    agents(gw)
    conn = gw.live()
    gw.command(conn, inject=inject("soon", expires_in=1.5))
    gw.command(conn, inject=inject("later", expires_in=5))
    assert markers(applied) == {"soon", "later"}
    quiet = time.monotonic()

    wait_for(lambda: markers(applied) == {"later"}, timeout=3, what="the first expiry")
    # Longer than the lease with no message from the gateway: the open stream still counts as
    # contact; and the agent's traffic keeps it open on a server with gRPC's default options (which
    # would answer bare keepalive pings on an idle stream with GOAWAY too_many_pings).
    time.sleep(max(0.0, quiet + 2 * LEASE - time.monotonic()))
    assert markers(applied) == {"later"}
    wait_for(lambda: markers(applied) == set(), timeout=3, what="the second expiry")

    assert len(gw.connections) == 1 and not conn.closed.is_set()  # one stream throughout


# Flags ------------------------------------------------------------------------------------------------


def test_bad_settings_stop_the_agent_with_the_flag_named(tmp_path: Path, pki: Pki) -> None:
    no_ca = run_agent(["--gateway", "127.0.0.1:4443"], env={"CHAOSPLANE_AGENT_TOKEN": TOKEN})
    assert no_ca.returncode == 2
    assert "--ca-file: required" in no_ca.stderr and "--insecure-dev" in no_ca.stderr

    no_token = run_agent(["--gateway", "127.0.0.1:4443", "--ca-file", str(pki.ca), "--state-dir", str(tmp_path)])
    assert no_token.returncode == 2 and "--token: required for the first registration" in no_token.stderr

    env = {"CHAOSPLANE_AGENT_GATEWAY": "127.0.0.1:4443", "CHAOSPLANE_AGENT_TOKEN": TOKEN}
    ca = ["--ca-file", str(pki.ca)]
    cases = [
        (["--label", "no equals"], env, "--label: 'no equals' is not KEY=VALUE"),
        (["--label", "_bad=x"], env, "--label: '_bad' is not a label key"),
        (["--label", "zone=a b"], env, "--label: zone='a b'"),
        (["--lease", "soon"], env, "--lease: 'soon' is not a number of seconds"),
        (["--lease", "0"], env, "--lease: must be between"),
        ([], {**env, "CHAOSPLANE_AGENT_LEASE": "-1"}, "--lease (from $CHAOSPLANE_AGENT_LEASE): must be between"),
        ([], {**env, "CHAOSPLANE_AGENT_GATEWAY": "gateway"}, "(from $CHAOSPLANE_AGENT_GATEWAY): 'gateway' is not HOST"),
        (["--gateway", "h:99999"], env, "--gateway: 'h:99999' is not HOST:PORT"),
        (["--cert-file", str(pki.client_cert)], env, "--cert-file and --key-file: give both"),
        (["--key-file", "/nonexistent.pem"], env, "--key-file: /nonexistent.pem: no such file"),
        (["--insecure-dev"], env, "--insecure-dev: cannot be combined"),
        (["--name", "a b"], env, "--name: 'a b' is not a name"),
        (["--token", "short"], env, "--token: not a token"),
        (["--frobnicate"], env, "unrecognized arguments: --frobnicate"),
    ]
    for argv, environ, message in cases:
        with pytest.raises(ConfigError) as caught:
            parse([*ca, *argv], environ)
        assert message in str(caught.value), (argv, str(caught.value))
        assert TOKEN not in str(caught.value)

    config = parse(["--insecure-dev", "--label", "a=1"], {**env, "CHAOSPLANE_AGENT_LABELS": "a=0,b=2"})
    assert config.insecure_dev and config.ca_file is None
    assert config.labels == {"a": "1", "b": "2"} and config.lease == 30.0
    assert str(config.journal) == "/var/lib/chaosplane-agent/journal.sqlite3"
    assert TOKEN not in repr(config)
    with pytest.raises(ConfigError, match="--ca-file: required"):
        parse([], {**env, "CHAOSPLANE_AGENT_INSECURE_DEV": "1"})  # only the flag, explicitly

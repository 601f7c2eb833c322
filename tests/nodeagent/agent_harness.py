"""Helpers for the agent's tests: a throwaway PKI, a minimal gateway (a real gRPC server over TLS),
an executor that applies 'faults' as marker files, and the real agent as a subprocess."""
from __future__ import annotations

import datetime
import ipaddress
import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent import futures
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from nodeagent.orders import FaultOrder, Refused
from nodeagent.proto.chaosplane.agent.v1 import agent_pb2, agent_pb2_grpc

REPO = Path(__file__).resolve().parents[2]


def wait_for(predicate: Callable[[], Any], timeout: float = 5.0, interval: float = 0.02, what: str = "") -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what or predicate}")
        time.sleep(interval)


# Executor ---------------------------------------------------------------------------------------------


class MarkerExecutor:
    """Applies a fault by writing DIR/<fault_id> and recovers it by removing the file. Action "refuse"
    is refused. `on_inject(order)` runs first (to look at the journal at that moment)."""

    def __init__(self, directory: str | os.PathLike[str] | None = None) -> None:
        self.dir = Path(directory or os.environ["CHAOSPLANE_TEST_MARKERS"])
        self.dir.mkdir(parents=True, exist_ok=True)
        self.on_inject: Callable[[FaultOrder], None] | None = None
        self.calls: list[tuple[str, str]] = []
        self.lock = threading.Lock()

    def inject(self, order: FaultOrder) -> str:
        with self.lock:
            self.calls.append(("inject", order.fault_id))
        if self.on_inject is not None:
            self.on_inject(order)
        if order.action == "refuse":
            raise Refused("this host cannot do 'refuse'")
        (self.dir / order.fault_id).write_text(order.to_json())
        return f"marker {order.fault_id}"

    def recover(self, order: FaultOrder) -> None:
        with self.lock:
            self.calls.append(("recover", order.fault_id))
        (self.dir / order.fault_id).unlink(missing_ok=True)

    def capabilities(self) -> list[tuple[str, bool, str]]:
        return [("marker", True, "files in a folder"), ("netem", False, "not in tests")]

    def markers(self) -> set[str]:
        return {p.name for p in self.dir.iterdir()}


def markers(directory: Path) -> set[str]:
    return {p.name for p in directory.iterdir()} if directory.exists() else set()


# PKI --------------------------------------------------------------------------------------------------


@dataclass
class Pki:
    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path

    def bytes(self, name: str) -> bytes:
        return getattr(self, name).read_bytes()


def _key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _pem_key(key: ec.EllipticCurvePrivateKey) -> bytes:
    pkcs8 = serialization.PrivateFormat.PKCS8
    return key.private_bytes(serialization.Encoding.PEM, pkcs8, serialization.NoEncryption())


def make_pki(directory: Path) -> Pki:
    """A CA, a server certificate for localhost/127.0.0.1 and a client certificate, as PEM files."""
    directory.mkdir(parents=True, exist_ok=True)
    now = datetime.datetime.now(datetime.UTC)
    ca_key = _key()
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "chaosplane test CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True
        )
        .sign(ca_key, hashes.SHA256())
    )

    def leaf(cn: str, usage: x509.ObjectIdentifier, sans: list[x509.GeneralName]) -> tuple[bytes, bytes]:
        key = _key()
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)]))
            .issuer_name(ca_name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        )
        if sans:
            builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
        cert = builder.sign(ca_key, hashes.SHA256())
        return cert.public_bytes(serialization.Encoding.PEM), _pem_key(key)

    server = leaf(
        "localhost",
        ExtendedKeyUsageOID.SERVER_AUTH,
        [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))],
    )
    client = leaf("agent-1", ExtendedKeyUsageOID.CLIENT_AUTH, [x509.DNSName("agent-1")])
    pki = Pki(*(directory / n for n in ("ca.pem", "server.pem", "server.key", "client.pem", "client.key")))
    pki.ca.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    pki.server_cert.write_bytes(server[0])
    pki.server_key.write_bytes(server[1])
    pki.client_cert.write_bytes(client[0])
    pki.client_key.write_bytes(client[1])
    return pki


# Gateway ----------------------------------------------------------------------------------------------


@dataclass
class Connection:
    number: int
    bearer: str
    hello: agent_pb2.Hello
    agent_id: str
    peer_cert: bool
    outbox: queue.Queue = field(default_factory=queue.Queue)
    closed: threading.Event = field(default_factory=threading.Event)
    heartbeats: list[agent_pb2.Heartbeat] = field(default_factory=list)
    results: dict[str, agent_pb2.CommandResult] = field(default_factory=dict)
    seen_at_hello: Any = None  # what on_hello returned


class TestGateway(agent_pb2_grpc.AgentGatewayServicer):
    """The gateway's side of the contract, minimally: registration with a token, a credential per
    agent, Welcome, and commands sent from the test. Server options are gRPC's defaults."""

    __test__ = False

    def __init__(
        self,
        pki: Pki,
        *,
        registration_token: str,
        require_client_cert: bool = False,
        lease_seconds: int = 0,
        heartbeat_seconds: int = 1,
    ) -> None:
        self.pki = pki
        self.registration_token = registration_token
        self.require_client_cert = require_client_cert
        self.lease_seconds = lease_seconds
        self.heartbeat_seconds = heartbeat_seconds
        self.credentials: dict[str, str] = {}  # credential -> agent id
        self.connections: list[Connection] = []
        self.refused: list[str] = []  # bearers refused
        self.on_hello: Callable[[agent_pb2.Hello], Any] | None = None
        self.lock = threading.Lock()
        self.server: grpc.Server | None = None
        self.port = 0
        self._stopping = threading.Event()

    # Server life ------------------------------------------------------------------------------------

    def start(self) -> TestGateway:
        self._stopping.clear()
        server = grpc.server(futures.ThreadPoolExecutor(max_workers=8))
        agent_pb2_grpc.add_AgentGatewayServicer_to_server(self, server)
        creds = grpc.ssl_server_credentials(
            [(self.pki.bytes("server_key"), self.pki.bytes("server_cert"))],
            root_certificates=self.pki.bytes("ca") if self.require_client_cert else None,
            require_client_auth=self.require_client_cert,
        )
        port = server.add_secure_port(f"127.0.0.1:{self.port}", creds)
        assert port, f"could not bind 127.0.0.1:{self.port}"
        self.port = port
        server.start()
        self.server = server
        return self

    def stop(self) -> None:
        self._stopping.set()
        if self.server is not None:
            self.server.stop(grace=None).wait(5)
            self.server = None
        for conn in self.connections:
            conn.closed.set()

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    # The RPC ----------------------------------------------------------------------------------------

    def Connect(self, request_iterator: Iterator[agent_pb2.AgentMessage], context: grpc.ServicerContext):
        bearer = dict(context.invocation_metadata()).get("authorization", "")
        token = bearer.removeprefix("Bearer ")
        with self.lock:
            known = self.credentials.get(token)
        if token != self.registration_token and known is None:
            self.refused.append(bearer)
            context.abort(grpc.StatusCode.UNAUTHENTICATED, "unknown token")
        first = next(request_iterator)
        if first.WhichOneof("body") != "hello":
            context.abort(grpc.StatusCode.FAILED_PRECONDITION, "Hello first")
        credential = ""
        if known is None:
            agent_id = f"agent-{uuid.uuid4().hex[:8]}"
            credential = f"cred-{uuid.uuid4().hex}"
            with self.lock:
                self.credentials[credential] = agent_id
        else:
            agent_id = known
        conn = Connection(
            number=len(self.connections) + 1,
            bearer=bearer,
            hello=first.hello,
            agent_id=agent_id,
            peer_cert=bool(context.auth_context().get("x509_pem_cert")),
        )
        if self.on_hello is not None:
            conn.seen_at_hello = self.on_hello(first.hello)
        with self.lock:
            self.connections.append(conn)

        def read() -> None:
            try:
                for msg in request_iterator:
                    body = msg.WhichOneof("body")
                    if body == "heartbeat":
                        conn.heartbeats.append(msg.heartbeat)
                    elif body == "result":
                        conn.results[msg.result.command_id] = msg.result
            except grpc.RpcError:
                pass
            finally:
                conn.closed.set()

        threading.Thread(target=read, daemon=True).start()
        yield agent_pb2.GatewayMessage(
            welcome=agent_pb2.Welcome(
                agent_id=agent_id,
                credential=credential,
                lease_seconds=self.lease_seconds,
                heartbeat_seconds=self.heartbeat_seconds,
            )
        )
        while not conn.closed.is_set() and not self._stopping.is_set() and context.is_active():
            try:
                command = conn.outbox.get(timeout=0.05)
            except queue.Empty:
                continue
            yield agent_pb2.GatewayMessage(command=command)

    # For tests --------------------------------------------------------------------------------------

    def live(self, timeout: float = 10.0, after: int = 0) -> Connection:
        """The newest open connection numbered above `after`, waiting for it."""

        def find() -> Connection | None:
            with self.lock:
                for conn in reversed(self.connections):
                    if conn.number > after and not conn.closed.is_set():
                        return conn
            return None

        return wait_for(find, timeout, what="an agent connection")

    def command(self, conn: Connection, timeout: float = 5.0, **op: Any) -> agent_pb2.CommandResult:
        command_id = op.pop("command_id", None) or uuid.uuid4().hex[:12]
        conn.outbox.put(agent_pb2.Command(command_id=command_id, **op))
        return wait_for(lambda: conn.results.get(command_id), timeout, what=f"the result of {command_id}")


def inject(fault_id: str, expires_in: float, action: str = "loss", params: dict | None = None) -> agent_pb2.Inject:
    return agent_pb2.Inject(
        fault_id=fault_id,
        kind="NetworkChaos",
        action=action,
        params_json=json.dumps(params or {"loss": {"loss": "30"}}),
        target=agent_pb2.Target(host=agent_pb2.HostTarget()),
        expires_at_unix_ms=int((time.time() + expires_in) * 1000),
    )


# The agent as a process -------------------------------------------------------------------------------


class AgentProcess:
    """`python -m nodeagent` with the marker executor; stderr to a log file."""

    def __init__(self, tmp: Path, args: list[str], env: dict[str, str]) -> None:
        self.tmp = tmp
        self.args = args
        self.env = env
        self.markers = tmp / "markers"
        self.log_path = tmp / "agent.log"
        self.proc: subprocess.Popen | None = None
        self.runs = 0

    def start(self) -> AgentProcess:
        assert self.proc is None or self.proc.poll() is not None, "already running"
        self.runs += 1
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("CHAOSPLANE_")},
            "PYTHONPATH": str(REPO),
            "CHAOSPLANE_AGENT_EXECUTOR": "tests.nodeagent.agent_harness:MarkerExecutor",
            "CHAOSPLANE_TEST_MARKERS": str(self.markers),
            **self.env,
        }
        with open(self.log_path, "a") as log:
            log.write(f"--- run {self.runs}\n")
            log.flush()
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "nodeagent", *self.args],
                cwd=self.tmp,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        return self

    def log(self) -> str:
        return self.log_path.read_text() if self.log_path.exists() else ""

    def kill(self) -> None:
        """SIGKILL: no cleanup at all."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self, timeout: float = 10.0) -> int | None:
        """SIGTERM, then SIGKILL if it does not exit in time. Returns the exit status."""
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else None
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)
            raise AssertionError(f"the agent did not stop on SIGTERM within {timeout} s:\n{self.log()}") from None


def run_agent(args: list[str], env: dict[str, str] | None = None, timeout: float = 20) -> subprocess.CompletedProcess:
    """Run `python -m nodeagent` to completion (for flag errors)."""
    full_env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("CHAOSPLANE_")},
        "PYTHONPATH": str(REPO),
        **(env or {}),
    }
    return subprocess.run(
        [sys.executable, "-m", "nodeagent", *args],
        env=full_env,
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )

"""A real gateway on a free port and a real gRPC client that plays the node agent, for gateway tests.

The client speaks the wire contract (nodeagent.proto) over mutual TLS with the certificates of
`manage.py devcerts`; it is not the agent daemon, so these tests hold the gateway to the contract.
"""
from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import grpc

from devtools.servers import free_port
from injector.gateway import AgentGateway, TlsFiles
from injector.management.commands.devcerts import DevCerts
from nodeagent.proto.chaosplane.agent.v1 import agent_pb2, agent_pb2_grpc

WAIT = 10.0  # seconds: generous, so a slow CI machine does not fail a test that would pass


@contextmanager
def running_gateway(
    certs: DevCerts, redis_url: str, name: str, mutual: bool = True, port: int | None = None
) -> Iterator[AgentGateway]:
    tls = TlsFiles(certs.server_cert, certs.server_key, certs.ca if mutual else None)
    gateway = AgentGateway(f"127.0.0.1:{port or free_port()}", tls=tls, redis_url=redis_url, name=name, max_streams=16)
    gateway.start()
    try:
        yield gateway
    finally:
        gateway.stop(grace=1.0)


def wait_until(predicate: Callable[[], Any], timeout: float = WAIT, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


class FakeAgent:
    """One agent stream: send AgentMessages, read GatewayMessages, end it as an agent would."""

    def __init__(
        self, gateway: AgentGateway | int, certs: DevCerts, token: str | None, client_cert: bool = True
    ) -> None:
        key = certs.agent_key.read_bytes() if client_cert else None
        chain = certs.agent_cert.read_bytes() if client_cert else None
        credentials = grpc.ssl_channel_credentials(certs.ca.read_bytes(), key, chain)
        port = gateway if isinstance(gateway, int) else gateway.port
        self.channel = grpc.secure_channel(f"127.0.0.1:{port}", credentials)
        self.outgoing: queue.Queue[agent_pb2.AgentMessage | None] = queue.Queue()
        self.incoming: queue.Queue[agent_pb2.GatewayMessage | None] = queue.Queue()
        self.error: grpc.RpcError | None = None
        metadata = [("authorization", f"Bearer {token}")] if token is not None else []
        self.call = agent_pb2_grpc.AgentGatewayStub(self.channel).Connect(self._requests(), metadata=metadata)
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _requests(self) -> Iterator[agent_pb2.AgentMessage]:
        while (message := self.outgoing.get()) is not None:
            yield message

    def _read(self) -> None:
        try:
            for message in self.call:
                self.incoming.put(message)
        except grpc.RpcError as error:
            self.error = error
        finally:
            self.incoming.put(None)

    # Sending ----------------------------------------------------------------------------------------

    def hello(self, name: str = "", hostname: str = "web-1", agent_id: str = "", **extra: Any) -> None:
        hello = agent_pb2.Hello(agent_id=agent_id, name=name, hostname=hostname, version="0.1.0", **extra)
        self.outgoing.put(agent_pb2.AgentMessage(hello=hello))

    def heartbeat(self, active_faults: int = 0) -> None:
        beat = agent_pb2.Heartbeat(sent_at_unix_ms=int(time.time() * 1000), active_faults=active_faults)
        self.outgoing.put(agent_pb2.AgentMessage(heartbeat=beat))

    def answer(self, command_id: str, ok: bool = True, error: str = "", detail: str = "", faults: Any = ()) -> None:
        result = agent_pb2.CommandResult(command_id=command_id, ok=ok, error=error, detail=detail, faults=faults)
        self.outgoing.put(agent_pb2.AgentMessage(result=result))

    # Receiving --------------------------------------------------------------------------------------

    def receive(self, timeout: float = WAIT) -> agent_pb2.GatewayMessage | None:
        """The next message, or None when the stream ended or nothing came within `timeout`."""
        try:
            return self.incoming.get(timeout=timeout)
        except queue.Empty:
            return None

    def welcome(self, timeout: float = WAIT) -> agent_pb2.Welcome:
        message = self.receive(timeout)
        assert message is not None and message.WhichOneof("body") == "welcome", (message, self.error)
        return message.welcome

    def command(self, timeout: float = WAIT) -> agent_pb2.Command | None:
        message = self.receive(timeout)
        return message.command if message is not None else None

    def status(self, timeout: float = WAIT) -> grpc.StatusCode:
        """How the stream ended (waits for the end)."""
        self.reader.join(timeout)
        assert not self.reader.is_alive(), "the stream did not end"
        return self.error.code() if self.error is not None else grpc.StatusCode.OK

    # Ending -----------------------------------------------------------------------------------------

    def close(self) -> None:
        """End the stream as an agent that shuts down cleanly does (half-close), then the channel."""
        self.outgoing.put(None)
        self.reader.join(WAIT)
        self.call.cancel()
        self.channel.close()

    def cancel(self) -> None:
        """Drop the stream without a goodbye (an agent killed, a network cut)."""
        self.call.cancel()
        self.reader.join(WAIT)
        self.outgoing.put(None)
        self.channel.close()

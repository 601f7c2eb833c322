"""AgentGateway.Connect: one long-lived stream per agent.

The servicer translates: Hello in -> admit the agent (services) -> Welcome out; then commands from
the relay go out and the agent's heartbeats and results come in. `AgentStream` holds one stream's
state: the queue of messages to send, the commands sent and not yet answered, and its end.
"""
from __future__ import annotations

import logging
import queue
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import grpc
from django.core.exceptions import ValidationError
from django.db import connection

from injector import services
from injector.models import Agent
from nodeagent.proto.chaosplane.agent.v1 import agent_pb2, agent_pb2_grpc
from tenants.actors import Actor

from . import convert
from .auth import Principal, principal_of
from .relay import Relay, Subscriber

log = logging.getLogger(__name__)

_END = object()  # put in a stream's outbox to end its response iterator


class AgentGatewayServicer(agent_pb2_grpc.AgentGatewayServicer):
    def __init__(self, relay: Relay, gateway: str, lease_seconds: int = 60, heartbeat_seconds: int = 10) -> None:
        self.relay = relay
        self.gateway = gateway
        self.lease_seconds = lease_seconds
        self.heartbeat_seconds = heartbeat_seconds
        self.readers: set[threading.Thread] = set()  # live reader threads, for a clean stop
        self.readers_lock = threading.Lock()

    def wait_for_readers(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.readers_lock:
                if not self.readers:
                    return True
            time.sleep(0.02)
        return False

    def Connect(self, request_iterator: Iterator[agent_pb2.AgentMessage], context: Any) -> Iterator[Any]:  # noqa: N802
        principal = principal_of(context)
        first = next(request_iterator, None)
        if first is None or first.WhichOneof("body") != "hello":
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "the first message on the stream must be Hello")
        try:
            agent, credential = admit(principal, first.hello, self.gateway)
            session = services.mark_connected(agent, self.gateway)
        except ValidationError as error:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "; ".join(error.messages))
        except PermissionError as error:
            context.abort(grpc.StatusCode.PERMISSION_DENIED, str(error))
        finally:
            connection.close()  # one connection per stream thread would exhaust the database
        log.info("gateway %s: agent %s (%s) connected from %s", self.gateway, agent.name, agent.uuid, context.peer())
        stream = AgentStream(self, agent, session, context)
        stream.start(request_iterator)
        welcome = convert.welcome(str(agent.uuid), credential, self.lease_seconds, self.heartbeat_seconds)
        return stream.responses(welcome)


def admit(principal: Principal, hello: agent_pb2.Hello, gateway: str) -> tuple[Agent, str]:
    """The agent behind this stream and its new credential ("" unless it registered just now)."""
    facts = convert.facts_from_hello(hello)
    if principal.is_registration:
        actor = Actor.system_actor(f"gateway:{gateway}")
        return services.register_agent(actor, principal.environment, facts)
    agent = principal.agent
    if hello.agent_id and hello.agent_id != str(agent.uuid):
        raise PermissionError("this credential belongs to another agent than the Hello names")
    return services.update_agent_facts(agent, facts), ""


class AgentStream:
    """One agent's stream: reads the agent's messages on a thread of its own while the RPC's thread
    writes the outbox to the agent; ends once, whichever side ends first."""

    def __init__(self, servicer: AgentGatewayServicer, agent: Agent, session: uuid.UUID, context: Any) -> None:
        self.servicer, self.relay, self.agent, self.session, self.context = (
            servicer, servicer.relay, agent, session, context
        )
        self.outbox: queue.Queue[Any] = queue.Queue()
        self.in_flight: dict[str, float] = {}  # command id -> when sent; results for others are ignored
        self.lock = threading.Lock()
        self.closed = False
        self.subscriber = Subscriber(str(agent.uuid), agent.tenant_id, self.deliver, self.refuse)

    def start(self, requests: Iterator[agent_pb2.AgentMessage]) -> None:
        # The RPC ended (client gone, cancelled, server stopping): end the response iterator, whose
        # thread then closes the stream. gRPC runs this callback on its polling thread: no database here.
        self.context.add_callback(lambda: self.outbox.put(_END))
        reader = threading.Thread(target=self.read, args=(requests,), name=f"agent-{self.agent.uuid}", daemon=True)
        with self.servicer.readers_lock:
            self.servicer.readers.add(reader)
        reader.start()
        self.relay.attach(self.subscriber)

    def responses(self, welcome: agent_pb2.GatewayMessage) -> Iterator[Any]:
        try:
            yield welcome
            while True:
                message = self.outbox.get()
                if message is _END:
                    return
                yield message
        finally:
            self.close()

    def deliver(self, envelope: dict[str, Any]) -> bool:
        """Called by the relay's dispatcher: queue one checked command for the agent."""
        command_id = str(envelope["command_id"])
        try:
            message = convert.command_from_envelope(envelope)
        except convert.BadEnvelope as error:
            self.relay.push_result(convert.error_result(command_id, str(error)))
            return True
        with self.lock:
            if self.closed:
                return False
            self.in_flight[command_id] = time.monotonic()
            self.outbox.put(message)
        return True

    def refuse(self, envelope: dict[str, Any], reason: str) -> None:
        try:
            services.record_refused_command(self.servicer.gateway, self.agent, envelope, reason)
        finally:
            connection.close()  # one connection per stream thread would exhaust the database

    def read(self, requests: Iterator[agent_pb2.AgentMessage]) -> None:
        try:
            for message in requests:
                body = message.WhichOneof("body")
                if body == "heartbeat":
                    current = services.record_heartbeat(self.agent.pk, self.session)
                    connection.close()  # one connection per stream thread would exhaust the database
                    if not current:
                        # A newer stream of this agent (maybe on another gateway) took over: this
                        # one is stale, and must stop popping the agent's commands.
                        log.info("gateway: agent %s reconnected elsewhere; ending the old stream", self.agent.uuid)
                        return
                elif body == "result":
                    self.answer(message.result)
                else:
                    log.info("gateway: agent %s sent %s mid-stream; ignored", self.agent.uuid, body)
        except grpc.RpcError:
            pass  # the stream ended under us (client gone, server stopping): close() says so
        except Exception:
            log.exception("gateway: reading agent %s failed", self.agent.uuid)
        finally:
            self.close()
            connection.close()  # this thread ends: do not leave its connection to the GC
            with self.servicer.readers_lock:
                self.servicer.readers.discard(threading.current_thread())

    def answer(self, result: agent_pb2.CommandResult) -> None:
        with self.lock:
            known = self.in_flight.pop(result.command_id, None) is not None
        if not known:
            # Only answers to commands sent on this stream: an agent cannot fake another's result.
            log.warning("gateway: agent %s answered unknown command %s", self.agent.uuid, result.command_id)
            return
        self.relay.push_result(convert.result_from_proto(result))

    def close(self) -> None:
        with self.lock:
            if self.closed:
                return
            self.closed = True
            unanswered, self.in_flight = list(self.in_flight), {}
        self.outbox.put(_END)
        self.relay.detach(self.subscriber)
        for command_id in unanswered:
            self.relay.push_result(
                convert.error_result(command_id, f"agent {self.agent.name} disconnected before answering")
            )
        try:
            services.mark_disconnected(self.agent.pk, self.session)
        except Exception:
            log.exception("gateway: could not mark agent %s disconnected", self.agent.uuid)
        finally:
            connection.close()  # one connection per stream thread would exhaust the database
        log.info("gateway %s: agent %s (%s) disconnected", self.servicer.gateway, self.agent.name, self.agent.uuid)

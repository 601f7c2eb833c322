"""Wire <-> domain: the one place that turns chaosplane.agent.v1 messages into nodeagent.orders types
and back. Times on the wire are unix milliseconds; in the domain, unix seconds (float)."""
from __future__ import annotations

import json
from collections.abc import Iterable, Mapping

from nodeagent.orders import FaultOrder, Refused, Target
from nodeagent.proto.chaosplane.agent.v1 import agent_pb2
from nodeagent.runtime import Held


def to_ms(seconds: float) -> int:
    return int(round(seconds * 1000))


def to_seconds(ms: int) -> float:
    return ms / 1000.0


# Targets ----------------------------------------------------------------------------------------------


def target_from_proto(msg: agent_pb2.Target) -> Target:
    which = msg.WhichOneof("target")
    if which is None or which == "host":
        return Target(kind="host")
    if which == "process":
        if bool(msg.process.pid) == bool(msg.process.name):
            raise Refused("a process target needs either a PID or a name")
        return Target(kind="process", pid=msg.process.pid or None, name=msg.process.name or None)
    if which == "netns":
        if bool(msg.netns.pid) == bool(msg.netns.name):
            raise Refused("a network namespace target needs either a name or a PID")
        return Target(kind="netns", pid=msg.netns.pid or None, name=msg.netns.name or None)
    if which == "container":
        if not msg.container.id:
            raise Refused("a container target needs a container id")
        return Target(kind="container", container_id=msg.container.id, runtime=msg.container.runtime or None)
    raise Refused(f"unknown target {which}")  # pragma: no cover - the oneof has no other members


def target_to_proto(target: Target) -> agent_pb2.Target:
    if target.kind == "process":
        return agent_pb2.Target(process=agent_pb2.ProcessTarget(pid=target.pid or 0, name=target.name or ""))
    if target.kind == "netns":
        return agent_pb2.Target(netns=agent_pb2.NetnsTarget(pid=target.pid or 0, name=target.name or ""))
    if target.kind == "container":
        return agent_pb2.Target(
            container=agent_pb2.ContainerTarget(id=target.container_id or "", runtime=target.runtime or "")
        )
    return agent_pb2.Target(host=agent_pb2.HostTarget())


# Faults -----------------------------------------------------------------------------------------------


def order_from_inject(msg: agent_pb2.Inject) -> FaultOrder:
    """Raises Refused when the message cannot be a fault order (the reason goes back to the caller)."""
    if not msg.fault_id:
        raise Refused("inject: fault_id is empty")
    if not msg.kind or not msg.action:
        raise Refused(f"inject {msg.fault_id}: kind and action are required")
    if not msg.expires_at_unix_ms:
        raise Refused(f"inject {msg.fault_id}: every fault needs an absolute expiry (expires_at_unix_ms)")
    try:
        params = json.loads(msg.params_json) if msg.params_json else {}
    except ValueError as exc:
        raise Refused(f"inject {msg.fault_id}: params_json is not JSON ({exc})") from None
    if not isinstance(params, dict):
        raise Refused(f"inject {msg.fault_id}: params_json must be a JSON object")
    return FaultOrder(
        fault_id=msg.fault_id,
        kind=msg.kind,
        action=msg.action,
        params=params,
        target=target_from_proto(msg.target),
        expires_at=to_seconds(msg.expires_at_unix_ms),
    )


def inject_from_order(order: FaultOrder) -> agent_pb2.Inject:
    return agent_pb2.Inject(
        fault_id=order.fault_id,
        kind=order.kind,
        action=order.action,
        params_json=json.dumps(order.params, sort_keys=True),
        target=target_to_proto(order.target),
        expires_at_unix_ms=to_ms(order.expires_at),
    )


def held_fault(held: Held | FaultOrder) -> agent_pb2.HeldFault:
    order = held.order if isinstance(held, Held) else held
    return agent_pb2.HeldFault(
        fault_id=order.fault_id,
        kind=order.kind,
        action=order.action,
        expires_at_unix_ms=to_ms(order.expires_at),
        target=target_to_proto(order.target),
    )


# Agent -> gateway -------------------------------------------------------------------------------------


def hello(
    *,
    agent_id: str,
    name: str,
    hostname: str,
    labels: Mapping[str, str],
    version: str,
    capabilities: Iterable[tuple[str, bool, str]],
    held: Iterable[Held],
) -> agent_pb2.AgentMessage:
    return agent_pb2.AgentMessage(
        hello=agent_pb2.Hello(
            agent_id=agent_id,
            name=name,
            hostname=hostname,
            labels=dict(labels),
            version=version,
            capabilities=[agent_pb2.Capability(name=n, available=a, detail=d) for n, a, d in capabilities],
            faults=[held_fault(h) for h in held],
        )
    )


def heartbeat(now: float, active_faults: int) -> agent_pb2.AgentMessage:
    return agent_pb2.AgentMessage(
        heartbeat=agent_pb2.Heartbeat(sent_at_unix_ms=to_ms(now), active_faults=active_faults)
    )


def result(
    command_id: str, *, ok: bool, error: str = "", detail: str = "", held: Iterable[Held | FaultOrder] = ()
) -> agent_pb2.AgentMessage:
    return agent_pb2.AgentMessage(
        result=agent_pb2.CommandResult(
            command_id=command_id, ok=ok, error=error, detail=detail, faults=[held_fault(h) for h in held]
        )
    )

"""Proto <-> domain, in one place: Hello to AgentFacts, Redis envelopes to Commands, CommandResults
to the JSON results the workers read (injector.drivers.agent.AgentResult)."""
from __future__ import annotations

import json
from dataclasses import asdict
from typing import Any

from injector.drivers.agent import AgentResult, AgentTarget, HeldFault
from injector.services import AgentFacts
from nodeagent.proto.chaosplane.agent.v1 import agent_pb2


class BadEnvelope(ValueError):
    """A command envelope that cannot be turned into a Command; the message says what is wrong."""


def facts_from_hello(hello: agent_pb2.Hello) -> AgentFacts:
    return AgentFacts(
        name=hello.name,
        hostname=hello.hostname,
        labels=dict(hello.labels),
        capabilities={c.name: {"available": c.available, "detail": c.detail} for c in hello.capabilities},
        version=hello.version,
    )


def welcome(agent_id: str, credential: str, lease_seconds: int, heartbeat_seconds: int) -> agent_pb2.GatewayMessage:
    return agent_pb2.GatewayMessage(
        welcome=agent_pb2.Welcome(
            agent_id=agent_id,
            credential=credential,
            lease_seconds=lease_seconds,
            heartbeat_seconds=heartbeat_seconds,
        )
    )


def target_to_proto(target: dict[str, Any] | None) -> agent_pb2.Target:
    t = AgentTarget(**(target or {}))
    if t.kind == "host":
        return agent_pb2.Target(host=agent_pb2.HostTarget())
    if t.kind == "process":
        return agent_pb2.Target(process=agent_pb2.ProcessTarget(pid=t.pid or 0, name=t.name or ""))
    if t.kind == "netns":
        return agent_pb2.Target(netns=agent_pb2.NetnsTarget(name=t.name or "", pid=t.pid or 0))
    if t.kind == "container":
        return agent_pb2.Target(container=agent_pb2.ContainerTarget(id=t.container_id or "", runtime=t.runtime or ""))
    raise BadEnvelope(f"unknown target kind {t.kind!r}")


def target_from_proto(target: agent_pb2.Target) -> AgentTarget:
    which = target.WhichOneof("target")
    if which == "process":
        return AgentTarget("process", pid=target.process.pid or None, name=target.process.name or None)
    if which == "netns":
        return AgentTarget("netns", pid=target.netns.pid or None, name=target.netns.name or None)
    if which == "container":
        c = target.container
        return AgentTarget("container", container_id=c.id or None, runtime=c.runtime or None)
    return AgentTarget("host")


def command_from_envelope(envelope: dict[str, Any]) -> agent_pb2.GatewayMessage:
    """The Command a worker's envelope asks for (the envelope's tenant and agent are checked before)."""
    try:
        op, args = envelope["op"], envelope.get("args") or {}
        command = agent_pb2.Command(
            command_id=str(envelope["command_id"]), deadline_unix_ms=int(envelope["deadline_unix_ms"])
        )
        if op == "inject":
            command.inject.CopyFrom(
                agent_pb2.Inject(
                    fault_id=args["fault_id"],
                    kind=args["kind"],
                    action=args["action"],
                    # The catalogue's canonical JSON: sorted keys, no spaces.
                    params_json=json.dumps(args.get("params") or {}, sort_keys=True, separators=(",", ":")),
                    target=target_to_proto(args.get("target")),
                    expires_at_unix_ms=int(args["expires_at_unix_ms"]),
                )
            )
        elif op == "recover":
            command.recover.CopyFrom(agent_pb2.Recover(fault_id=args["fault_id"]))
        elif op == "recover_all":
            command.recover_all.CopyFrom(agent_pb2.RecoverAll(reason=args.get("reason", "")))
        elif op == "list":
            command.list.CopyFrom(agent_pb2.ListFaults())
        else:
            raise BadEnvelope(f"unknown op {op!r}")
    except (KeyError, TypeError, ValueError) as error:
        if isinstance(error, BadEnvelope):
            raise
        raise BadEnvelope(f"malformed command envelope: {error!r}") from None
    return agent_pb2.GatewayMessage(command=command)


def result_from_proto(result: agent_pb2.CommandResult) -> AgentResult:
    faults = tuple(
        HeldFault(f.fault_id, f.kind, f.action, f.expires_at_unix_ms, target_from_proto(f.target))
        for f in result.faults
    )
    return AgentResult(result.command_id, result.ok, result.error, result.detail, faults)


def error_result(command_id: str, error: str) -> AgentResult:
    return AgentResult(command_id=command_id, ok=False, error=error)


def held_faults(hello: agent_pb2.Hello) -> list[dict[str, Any]]:
    """What a reconnecting agent says it still holds (for logs; the run side reconciles)."""
    return [asdict(f) for f in result_from_proto(agent_pb2.CommandResult(faults=hello.faults)).faults]

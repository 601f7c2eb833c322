"""Talk to a node agent from a worker: a command goes into Redis, the gateway holding the agent's
stream passes it on, and the agent's answer comes back through Redis.

    result = inject(agent, fault_id, "NetworkChaos", "loss", params, AgentTarget(), expires_at)
    if not result.ok: ...   # result.error says why, in words for the user

Redis layout (shared with injector.gateway.relay):
    chaosplane:agent:<agent uuid>:commands   list of JSON envelopes, consumed by the gateway
    chaosplane:result:<command id>           list holding the one JSON result, expires after RESULT_TTL

No Django at import time (drivers are pure); only the default Redis URL comes from settings.
"""
from __future__ import annotations

import json
import os
import threading
import time
import uuid
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any, Protocol

import redis
import redis.exceptions

ENVELOPE_VERSION = 1
RESULT_TTL = 300  # seconds a result waits for a caller that may have given up
DEFAULT_TIMEOUT = 10.0
OPS = ("inject", "recover", "recover_all", "list")


def commands_key(agent_id: str) -> str:
    return f"chaosplane:agent:{agent_id}:commands"


def result_key(command_id: str) -> str:
    return f"chaosplane:result:{command_id}"


class AgentAddress(Protocol):
    """What the driver needs of an Agent row: whom to address, and the tenant it belongs to."""

    uuid: Any
    tenant_id: int
    name: str


class AgentTimeout(TimeoutError):
    """The agent gave no answer in time (not connected, or busy)."""


@dataclass(frozen=True)
class AgentTarget:
    """Where on the host a fault lands: the host itself, a process, a network namespace or a container."""

    kind: str = "host"  # host | process | netns | container
    pid: int | None = None
    name: str | None = None
    container_id: str | None = None
    runtime: str | None = None


@dataclass(frozen=True)
class HeldFault:
    fault_id: str
    kind: str
    action: str
    expires_at_unix_ms: int
    target: AgentTarget = field(default_factory=AgentTarget)


@dataclass(frozen=True)
class AgentResult:
    command_id: str
    ok: bool
    error: str = ""
    detail: str = ""
    faults: tuple[HeldFault, ...] = ()

    @classmethod
    def from_json(cls, text: str | bytes) -> AgentResult:
        data = json.loads(text)
        faults = tuple(
            HeldFault(**{**f, "target": AgentTarget(**(f.get("target") or {}))}) for f in data.get("faults", ())
        )
        return cls(
            command_id=data.get("command_id", ""),
            ok=bool(data.get("ok")),
            error=data.get("error", ""),
            detail=data.get("detail", ""),
            faults=faults,
        )

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)


def inject(
    agent: AgentAddress,
    fault_id: str,
    kind: str,
    action: str,
    params: dict[str, Any],
    target: AgentTarget | None,
    expires_at: datetime | float,
    timeout: float = DEFAULT_TIMEOUT,
    *,
    redis_url: str | None = None,
) -> AgentResult:
    """Ask `agent` to hold a fault until `expires_at` (an aware datetime or unix seconds)."""
    args = {
        "fault_id": fault_id,
        "kind": kind,
        "action": action,
        "params": params,
        "target": asdict(target or AgentTarget()),
        "expires_at_unix_ms": _unix_ms(expires_at),
    }
    return send_command(agent, "inject", args, timeout, redis_url=redis_url)


def recover(agent: AgentAddress, fault_id: str, timeout: float = DEFAULT_TIMEOUT, **kw: Any) -> AgentResult:
    """Ask `agent` to remove one fault (idempotent on the agent: an unknown fault is already recovered)."""
    return send_command(agent, "recover", {"fault_id": fault_id}, timeout, **kw)


def recover_all(agent: AgentAddress, reason: str = "", timeout: float = DEFAULT_TIMEOUT, **kw: Any) -> AgentResult:
    return send_command(agent, "recover_all", {"reason": reason}, timeout, **kw)


def list_faults(agent: AgentAddress, timeout: float = DEFAULT_TIMEOUT, **kw: Any) -> AgentResult:
    return send_command(agent, "list", {}, timeout, **kw)


def send_command(
    agent: AgentAddress, op: str, args: dict[str, Any], timeout: float, *, redis_url: str | None = None
) -> AgentResult:
    """Queue one command for `agent` and wait up to `timeout` seconds for its result."""
    if op not in OPS:
        raise ValueError(f"unknown agent command {op!r}")
    command_id = uuid.uuid4().hex
    agent_id = str(agent.uuid)
    envelope = {
        "v": ENVELOPE_VERSION,
        "command_id": command_id,
        # From the row, never from the caller: the gateway refuses an envelope whose tenant is not
        # the agent's, so a bug or a forged entry cannot reach another tenant's host.
        "tenant_id": agent.tenant_id,
        "agent_id": agent_id,
        "deadline_unix_ms": int((time.time() + timeout) * 1000),
        "op": op,
        "args": args,
    }
    payload = json.dumps(envelope, sort_keys=True)
    client = _client(redis_url)
    queue = commands_key(agent_id)
    with client.pipeline() as pipe:
        pipe.rpush(queue, payload)
        # Nobody consumes the list of an agent that never connects again: let it go.
        pipe.expire(queue, int(timeout) + RESULT_TTL)
        pipe.execute()
    answer = client.blpop([result_key(command_id)], timeout=max(timeout, 0.01))
    if answer is None:
        # Not taken yet: take it back, so an agent connecting later does not get a stale command.
        client.lrem(queue, 1, payload)
        raise AgentTimeout(f"agent {agent.name} ({agent_id}) did not answer within {timeout:g} s; is it connected?")
    return AgentResult.from_json(answer[1])


def call(what: str, method: Any, *args: Any, timeout: float) -> AgentResult:
    """`method(*args)` (inject, recover...) for a driver: no answer in time, or no relay, is a
    TransientError naming `what`, worth a retry with backoff."""
    from injector.drivers.base import TransientError

    try:
        return method(*args, timeout=timeout)
    except TimeoutError as error:  # AgentTimeout: not connected, or busy
        raise TransientError(f"{what}: {error}") from error
    except (redis.exceptions.RedisError, OSError) as error:
        raise TransientError(f"{what}: the command relay is unreachable: {error}") from error


def _unix_ms(moment: datetime | float) -> int:
    seconds = moment.timestamp() if isinstance(moment, datetime) else float(moment)
    return int(seconds * 1000)


_clients: dict[str, redis.Redis] = {}
_clients_lock = threading.Lock()


def _client(url: str | None) -> redis.Redis:
    url = url or default_redis_url()
    with _clients_lock:
        if url not in _clients:
            _clients[url] = redis.Redis.from_url(url)
        return _clients[url]


def default_redis_url() -> str:
    try:
        from django.conf import settings

        return settings.REDIS_URL
    except Exception:  # noqa: BLE001 - outside Django (benchmarks, scripts) the environment decides
        return os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")

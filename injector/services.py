"""Domain operations on environments and agents.

The API, the portal, management commands and the agent gateway call these. Each checks its rules,
makes its change and writes its audit entry in one transaction. Connection bookkeeping (connect,
heartbeat, disconnect) is not audited: it is state, not a decision, and would flood the log.
"""
from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone

from tenants import audit
from tenants.actors import Actor
from tenants.bearer import hash_secret, new_bearer, secret_matches, split_bearer
from tenants.models import Tenant
from tenants.roles import Role, at_least

from .models import CREDENTIAL_MARK, REGISTRATION_MARK, Agent, Environment


def environment_snapshot(env: Environment) -> dict[str, Any]:
    return {
        "name": env.name,
        "kind": env.kind,
        "requires_grant": env.requires_grant,
        "registration_prefix": env.registration_prefix,
    }


def agent_snapshot(agent: Agent) -> dict[str, Any]:
    return {
        "uuid": str(agent.uuid),
        "environment": agent.environment.name,
        "name": agent.name,
        "hostname": agent.hostname,
        "labels": agent.labels,
        "version": agent.version,
        "credential_prefix": agent.credential_prefix,
    }


def _require(actor: Actor, tenant: Tenant, role: str) -> None:
    if not actor.is_system and not at_least(actor.role_in(tenant), role):
        raise PermissionDenied(f"this needs the {role} role in {tenant.slug}")


# Environments -------------------------------------------------------------------------------------


#: Environments node agents register into: hosts, and clusters (the agent DaemonSet on every node).
AGENT_KINDS = (Environment.Kind.HOSTS, Environment.Kind.KUBERNETES)


@transaction.atomic
def create_environment(actor: Actor, tenant: Tenant, name: str, kind: str) -> tuple[Environment, str | None]:
    """A new environment, and for a `hosts` environment its registration token (shown once, None otherwise)."""
    _require(actor, tenant, Role.OWNER)
    if kind not in Environment.Kind.values:
        raise ValidationError({"kind": f"unknown kind {kind!r}; choose one of {', '.join(Environment.Kind.values)}"})
    env = Environment(tenant=tenant, name=(name or "").strip(), kind=kind, created_by=actor.user)
    token = _set_registration_token(env) if kind in AGENT_KINDS else None
    env.full_clean(exclude=["tenant", "created_by"], validate_unique=False)
    try:
        with transaction.atomic():
            env.save()
    except IntegrityError:
        raise ValidationError({"name": f"an environment named {env.name!r} already exists in {tenant.slug}"}) from None
    audit.record(actor, tenant, "environment.create", env, after=environment_snapshot(env))
    return env, token


@transaction.atomic
def rotate_registration_token(actor: Actor, env: Environment) -> str:
    """A new registration token for a `hosts` environment; the old one stops working at once.
    Registered agents keep their own credentials."""
    env = Environment.objects.select_for_update().select_related("tenant").get(pk=env.pk)
    _require(actor, env.tenant, Role.OWNER)
    if env.kind not in AGENT_KINDS:
        raise ValidationError({"kind": "only hosts and kubernetes environments have a registration token"})
    before = environment_snapshot(env)
    token = _set_registration_token(env)
    env.save(update_fields=["registration_prefix", "registration_hash"])
    audit.record(actor, env.tenant, "environment.rotate_token", env, before=before, after=environment_snapshot(env))
    return token


def _set_registration_token(env: Environment) -> str:
    prefix, secret, full = new_bearer(REGISTRATION_MARK)
    env.registration_prefix, env.registration_hash = prefix, hash_secret(secret)
    return full


# Agent authentication -----------------------------------------------------------------------------


def environment_for_registration(raw: str) -> Environment | None:
    """The `hosts` environment whose registration token this is, or None."""
    parts = split_bearer(REGISTRATION_MARK, raw)
    if parts is None:
        return None
    env = Environment.objects.select_related("tenant").filter(registration_prefix=parts[0]).first()
    if env is None or env.kind not in AGENT_KINDS or not secret_matches(env.registration_hash, parts[1]):
        return None
    return env


def agent_for_credential(raw: str) -> Agent | None:
    """The agent whose credential this is, or None."""
    parts = split_bearer(CREDENTIAL_MARK, raw)
    if parts is None:
        return None
    agent = Agent.objects.select_related("tenant", "environment").filter(credential_prefix=parts[0]).first()
    if agent is None or not secret_matches(agent.credential_hash, parts[1]):
        return None
    return agent


# Agents -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class AgentFacts:
    """What an agent says about itself in Hello."""

    name: str = ""
    hostname: str = ""
    labels: dict[str, str] = field(default_factory=dict)
    capabilities: dict[str, dict[str, Any]] = field(default_factory=dict)
    version: str = ""


@transaction.atomic
def register_agent(actor: Actor, env: Environment, facts: AgentFacts) -> tuple[Agent, str]:
    """Create or take over the agent named `facts.name` (default: its hostname) in `env`, with a new
    credential (returned once; any previous credential of that agent stops working)."""
    if env.kind not in AGENT_KINDS:
        raise ValidationError({"environment": "agents register only into a hosts or kubernetes environment"})
    name = (facts.name or facts.hostname).strip()
    if not name:
        raise ValidationError({"name": "an agent needs a name or a hostname"})
    agent = Agent.objects.select_for_update().filter(environment=env, name=name).first()
    before = agent_snapshot(agent) if agent is not None else None
    if agent is None:
        agent = Agent(tenant_id=env.tenant_id, environment=env, name=name)
    agent.environment = env
    _apply_facts(agent, facts)
    prefix, secret, credential = new_bearer(CREDENTIAL_MARK)
    agent.credential_prefix, agent.credential_hash = prefix, hash_secret(secret)
    agent.full_clean(exclude=["tenant", "environment"], validate_unique=False)
    agent.save()
    action = "agent.register" if before is None else "agent.reregister"
    audit.record(actor, env.tenant, action, agent, before=before, after=agent_snapshot(agent))
    return agent, credential


def _apply_facts(agent: Agent, facts: AgentFacts) -> None:
    agent.hostname = facts.hostname[:253]
    agent.labels = dict(facts.labels)
    agent.capabilities = dict(facts.capabilities)
    agent.version = facts.version[:64]


def update_agent_facts(agent: Agent, facts: AgentFacts) -> Agent:
    """A known agent reconnected: keep what it says about itself now (its name stays)."""
    _apply_facts(agent, facts)
    agent.save(update_fields=["hostname", "labels", "capabilities", "version"])
    return agent


def mark_connected(agent: Agent, gateway: str) -> uuid.UUID:
    """The agent's stream is now held by `gateway`; returns the session id that stream must end with."""
    session, now = uuid.uuid4(), timezone.now()
    Agent.objects.filter(pk=agent.pk).update(
        connected=True, connected_at=now, last_heartbeat=now, connected_gateway=gateway, session=session
    )
    agent.connected, agent.connected_at, agent.last_heartbeat = True, now, now
    agent.connected_gateway, agent.session = gateway, session
    return session


def record_heartbeat(agent_pk: int, session: uuid.UUID) -> bool:
    """False when this stream no longer holds the agent (it reconnected elsewhere, or was removed)."""
    return bool(Agent.objects.filter(pk=agent_pk, session=session).update(last_heartbeat=timezone.now()))


def mark_disconnected(agent_pk: int, session: uuid.UUID) -> bool:
    """Only the stream that holds the agent now may mark it disconnected (it may have reconnected)."""
    return bool(
        Agent.objects.filter(pk=agent_pk, session=session).update(connected=False, connected_gateway="", session=None)
    )


def record_refused_command(gateway: str, agent: Agent, envelope: dict[str, Any], reason: str) -> None:
    """Audit a command the gateway would not pass to `agent` (in the agent's tenant: its agent was aimed at)."""
    actor = Actor.system_actor(f"gateway:{gateway}")
    after = {
        "command_id": str(envelope.get("command_id", ""))[:64],
        "claimed_tenant_id": envelope.get("tenant_id"),
        "claimed_agent_id": str(envelope.get("agent_id", ""))[:64],
        "op": str(envelope.get("op", ""))[:32],
        "reason": reason,
    }
    audit.record(actor, agent.tenant, "agent.command.refused", agent, after=after)

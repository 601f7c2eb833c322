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
        "config": env.config,
        # never the secrets: only whether they are set (and a change of them shows as a new value)
        "secrets_set": bool(env.secrets_encrypted),
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
def create_environment(
    actor: Actor, tenant: Tenant, name: str, kind: str, *, config: dict[str, Any] | None = None,
    secrets: dict[str, Any] | None = None, requires_grant: bool = False,
) -> tuple[Environment, str | None]:
    """A new environment with its settings and (encrypted) secrets, and for a hosts or kubernetes
    environment its registration token (shown once; None otherwise)."""
    _require(actor, tenant, Role.OWNER)
    if kind not in Environment.Kind.values:
        raise ValidationError({"kind": f"unknown kind {kind!r}; choose one of {', '.join(Environment.Kind.values)}"})
    env = Environment(
        tenant=tenant, name=(name or "").strip(), kind=kind, created_by=actor.user, requires_grant=bool(requires_grant)
    )
    _set_credentials(env, config or {}, secrets or {}, partial=kind in AGENT_KINDS and not secrets)
    token = _set_registration_token(env) if kind in AGENT_KINDS else None
    env.full_clean(exclude=["tenant", "created_by"], validate_unique=False)
    try:
        with transaction.atomic():
            env.save()
    except IntegrityError:
        raise ValidationError({"name": f"an environment named {env.name!r} already exists in {tenant.slug}"}) from None
    audit.record(actor, tenant, "environment.create", env, after=environment_snapshot(env))
    return env, token


def _set_credentials(env: Environment, config: dict[str, Any], secrets: dict[str, Any], *, partial: bool) -> None:
    """Validate and keep `config` in the clear and `secrets` encrypted (kept as they are when
    `partial` and none are given). A kubernetes environment may be created without its token: the
    cluster manifest makes the service account the token comes from."""
    from . import credentials
    from . import secrets as vault

    clean_config, clean_secrets = credentials.validate(env.kind, config, secrets, partial_secrets=partial)
    env.config = clean_config
    if clean_secrets:
        env.secrets_encrypted = vault.encrypt(clean_secrets)


@transaction.atomic
def update_environment(
    actor: Actor, env: Environment, *, config: dict[str, Any] | None = None, secrets: dict[str, Any] | None = None,
    requires_grant: bool | None = None,
) -> Environment:
    """Change settings (given whole), replace secrets (given whole; omitted: kept), or the grant gate."""
    env = Environment.objects.select_for_update().select_related("tenant").get(pk=env.pk)
    _require(actor, env.tenant, Role.OWNER)
    before = environment_snapshot(env)
    if config is not None or secrets:
        _set_credentials(env, env.config if config is None else config, secrets or {}, partial=not secrets)
    if requires_grant is not None:
        env.requires_grant = bool(requires_grant)
    env.save()
    after = environment_snapshot(env)
    if secrets:
        after["secrets_replaced"] = True
    if after != before:
        audit.record(actor, env.tenant, "environment.update", env, before=before, after=after)
    return env


@transaction.atomic
def delete_environment(actor: Actor, env: Environment) -> None:
    """Delete an environment with no active run (its archived runs keep its name)."""
    from experiments.models import Run

    _require(actor, env.tenant, Role.OWNER)
    active = Run.objects.filter(environment=env, phase__in=Run.ACTIVE).count()
    if active:
        raise ValidationError({"name": f"{active} runs are active in {env.name}; stop them (or halt) first"})
    before = environment_snapshot(env)
    env.delete()
    audit.record(actor, env.tenant, "environment.delete", object_type="environment", object_id=before["name"],
                 before=before)


@transaction.atomic
def set_run_grant(actor: Actor, env: Environment, username: str, granted: bool) -> None:
    """Grant (or take back) `run` on `env` to a member of its tenant (django-guardian object permission)."""
    from django.contrib.auth import get_user_model
    from guardian.shortcuts import assign_perm, remove_perm

    from tenants.models import Membership

    _require(actor, env.tenant, Role.OWNER)
    user = get_user_model().objects.filter(username=username).first()
    if user is None or not Membership.objects.filter(tenant=env.tenant, user=user).exists():
        raise ValidationError({"username": f"{username!r} is not a member of {env.tenant.slug}"})
    (assign_perm if granted else remove_perm)("injector.run_environment", user, env)
    audit.record(actor, env.tenant, "environment.grant" if granted else "environment.revoke", env,
                 after={"username": username, "permission": "run"})


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


def cluster_manifest(env: Environment, registration_token: str | None = None) -> str:
    """The YAML a tenant applies in the cluster of a kubernetes environment (injector.rbac): a
    service account with only what Chaosplane calls, and the agent DaemonSet. Without a token,
    the manifest holds a placeholder for it."""
    from django.conf import settings

    from . import rbac
    from .credentials import DEFAULT_AGENT_IMAGE

    if env.kind != Environment.Kind.KUBERNETES:
        raise ValidationError({"kind": "only a kubernetes environment has a cluster manifest"})
    config = env.config
    return rbac.cluster_manifest(
        environment_name=env.name, scope=config.get("scope", "namespace"),
        namespaces=list(config.get("namespaces") or ()), gateway_address=settings.AGENT_GATEWAY_PUBLIC_ADDRESS,
        registration_token=registration_token, agent_image=config.get("agent_image") or DEFAULT_AGENT_IMAGE,
    )


def cluster_manifest_for_scope(
    env: Environment, scope: str, namespaces: list[str], registration_token: str | None = None
) -> str:
    """The cluster manifest of a kubernetes environment for a scope and namespaces chosen by the reader
    (the portal's generator, like Chaos Mesh's RBAC generator) rather than the stored ones;
    ValidationError keyed `scope` or `namespaces`."""
    from django.conf import settings

    from . import rbac
    from .credentials import DEFAULT_AGENT_IMAGE, DNS_LABEL

    if env.kind != Environment.Kind.KUBERNETES:
        raise ValidationError({"kind": "only a kubernetes environment has a cluster manifest"})
    if scope not in rbac.SCOPES:
        raise ValidationError({"scope": "choose namespace or cluster"})
    bad = [ns for ns in namespaces if not DNS_LABEL.match(ns)]
    if bad:
        names = ", ".join(bad)
        raise ValidationError({"namespaces": f"not namespace names (lowercase letters, digits and '-'): {names}"})
    if scope == "namespace" and not namespaces:
        raise ValidationError({"namespaces": "name at least one namespace, or choose the whole cluster"})
    return rbac.cluster_manifest(
        environment_name=env.name, scope=scope, namespaces=list(namespaces),
        gateway_address=settings.AGENT_GATEWAY_PUBLIC_ADDRESS, registration_token=registration_token,
        agent_image=env.config.get("agent_image") or DEFAULT_AGENT_IMAGE,
    )

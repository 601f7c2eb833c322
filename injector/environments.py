"""From an Environment row to the driver that acts on it, and which faults each kind of environment
takes. The drivers are pure (injector.drivers); this is the one place that feeds them rows and
decrypted credentials.

    driver = driver_for(environment)      # a Driver (injector.drivers.base), with close()
    try: ... finally: driver.close()
"""
from __future__ import annotations

from dataclasses import replace
from typing import Any

from django.conf import settings

from injector.drivers.base import PermanentError
from injector.drivers.hosts import HostAgent, HostsDriver
from injector.faults import Kind, SelectorKind

from .models import Agent, Environment

#: Which chaos kinds land in which kind of environment.
CLOUD_KINDS = {"AWSChaos": Environment.Kind.AWS, "GCPChaos": Environment.Kind.GCP, "AzureChaos": Environment.Kind.AZURE}


def compatibility_error(environment: Environment, kind: Kind) -> str | None:
    """Why `kind` cannot run in `environment`, in words for the user; None when it can."""
    env_kind = environment.kind
    if kind.name in CLOUD_KINDS:
        wanted = CLOUD_KINDS[kind.name]
    elif kind.selector == SelectorKind.HOSTS:
        wanted = Environment.Kind.HOSTS
    else:
        wanted = Environment.Kind.KUBERNETES
    if env_kind == wanted:
        return None
    return (
        f"{kind.name} runs in a {Environment.Kind(wanted).label} environment; "
        f"{environment.name} is a {Environment.Kind(env_kind).label}"
    )


def host_agents(environment: Environment) -> list[HostAgent]:
    rows = Agent.objects.filter(environment=environment).only(
        "uuid", "tenant_id", "name", "hostname", "labels", "connected"
    )
    return [HostAgent(str(a.uuid), a.tenant_id, a.name, a.hostname, dict(a.labels), a.connected) for a in rows]


def driver_for(environment: Environment, **options: Any) -> Any:
    """The driver for `environment`; its credentials are decrypted here and live only in the driver."""
    kind = environment.kind
    if kind in (Environment.Kind.HOSTS, Environment.Kind.KUBERNETES):
        options.setdefault("agent_timeout", settings.AGENT_COMMAND_TIMEOUT)
    if kind == Environment.Kind.HOSTS:
        return HostsDriver(host_agents(environment), **options)
    from . import credentials, secrets

    if not environment.secrets_encrypted:
        raise PermanentError(f"environment {environment.name} has no credentials yet; an owner must set them")
    try:
        connection = credentials.connection(kind, environment.config, secrets.decrypt(environment.secrets_encrypted))
    except secrets.SecretsError as error:
        raise PermanentError(str(error)) from None
    if kind == Environment.Kind.KUBERNETES:
        from injector.drivers.kubernetes import KubernetesDriver

        agents = {a.name: a for a in host_agents(environment) if a.connected}
        return KubernetesDriver(connection, agent_for_node=agents.get, **options)
    poll = settings.CLOUD_POLL_SECONDS
    if kind == Environment.Kind.AWS:
        from injector.drivers.aws import AWSDriver

        return _closable(AWSDriver(replace(connection, poll_interval=poll)))
    if kind == Environment.Kind.GCP:
        from injector.drivers.gcp import GCPDriver

        return _closable(GCPDriver(replace(connection, poll_interval=poll)))
    from injector.drivers.azure import AzureDriver

    return _closable(AzureDriver(replace(connection, polling_interval=poll)))


def _closable(driver: Any) -> Any:
    if not hasattr(driver, "close"):
        driver.close = lambda: None
    return driver

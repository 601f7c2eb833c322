"""The driver of a `hosts` environment: its targets are the node agents registered into it, and a
fault goes to the agent through the command relay (injector.drivers.agent).

    driver = HostsDriver([HostAgent(uuid, tenant_id, "web-1", "web-1.lan", {"tier": "web"}, True)])
    targets = driver.candidates({"labelSelectors": {"tier": "web"}}, "", fault)
    driver.inject(targets[0], fault, fault_id, expires_at); ...; driver.recover(targets[0], fault, fault_id)

Selection (Chaos Mesh's PhysicalMachine selector, with agents standing for PhysicalMachine objects):
- `agents` (names) and `physicalMachines` (namespace -> names) pick agents by name; `address` (the
  deprecated list of chaosd addresses, `host:port`) picks them by host name or name;
- `labelSelectors`, `expressionSelectors` match the labels the agent reported;
- an agent's namespace is its label `chaosplane.io/namespace`, else "default": `namespaces` and the
  keys of `physicalMachines` match it;
- `annotationSelectors` and `fieldSelectors`: agents carry neither, so a selector that gives any
  matches no agent (a selector that reads narrower must never select more);
- only connected agents are candidates (a fault cannot reach the others); the result is sorted by
  name, so a recorded seed picks the same agents again.

Where on the host: the host itself, unless the agent carries the label `chaosplane.io/target-netns`
(then the fault lands in that network namespace of the host; the agent validates the name), which
is how an agent set beside one service scopes every fault to it. No Django here.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

from injector.drivers import agent as agent_api
from injector.drivers.base import PermanentError, TargetRef
from injector.faults import FaultSpec, SelectorKind

NAMESPACE_LABEL = "chaosplane.io/namespace"
TARGET_NETNS_LABEL = "chaosplane.io/target-netns"
DEFAULT_NAMESPACE = "default"


@dataclass(frozen=True)
class HostAgent:
    """What the driver needs of an Agent row (injector.models.Agent)."""

    uuid: str
    tenant_id: int
    name: str
    hostname: str = ""
    labels: dict[str, str] = field(default_factory=dict)
    connected: bool = True

    @property
    def namespace(self) -> str:
        return self.labels.get(NAMESPACE_LABEL) or DEFAULT_NAMESPACE


def matches_expression(labels: dict[str, str], expression: dict[str, Any]) -> bool:
    """One Kubernetes set-based requirement (In, NotIn, Exists, DoesNotExist) over a label map."""
    key, operator, values = expression["key"], expression["operator"], expression.get("values") or ()
    if operator == "In":
        return labels.get(key) in values
    if operator == "NotIn":
        return key not in labels or labels[key] not in values
    if operator == "Exists":
        return key in labels
    return key not in labels  # DoesNotExist


class HostsDriver:
    """The Driver protocol (injector.drivers.base) for the agents of one hosts environment."""

    def __init__(
        self,
        agents: Iterable[HostAgent],
        *,
        send_to_agent: Callable[..., agent_api.AgentResult] = agent_api.inject,
        recover_on_agent: Callable[..., agent_api.AgentResult] = agent_api.recover,
        agent_timeout: float = agent_api.DEFAULT_TIMEOUT,
    ) -> None:
        self.agents = sorted(agents, key=lambda a: a.name)
        self.send_to_agent = send_to_agent
        self.recover_on_agent = recover_on_agent
        self.agent_timeout = agent_timeout

    def close(self) -> None:
        """Nothing to release: the relay's Redis clients are shared by the process."""

    def candidates(self, selector: dict[str, Any] | None, namespace: str, fault: FaultSpec) -> list[TargetRef]:
        if fault.kind.selector != SelectorKind.HOSTS:
            raise PermanentError(
                f"{fault.kind.name} selects {fault.kind.selector}; a hosts environment runs host faults "
                "(PhysicalMachineChaos)"
            )
        selector = selector or {}
        if selector.get("annotationSelectors") or selector.get("fieldSelectors"):
            return []
        addresses = fault.get("address") if "address" in fault.kind.params_type(fault.action).by_name else None
        return [self._target(a) for a in self.agents if a.connected and self._selected(a, selector, addresses)]

    @staticmethod
    def _selected(agent: HostAgent, selector: dict[str, Any], addresses: Sequence[str] | None) -> bool:
        names = selector.get("agents")
        if names and agent.name not in names:
            return False
        machines = selector.get("physicalMachines")
        if machines and agent.name not in machines.get(agent.namespace, ()):
            return False
        namespaces = selector.get("namespaces")
        if namespaces and agent.namespace not in namespaces:
            return False
        for key, value in (selector.get("labelSelectors") or {}).items():
            if agent.labels.get(key) != value:
                return False
        if not all(matches_expression(agent.labels, e) for e in selector.get("expressionSelectors") or ()):
            return False
        if addresses:
            hosts = {a.rsplit(":", 1)[0] if a.count(":") == 1 else a for a in addresses}
            if agent.name not in hosts and agent.hostname not in hosts:
                return False
        return True

    @staticmethod
    def _target(agent: HostAgent) -> TargetRef:
        netns = agent.labels.get(TARGET_NETNS_LABEL)
        where = agent_api.AgentTarget(kind="netns", name=netns) if netns else agent_api.AgentTarget()
        display = agent.name
        if agent.hostname and agent.hostname != agent.name:
            display += f" ({agent.hostname})"
        if netns:
            display += f", network namespace {netns}"
        return TargetRef(
            key=f"agent/{agent.uuid}",
            display=display,
            labels=dict(agent.labels),
            namespace="",  # hosts are in no Kubernetes namespace: namespace rules of the policy do not apply
            data={"agent": str(agent.uuid), "tenant_id": agent.tenant_id, "name": agent.name, "target": asdict(where)},
        )

    def inject(self, target: TargetRef, fault: FaultSpec, fault_id: str, expires_at: float | datetime) -> str:
        address, where = _address(target), agent_api.AgentTarget(**target.data["target"])
        result = self._call(
            f"agent {target.display}", self.send_to_agent, address, fault_id, fault.kind.name, fault.action.name,
            fault.dump(), where, expires_at,
        )
        if not result.ok:
            raise PermanentError(
                f"agent {target.display} refused {fault.kind.name} {fault.action.name}: {result.error or 'no reason'}"
            )
        return result.detail or f"{fault.kind.name} {fault.action.name} on {target.display}"

    def recover(self, target: TargetRef, fault: FaultSpec, fault_id: str) -> None:
        result = self._call(f"agent {target.display}", self.recover_on_agent, _address(target), fault_id)
        if not result.ok:
            raise PermanentError(f"agent {target.display} could not recover {fault_id}: {result.error or 'no reason'}")

    def _call(self, what: str, method: Callable[..., agent_api.AgentResult], *args: Any) -> agent_api.AgentResult:
        return agent_api.call(what, method, *args, timeout=self.agent_timeout)


@dataclass(frozen=True)
class _Address:
    uuid: str
    tenant_id: int
    name: str


def _address(target: TargetRef) -> _Address:
    return _Address(target.data["agent"], target.data["tenant_id"], target.data["name"])

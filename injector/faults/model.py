"""What the catalogue is made of: kinds (NetworkChaos, ...), their actions, and the parsed fault."""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from .params import MISSING, Field, FieldError, Obj, Validator, join


class Target(StrEnum):
    """What an action lands on."""

    POD = "pod"
    CONTAINER = "container"
    HOST = "host"
    PROCESS = "process"
    CLOUD_INSTANCE = "cloud-instance"
    VOLUME = "volume"


class SelectorKind(StrEnum):
    """How a kind picks its targets: Kubernetes pods, hosts running the agent, or a cloud resource
    named in the spec itself (no selector, no mode)."""

    PODS = "pods"
    HOSTS = "hosts"
    CLOUD = "cloud"


class Capability(StrEnum):
    """What the executing side must be able to do; the agent reports these, the catalogue asks for them."""

    KUBERNETES_API = "kubernetes-api"  # pod kill/failure: the control plane talks to the API server
    CONTAINER_RUNTIME = "container-runtime"  # container kill through the CRI
    NETEM = "netem"
    TC_TBF = "tc-tbf"
    IPTABLES = "iptables"
    IPSET = "ipset"
    DNS_PROXY = "dns-proxy"
    HTTP_PROXY = "http-proxy"
    FUSE = "fuse"
    STRESS_NG = "stress-ng"
    PTRACE_VDSO = "ptrace-vdso"
    BPF_KPROBE = "bpf-kprobe"
    FAIL_FUNCTION = "fail-function"  # the kernel's fault injection (debugfs fail_function)
    BYTEMAN = "byteman"
    DEVICE_MAPPER = "device-mapper"
    PROCESS_SIGNAL = "process-signal"
    FILESYSTEM = "filesystem"
    REDIS_CLIENT = "redis-client"
    KAFKA_CLIENT = "kafka-client"
    AWS_API = "aws-api"
    GCP_API = "gcp-api"
    AZURE_API = "azure-api"


@dataclass(frozen=True)
class Action:
    name: str
    label: str
    help: str
    #: The spec keys this action takes besides its kind's common fields (Chaos Mesh's spelling).
    fields: tuple[Field, ...]
    targets: frozenset[Target]
    capability: Capability | None
    #: Done once and not undone at recovery (pod-kill, ec2-restart, ...): no duration needed.
    one_shot: bool = False
    validators: tuple[Validator, ...] = ()


@dataclass(frozen=True)
class Kind:
    name: str
    label: str
    help: str
    actions: tuple[Action, ...]
    common_fields: tuple[Field, ...] = ()
    selector: SelectorKind = SelectorKind.PODS
    #: The spec key naming the action; None where Chaos Mesh has none and `infer_action` decides.
    action_field: str | None = "action"
    infer_action: Callable[[dict[str, Any]], str] | None = None
    #: False where the kind's own parameters claim the spec's `value` key (JVMChaos: the return value
    #: sits shallower than the selector's in Chaos Mesh's Go structs, so JSON gives `value` to it).
    mode_value_in_spec: bool = True
    by_action: dict[str, Action] = field(init=False, repr=False, compare=False, hash=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "by_action", {a.name: a for a in self.actions})

    def action(self, name: str) -> Action:
        try:
            return self.by_action[name]
        except KeyError:
            raise KeyError(f"{self.name} has no action {name!r}") from None

    def params_type(self, action: Action) -> Obj:
        return Obj(self.common_fields + action.fields, validators=action.validators)

    def parse(self, spec_fields: dict[str, Any], path: str = "spec") -> FaultSpec:
        """The fault of a manifest's spec, less the keys the manifest layer handles (selector, mode,
        value, duration): decide the action, parse its parameters, refuse anything unknown."""
        values = dict(spec_fields)
        if self.action_field is not None:
            name = values.pop(self.action_field, None)
            if name is None:
                raise FieldError(join(path, self.action_field), f"is required (one of: {', '.join(self.by_action)})")
            if name not in self.by_action:
                raise FieldError(
                    join(path, self.action_field),
                    f"{name!r} is not an action of {self.name} (one of: {', '.join(self.by_action)})",
                )
        else:
            name = self.infer_action(values) if self.infer_action else self.actions[0].name
        action = self.by_action[name]
        params = self.params_type(action).parse(values, path)
        return FaultSpec(self, action, params)

    def schema(self) -> dict[str, Any]:
        return {
            "kind": self.name,
            "label": self.label,
            "help": self.help,
            "selector": self.selector.value,
            "actionField": self.action_field,
            "actions": [
                {
                    "name": a.name,
                    "label": a.label,
                    "help": a.help,
                    "targets": sorted(t.value for t in a.targets),
                    "capability": a.capability.value if a.capability else None,
                    "oneShot": a.one_shot,
                    "parameters": self.params_type(a).schema(),
                }
                for a in self.actions
            ],
        }


@dataclass(frozen=True)
class FaultSpec:
    """A validated fault: its kind, its action and typed parameters (only those given)."""

    kind: Kind
    action: Action
    params: dict[str, Any]

    def dump(self) -> dict[str, Any]:
        """Canonical JSON of the parameters, as stored and as written in a manifest's spec."""
        return self.kind.params_type(self.action).dump(self.params)

    def manifest_fields(self) -> dict[str, Any]:
        out = {self.kind.action_field: self.action.name} if self.kind.action_field else {}
        return out | self.dump()

    def get(self, name: str) -> Any:
        """A parameter's typed value, or its declared default when it was not given."""
        if name in self.params:
            return self.params[name]
        spec = self.kind.params_type(self.action).by_name[name]
        return None if spec.default is MISSING else spec.default

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, FaultSpec)
            and (self.kind.name, self.action.name, self.dump())
            == (other.kind.name, other.action.name, other.dump())
        )

    def __hash__(self) -> int:
        return hash((self.kind.name, self.action.name))

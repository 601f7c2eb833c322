"""What the agent is asked to do, independent of the wire: a fault order and its target.

The runtime turns wire commands (nodeagent.proto) into these, journals them, and hands them to the
executors (nodeagent.executors), which do the work and undo it. Imports nothing of the Django side.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

TargetKind = Literal["host", "process", "netns", "container"]


class Refused(Exception):
    """This host cannot or may not do what was asked; the message says why. Not retried."""


@dataclass(frozen=True)
class Target:
    kind: TargetKind = "host"
    pid: int | None = None  # process: the PID; netns: a process whose /proc/PID/ns/net is meant
    name: str | None = None  # process: its name (comm); netns: /run/netns/NAME
    container_id: str | None = None
    runtime: str | None = None  # containerd | cri-o | docker; None: whichever answers


@dataclass(frozen=True)
class FaultOrder:
    """One fault to hold until `expires_at` (unix seconds). `params` is the catalogue's canonical JSON
    of the action's parameters (injector.faults), e.g. NetworkChaos loss: {"loss": {"loss": "30"},
    "direction": "to", "externalTargets": ["10.250.0.2"]}; for pod targets the control plane puts the
    resolved addresses of the target pods into externalTargets before sending."""

    fault_id: str
    kind: str
    action: str
    params: dict[str, Any] = field(default_factory=dict)
    target: Target = field(default_factory=Target)
    expires_at: float = 0.0

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> FaultOrder:
        data = json.loads(text)
        return cls(**{**data, "target": Target(**data.get("target", {}))})

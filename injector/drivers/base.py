"""What every driver (kubernetes, agent, aws, gcp, azure) offers the run lifecycle.

Drivers are plain Python over a connection config (no Django models), so they are tested against
local emulators with the real client libraries. The lifecycle (experiments.services) resolves
candidates, selects with injector.selection, then calls inject and, later, recover for each target.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from injector.faults import FaultSpec


class DriverError(Exception):
    """A step failed; the message is for the user."""


class TransientError(DriverError):
    """Worth retrying with backoff: a timeout, a 5xx, a connection refused."""


class PermanentError(DriverError):
    """Retrying will not help: refused, not found, invalid."""


@dataclass(frozen=True)
class TargetRef:
    """One place a fault lands, as its driver names it."""

    key: str  # stable identity, e.g. "pod/shop/cart-7d9", "agent/<uuid>", "aws/us-east-1/i-0abc"
    display: str  # for people: "shop/cart-7d9 on node-3"
    labels: dict[str, str] = field(default_factory=dict)
    annotations: dict[str, str] = field(default_factory=dict)
    namespace: str = ""
    data: dict[str, Any] = field(default_factory=dict)  # what the driver needs to act on it (JSON-able)


class Driver(Protocol):
    def candidates(self, selector: dict[str, Any] | None, namespace: str, fault: FaultSpec) -> list[TargetRef]:
        """Every target the selector matches (before the mode picks among them)."""

    def inject(self, target: TargetRef, fault: FaultSpec, fault_id: str, expires_at: float) -> str:
        """Apply the fault on one target; returns what was done. Raises TransientError or PermanentError."""

    def recover(self, target: TargetRef, fault: FaultSpec, fault_id: str) -> None:
        """Undo the fault on one target. Idempotent: recovering twice, or what was never injected, is fine."""

"""PhysicalMachineChaos redis-* actions (to be built)."""
from __future__ import annotations

from collections.abc import Callable

from nodeagent.orders import FaultOrder

#: (kind, action) -> (inject, recover), merged into nodeagent.executors.REGISTRY.
EXECUTORS: dict[tuple[str, str], tuple[Callable[[FaultOrder], str], Callable[[FaultOrder], None]]] = {}

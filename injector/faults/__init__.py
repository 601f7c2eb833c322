"""The fault catalogue: every kind and action of Chaos Mesh's chaos-mesh.org/v1alpha1 API, with the
same field names, units, defaults and limits, in pure Python (no Django), so the API, the portal,
the manifest importer and the drivers share one vocabulary.

    from injector.faults import KINDS, kind
    kind("NetworkChaos").parse({"action": "delay", "delay": {"latency": "100ms"}})
"""
from __future__ import annotations

from importlib import import_module
from typing import Any

from .model import Action, Capability, FaultSpec, Kind, SelectorKind, Target

# One module per kind; each defines KIND. The order is the catalogue's (and the portal's menu).
_MODULES = (
    "pod",
    "network",
    "dns",
    "http",
    "io",
    "stress",
    "time",
    "kernel",
    "jvm",
    "block",
    "aws",
    "gcp",
    "azure",
    "physical",
)


def _load() -> dict[str, Kind]:
    kinds = (import_module(f"{__name__}.{name}").KIND for name in _MODULES)
    return {k.name: k for k in kinds}


KINDS: dict[str, Kind] = _load()


def kind(name: str) -> Kind:
    try:
        return KINDS[name]
    except KeyError:
        raise KeyError(f"{name!r} is not a chaos kind (one of: {', '.join(KINDS)})") from None


def catalog() -> list[dict[str, Any]]:
    """Every kind with its actions and a JSON Schema of each action's parameters."""
    return [k.schema() for k in KINDS.values()]


__all__ = ["KINDS", "Action", "Capability", "FaultSpec", "Kind", "SelectorKind", "Target", "catalog", "kind"]

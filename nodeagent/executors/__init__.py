"""Fault executors: what the agent runtime calls to apply a FaultOrder on this host and to take it
back out.

    inject(order) -> str        one line saying what was done; raises Refused with the reason when the
                                host cannot do it or a value is not acceptable (nothing is left applied)
    recover(order) -> None      idempotent: never injected, already recovered or half-injected all succeed
    capabilities()              [(name, available, detail)], detected once at start by trying

Every executor validates every value before the first command, runs argv lists only (never a shell),
and names what it creates after the fault id, so recovery needs nothing but the order.
"""
from __future__ import annotations

from collections.abc import Callable

from nodeagent.orders import FaultOrder, Refused

from . import disk, dns, files, http, iofault, jvm, kernel, network, process, redisfault, stress, timeshift, validate
from .probe import capabilities

Executor = tuple[Callable[[FaultOrder], str], Callable[[FaultOrder], None]]

#: Executors that declare their own (kind, action) pairs in a module-level EXECUTORS dict.
PLUGGED = (dns, http, iofault, timeshift, jvm, disk, files, redisfault, kernel)

_NET: Executor = (network.inject, network.recover)
_PROC: Executor = (process.inject, process.recover)
_STRESS: Executor = (stress.inject, stress.recover)

REGISTRY: dict[tuple[str, str], Executor] = {
    **{("NetworkChaos", a): _NET for a in ("delay", "loss", "duplicate", "corrupt", "netem", "partition",
                                           "bandwidth")},
    **{("PhysicalMachineChaos", f"network-{a}"): _NET for a in ("delay", "loss", "duplicate", "corrupt",
                                                                "partition", "bandwidth")},
    ("PhysicalMachineChaos", "process"): _PROC,
    ("PodChaos", "container-kill"): _PROC,
    ("PhysicalMachineChaos", "stress-cpu"): _STRESS,
    ("PhysicalMachineChaos", "stress-mem"): _STRESS,
    ("StressChaos", "stress"): _STRESS,
}
for _module in PLUGGED:
    for _key, _executor_pair in _module.EXECUTORS.items():
        if _key in REGISTRY:
            raise RuntimeError(f"{_module.__name__} registers {_key}, which another executor has")
        REGISTRY[_key] = _executor_pair


def _executor(order: FaultOrder) -> Executor:
    validate.fault_id(order.fault_id)
    executor = REGISTRY.get((order.kind, order.action))
    if executor is None:
        raise Refused(f"this agent does not execute {str(order.kind)[:40]} {str(order.action)[:40]}")
    return executor


def inject(order: FaultOrder) -> str:
    return _executor(order)[0](order)


def recover(order: FaultOrder) -> None:
    _executor(order)[1](order)


def supported() -> list[tuple[str, str]]:
    return sorted(REGISTRY)


__all__ = ["REGISTRY", "Refused", "capabilities", "inject", "recover", "supported"]

"""Stress for real: stress-ng in the target's cgroup, its CPU use read from cpuacct (v1) or cpu.stat (v2)."""
from __future__ import annotations

import os
import time

from nodeagent.executors import inject, recover, stress, validate
from nodeagent.orders import FaultOrder, Target
from tests.nodeagent.netns import Lab, fault_id, needs_root

pytestmark = needs_root


def _cpu_seconds(cgroups: list[str]) -> float:
    for path in cgroups:  # v1: cpuacct.usage (ns)
        if os.path.exists(f"{path}/cpuacct.usage"):
            with open(f"{path}/cpuacct.usage") as f:
                return int(f.read()) / 1e9
    for path in cgroups:  # v2: usage_usec in cpu.stat
        if os.path.exists(f"{path}/cpu.stat"):
            with open(f"{path}/cpu.stat") as f:
                stat = dict(line.split() for line in f)
            if "usage_usec" in stat:
                return int(stat["usage_usec"]) / 1e6
    raise AssertionError(f"no CPU accounting in {cgroups}")


def _memory(cgroups: list[str]) -> int:
    for path in cgroups:
        for name in ("memory.usage_in_bytes", "memory.current"):
            if os.path.exists(f"{path}/{name}"):
                with open(f"{path}/{name}") as f:
                    return int(f.read())
    raise AssertionError(f"no memory accounting in {cgroups}")


def test_cpu_stress_at_50_percent_in_the_target_cgroup(lab: Lab) -> None:
    cgroups = lab.cgroup("cpu50")
    target = lab.spawn(["sleep", "60"], cgroups=cgroups)
    order = FaultOrder(fault_id(), "StressChaos", "stress", {"stressors": {"cpu": {"workers": 1, "load": 50}}},
                       Target(kind="process", pid=target.pid))
    print(inject(order))
    try:
        time.sleep(0.5)  # stress-ng's start
        before, start = _cpu_seconds(cgroups), time.monotonic()
        time.sleep(2)
        used = (_cpu_seconds(cgroups) - before) / (time.monotonic() - start)
    finally:
        recover(order)
    print(f"target cgroup CPU use: {used:.2f} CPU over 2 s (asked: 1 worker at 50%)")
    assert 0.40 <= used <= 0.60
    time.sleep(0.3)
    idle = _cpu_seconds(cgroups)
    time.sleep(0.5)
    assert _cpu_seconds(cgroups) - idle < 0.05, "stress kept running after recovery"
    recover(order)


def test_memory_stress_takes_memory_in_the_target_cgroup(lab: Lab) -> None:
    cgroups = lab.cgroup("mem")
    target = lab.spawn(["sleep", "60"], cgroups=cgroups)
    before = _memory(cgroups)
    order = FaultOrder(fault_id(), "PhysicalMachineChaos", "stress-mem", {"stress-mem": {"size": "64MiB"}},
                       Target(kind="process", pid=target.pid))
    print(inject(order))
    try:
        deadline, taken = time.monotonic() + 10, 0
        while taken < 48 * 2**20 and time.monotonic() < deadline:
            time.sleep(0.1)
            taken = max(taken, _memory(cgroups) - before)
    finally:
        recover(order)
    print(f"target cgroup memory: +{taken / 2**20:.0f} MiB (asked 64 MiB)")
    assert taken >= 48 * 2**20


def test_stress_is_found_and_killed_after_an_agent_restart(lab: Lab) -> None:
    order = FaultOrder(fault_id(), "PhysicalMachineChaos", "stress-cpu", {"stress-cpu": {"load": 10, "workers": 1}})
    inject(order)
    child = stress._running.pop(order.fault_id)  # a restarted agent has only the order
    recover(order)
    assert child.wait(5) is not None
    assert not stress._marked(validate.short_id(order.fault_id))

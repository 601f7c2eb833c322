"""Hostile values in every field are refused before anything runs: no command, no rule, no qdisc, no file."""
from __future__ import annotations

import os
import subprocess
from typing import Any

import pytest

from nodeagent.executors import inject, probe, recover, validate
from nodeagent.orders import FaultOrder, Refused, Target
from tests.nodeagent.netns import Lab, fault_id, needs_root

HOSTILE = ["eth0; touch /tmp/x", "$(reboot)", "../../etc", "x" * 10_000, "-1", "`id`", "a\nb", "", None, -5,
           True, {"a": 1}, ["x"]]


def _set(params: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    """A copy of params with the dotted path set to value."""
    out: dict[str, Any] = {k: (dict(v) if isinstance(v, dict) else v) for k, v in params.items()}
    node = out
    keys = path.split(".")
    for key in keys[:-1]:
        node[key] = dict(node.get(key) or {})
        for k, v in node[key].items():
            if isinstance(v, dict):
                node[key][k] = dict(v)
        node = node[key]
    node[keys[-1]] = value
    return out


NET = ("NetworkChaos", {"direction": "to", "externalTargets": ["10.250.0.9"], "device": "veth0"})
CASES: list[tuple[str, str, dict[str, Any], list[str]]] = [
    ("NetworkChaos", "partition", NET[1], ["direction", "externalTargets.0", "device"]),
    ("NetworkChaos", "loss", {**NET[1], "loss": {"loss": "30", "correlation": "0"}},
     ["loss.loss", "loss.correlation", "device", "direction"]),
    ("NetworkChaos", "delay", {**NET[1], "delay": {"latency": "100ms", "jitter": "1ms"}},
     ["delay.latency", "delay.jitter", "device"]),
    ("NetworkChaos", "bandwidth", {"direction": "to", "bandwidth": {"rate": "1mbit", "limit": 20000, "buffer": 5000}},
     ["bandwidth.rate", "bandwidth.limit", "bandwidth.buffer", "device"]),
    ("PhysicalMachineChaos", "network-partition",
     {"network-partition": {"device": "veth0", "ip-address": "10.250.0.9", "direction": "to", "ip-protocol": "tcp",
                            "accept-tcp-flags": "SYN SYN"}},
     ["network-partition.device", "network-partition.ip-address", "network-partition.hostname",
      "network-partition.ip-protocol", "network-partition.accept-tcp-flags"]),
    ("PhysicalMachineChaos", "network-loss",
     {"network-loss": {"device": "veth0", "percent": "30", "ip-protocol": "tcp", "egress-port": "80"}},
     ["network-loss.percent", "network-loss.egress-port", "network-loss.source-port", "network-loss.device"]),
    ("PhysicalMachineChaos", "process", {"process": {"process": "sleep", "signal": 9}},
     ["process.process", "process.signal", "process.mode"]),
    ("PhysicalMachineChaos", "stress-cpu", {"stress-cpu": {"load": 50, "workers": 1}},
     ["stress-cpu.load", "stress-cpu.workers", "stress-cpu.options.0"]),
    ("PhysicalMachineChaos", "stress-mem", {"stress-mem": {"size": "10MB"}}, ["stress-mem.size"]),
    ("StressChaos", "stress", {"stressors": {"cpu": {"workers": 1, "load": 50}}},
     ["stressors.cpu.workers", "stressors.cpu.load", "stressors.cpu.options", "stressngStressors"]),
]


OPTIONAL = {"device", "jitter", "correlation", "hostname", "source-port", "egress-port", "mode", "options",
            "stressngStressors", "accept-tcp-flags", "ip-protocol"}


def _hostile(params: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    if path.endswith(".0"):  # a list field: the hostile value as its item
        return _set(params, path[:-2], [value])
    return _set(params, path, value)


@pytest.fixture
def no_commands(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """Records every command the executors try to start (it must stay empty for refused orders)."""
    probe.capabilities()  # detected at start, as the agent does; its probes are not the order's commands
    started: list[Any] = []
    real_run, real_popen = subprocess.run, subprocess.Popen

    def run(argv: Any, *a: Any, **kw: Any) -> Any:
        started.append(argv)
        return real_run(argv, *a, **kw)

    class Popen(real_popen):  # type: ignore[misc, valid-type]
        def __init__(self, argv: Any, *a: Any, **kw: Any) -> None:
            started.append(argv)
            super().__init__(argv, *a, **kw)

    monkeypatch.setattr(subprocess, "run", run)
    monkeypatch.setattr(subprocess, "Popen", Popen)
    return started


@needs_root
def test_hostile_values_in_every_field_are_refused_and_nothing_runs(lab: Lab, no_commands: list[Any]) -> None:
    assert not os.path.exists("/tmp/x")
    refused = 0
    for kind, action, params, fields in CASES:
        target = Target(kind="netns", name=lab.a) if kind == "NetworkChaos" or "network" in action else Target()
        for path in fields:
            for value in HOSTILE:
                if path.endswith("signal") and value is True:
                    continue  # bool is refused too, but checked separately below
                if value is None and path.split(".")[-1] in OPTIONAL:
                    continue  # an optional field may be null: it is then simply not given
                order = FaultOrder(fault_id(), kind, action, _hostile(params, path, value), target)
                try:
                    done = inject(order)
                except Refused:
                    refused += 1
                    continue
                recover(order)
                pytest.fail(f"{kind} {action} {path}={value!r} was not refused: {done}")
    bad_commands = [argv for argv in no_commands if any(h in str(argv) for h in ("touch", "reboot", "../", "`"))]
    assert not bad_commands
    # Only the probes that read state ran (capability detection, listing links); nothing was changed.
    changing = [argv for argv in no_commands if isinstance(argv, list) and any(
        w in argv for w in ("-N", "-A", "-I", "add", "replace"))]
    assert not changing, changing
    assert not os.path.exists("/tmp/x")
    print(f"{refused} hostile orders refused")


@needs_root
def test_hostile_targets_and_ids(lab: Lab) -> None:
    good = {"direction": "to", "externalTargets": ["10.250.0.9"]}
    for value in ["eth0; touch /tmp/x", "$(reboot)", "../../etc", "x" * 10_000, "..", "."]:
        with pytest.raises(Refused):
            inject(FaultOrder(fault_id(), "NetworkChaos", "partition", good, Target(kind="netns", name=value)))
        with pytest.raises(Refused):
            inject(FaultOrder(value, "NetworkChaos", "partition", good, Target(kind="netns", name=lab.a)))
        with pytest.raises(Refused):
            inject(FaultOrder(fault_id(), "PodChaos", "container-kill", {}, Target(kind="container",
                                                                                   container_id=value)))
        with pytest.raises(Refused):
            inject(FaultOrder(fault_id(), value, "partition", good))
    for pid in [0, 1, -1, "1; reboot", 2**40, True]:
        with pytest.raises(Refused):
            inject(FaultOrder(fault_id(), "NetworkChaos", "partition", good, Target(kind="netns", pid=pid)))
    for value in ["eth0; touch /tmp/x", "$(reboot)"]:
        with pytest.raises(Refused):
            recover(FaultOrder(value, "NetworkChaos", "partition", good))
    assert not os.path.exists("/tmp/x")


@pytest.mark.parametrize("value", [0, 99, -9, "9; reboot", True, 1.5])
def test_signal_out_of_range(value: Any) -> None:
    with pytest.raises(Refused):
        validate.signal_number(value)


@pytest.mark.parametrize(("check", "good", "bad"), [
    (validate.interface, ["eth0", "veth1", "br-1a.10"], ["eth0; touch /tmp/x", "a" * 16, "../x", "a/b", "", ".."]),
    (validate.network, ["10.0.0.1", "10.0.0.0/8", "fd00::1", "fd00::/64"], ["10.0.0.0/33", "10.0.0", "1.2.3.4/x",
                                                                           "$(reboot)"]),
    (validate.port, [1, "80", 65535], [0, -1, "-1", 65536, "80; x", True]),
    (validate.pid, [2, "1234"], [0, 1, -3, "12a", 2**40]),
    (validate.process_name, ["nginx", "java", "kube-proxy"], ["$(reboot)", "a b", "../x", "x" * 16]),
    (validate.netns_name, ["cni-1234", "ns.a"], ["../../etc", "a/b", "..", "x" * 65]),
    (validate.percent, [0, "30", "30%", 12.5], ["-1", "101", "nan", "inf", "x", True]),
    (validate.duration_ns, ["100ms", "1.5s", "0"], ["-1s", "100", "1d", "2h", "1s;x"]),
    (validate.size, ["256MB", "1GiB", 4096, "50%"], ["0%", "-1", "1e9", "101%", "1PiBx"]),
    (validate.rate_bits, ["1mbit", "125kbps"], ["1", "-1mbit", "fast", "0bit"]),
    (validate.hostname, ["example.com", "db-1.svc"], ["-x.com", "a..b", "1.2.3.4", "$(x).com"]),
    (validate.ports, ["80", "80,8001:8010"], ["0", "8010:8001", "80,,81", "-1"]),
    (validate.tcp_flags, ["SYN,ACK SYN"], ["SYN", "SYN;x SYN", "FOO BAR"]),
])
def test_validators(check: Any, good: list[Any], bad: list[Any]) -> None:
    for value in good:
        check(value)
    for value in bad:
        with pytest.raises(Refused):
            check(value)

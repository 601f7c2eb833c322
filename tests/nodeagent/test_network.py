"""Network faults for real, between two namespaces: the fault lands in `a` (the target), `b` is the peer.
Each test measures the effect, recovers, and the lab fixture fails it if anything is left behind."""
from __future__ import annotations

import socket
import statistics
import threading
import time

import pytest

from nodeagent.executors import inject, probe, recover
from nodeagent.orders import FaultOrder, Refused, Target
from tests.nodeagent.netns import Lab, fault_id, needs_root

pytestmark = needs_root


def _order(lab: Lab, action: str, params: dict, kind: str = "NetworkChaos") -> FaultOrder:
    return FaultOrder(fault_id(), kind, action, params, Target(kind="netns", name=lab.a))


def _probe(lab: Lab, count: int, port: int = 7000, timeout: float = 0.3) -> tuple[int, list[float]]:
    """UDP probes from b to the echo server in a: (replies, round trips in seconds)."""
    s = lab.sock(lab.path_b, socket.SOCK_DGRAM)
    s.settimeout(timeout)
    sent: dict[int, float] = {}
    rtts: list[float] = []
    batch = 50
    for start in range(0, count, batch):
        for seq in range(start, min(start + batch, count)):
            sent[seq] = time.monotonic()
            s.sendto(seq.to_bytes(4, "big"), (lab.ip_a, port))
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                data = s.recv(64)
            except TimeoutError:
                break
            rtts.append(time.monotonic() - sent[int.from_bytes(data, "big")])
            if len(rtts) >= min(start + batch, count):
                break
    return len(rtts), rtts


def test_partition_cuts_only_the_directions_asked(lab: Lab) -> None:
    lab.tcp_server(lab.path_a, lab.ip_a, 8001)
    lab.tcp_server(lab.path_b, lab.ip_b, 8002)
    assert lab.connects(lab.path_a, lab.ip_b, 8002) and lab.connects(lab.path_b, lab.ip_a, 8001)
    expected = {"to": (False, True), "from": (True, False), "both": (False, False)}
    for direction, (a_to_b, b_to_a) in expected.items():
        order = _order(lab, "partition", {"direction": direction, "externalTargets": [lab.ip_b]})
        print(inject(order))
        try:
            assert lab.connects(lab.path_a, lab.ip_b, 8002) is a_to_b, direction
            assert lab.connects(lab.path_b, lab.ip_a, 8001) is b_to_a, direction
        finally:
            recover(order)
        recover(order)  # twice: idempotent
        assert lab.connects(lab.path_a, lab.ip_b, 8002) and lab.connects(lab.path_b, lab.ip_a, 8001), direction


def test_partition_by_port_and_physical_spelling(lab: Lab) -> None:
    lab.tcp_server(lab.path_b, lab.ip_b, 8002)
    lab.tcp_server(lab.path_b, lab.ip_b, 8003)
    order = _order(lab, "partition", {"direction": "to", "externalTargets": [f"{lab.ip_b}:8002"]})
    inject(order)
    try:
        assert not lab.connects(lab.path_a, lab.ip_b, 8002)
        assert lab.connects(lab.path_a, lab.ip_b, 8003)
    finally:
        recover(order)
    physical = _order(lab, "network-partition", {"network-partition": {
        "device": "veth0", "ip-address": f"10.250.{lab.n}.0/24", "direction": "to", "ip-protocol": "tcp"}},
        kind="PhysicalMachineChaos")
    inject(physical)
    try:
        assert not lab.connects(lab.path_a, lab.ip_b, 8003)
    finally:
        recover(physical)
    assert lab.connects(lab.path_a, lab.ip_b, 8003)


def test_loss_30_percent(lab: Lab) -> None:
    lab.udp_echo(lab.path_a, lab.ip_a, 7000)
    assert _probe(lab, 50)[0] == 50
    order = _order(lab, "loss", {"loss": {"loss": "30"}, "direction": "from", "externalTargets": [lab.ip_b]})
    print(inject(order))
    try:
        replies, _ = _probe(lab, 1000)
    finally:
        recover(order)
    loss = 1 - replies / 1000
    print(f"measured loss {loss:.1%} over 1000 probes")
    assert 0.25 <= loss <= 0.35
    assert _probe(lab, 50)[0] == 50


def _transfer(lab: Lab, src: str, dst_ns: str, dst_ip: str, port: int, size: int) -> float:
    """Sends `size` bytes over TCP; the rate in bit/s seen by the receiver from first to last byte."""
    times: list[float] = []
    got = [0]
    done = threading.Event()

    def sink(conn: socket.socket) -> None:
        while True:
            data = conn.recv(65536)
            if not data:
                break
            if not times:
                times.append(time.monotonic())
            got[0] += len(data)
        times.append(time.monotonic())
        done.set()

    lab.tcp_server(dst_ns, dst_ip, port, sink)
    s = lab.sock(src, socket.SOCK_STREAM)
    s.connect((dst_ip, port))
    s.sendall(b"x" * size)
    s.close()
    assert done.wait(30)
    assert got[0] == size
    return got[0] * 8 / (times[-1] - times[0])


def test_bandwidth_1mbit_egress_and_ingress(lab: Lab) -> None:
    params = {"bandwidth": {"rate": "1mbit", "limit": 20000, "buffer": 5000}, "direction": "to"}
    order = _order(lab, "bandwidth", params)
    print(inject(order))
    try:
        egress = _transfer(lab, lab.path_a, lab.path_b, lab.ip_b, 9001, 250_000)
    finally:
        recover(order)
    order = _order(lab, "bandwidth", {**params, "direction": "from"})
    print(inject(order))
    try:
        ingress = _transfer(lab, lab.path_b, lab.path_a, lab.ip_a, 9002, 250_000)
    finally:
        recover(order)
    print(f"measured {egress / 1e6:.3f} mbit/s egress, {ingress / 1e6:.3f} mbit/s ingress (goodput)")
    assert 0.9e6 <= egress <= 1.1e6
    assert 0.9e6 <= ingress <= 1.1e6
    assert _transfer(lab, lab.path_a, lab.path_b, lab.ip_b, 9003, 250_000) > 5e6


@pytest.mark.skipif(not probe.have(probe.NFQUEUE) and not probe.have(probe.NETEM),
                    reason="neither netem nor NFQUEUE")
def test_delay_100ms(lab: Lab) -> None:
    lab.udp_echo(lab.path_a, lab.ip_a, 7000)
    base = statistics.median(_probe(lab, 20)[1])
    order = _order(lab, "delay", {"delay": {"latency": "100ms"}, "direction": "from",
                                  "externalTargets": [lab.ip_b]})
    print(inject(order))
    try:
        replies, rtts = _probe(lab, 20, timeout=1.0)
    finally:
        recover(order)
    added = statistics.median(rtts) - base
    print(f"baseline rtt {base * 1e3:.2f} ms, added {added * 1e3:.1f} ms (min {min(rtts) * 1e3:.1f}, "
          f"max {max(rtts) * 1e3:.1f})")
    assert replies == 20
    assert 0.090 <= added <= 0.130
    assert statistics.median(_probe(lab, 20)[1]) < 0.02


def test_duplicate_and_corrupt_refused_without_netem(lab: Lab) -> None:
    if probe.have(probe.NETEM):
        pytest.skip("this kernel has netem")
    for action in ("duplicate", "corrupt"):
        with pytest.raises(Refused, match="netem"):
            inject(_order(lab, action, {action: {action: "10"}}))


def test_recover_of_never_injected_and_of_vanished_namespace(lab: Lab) -> None:
    recover(_order(lab, "partition", {"direction": "to"}))
    recover(_order(lab, "delay", {"delay": {"latency": "10ms"}}))
    recover(FaultOrder(fault_id(), "NetworkChaos", "loss", {}, Target(kind="netns", name="no-such-ns")))


def test_capabilities_report() -> None:
    names = {name: (ok, detail) for name, ok, detail in probe.capabilities()}
    for name in ("netem", "nfqueue", "tc-tbf", "ifb", "iptables", "nft", "stress-ng", "cgroup", "fuse",
                 "ptrace-vdso", "bpf-kprobe", "java", "byteman", "process-signal"):
        assert name in names
    assert names["iptables"][0] and names["tc-tbf"][0]
    assert names["netem"][1]  # says which path delay takes

"""Test fixtures for the node agent's executors: network namespaces joined by veth pairs on 10.250.x.y
addresses the tests own, small servers in them, and a finalizer that FAILS the test when anything of
it is left behind: a namespace, an iptables rule, a qdisc, an ifb device, a process or a cgroup.
"""
from __future__ import annotations

import itertools
import json
import os
import shutil
import socket
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from nodeagent.executors import delayer, iptables, stress, tc
from nodeagent.executors.namespaces import run, run_in

needs_root = pytest.mark.skipif(
    not hasattr(os, "geteuid") or os.geteuid() != 0 or not shutil.which("iptables"),
    reason="needs root on Linux with iptables (CI runs as root)",
)

PREFIX = f"cpt{os.getpid() % 100000}"
_counter = itertools.count(1)


def fault_id() -> str:
    return f"test-{uuid.uuid4().hex[:12]}"


@dataclass
class Lab:
    """Namespace `a` (the target, 10.250.N.1) and `b` (the peer, 10.250.N.2), one veth pair between."""

    n: int
    a: str
    b: str
    ip_a: str
    ip_b: str
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)
    sockets: list[socket.socket] = field(default_factory=list)
    cgroups: list[str] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)

    @property
    def path_a(self) -> str:
        return f"/run/netns/{self.a}"

    @property
    def path_b(self) -> str:
        return f"/run/netns/{self.b}"

    def sock(self, netns: str, kind: int) -> socket.socket:
        """A socket created inside the namespace: it stays there, whichever thread uses it."""
        s = run_in(netns, lambda: socket.socket(socket.AF_INET, kind))
        self.sockets.append(s)
        return s

    def spawn(self, argv: list[str], netns: str | None = None, cgroups: list[str] | None = None,
              **kw: Any) -> subprocess.Popen[bytes]:
        def start() -> subprocess.Popen[bytes]:
            def prepare() -> None:
                for directory in cgroups or []:
                    with open(os.path.join(directory, "cgroup.procs"), "w") as f:
                        f.write(str(os.getpid()))

            return subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                    start_new_session=True, preexec_fn=prepare if cgroups else None, **kw)

        child = run_in(netns, start)
        self.processes.append(child)
        return child

    def udp_echo(self, netns: str, ip: str, port: int) -> None:
        s = self.sock(netns, socket.SOCK_DGRAM)
        s.bind((ip, port))
        s.settimeout(0.2)

        def serve() -> None:
            while not self._stop.is_set():
                try:
                    data, peer = s.recvfrom(2048)
                    s.sendto(data, peer)
                except OSError:
                    continue

        threading.Thread(target=serve, daemon=True).start()

    def tcp_server(self, netns: str, ip: str, port: int, sink: Callable[[socket.socket], None] | None = None) -> None:
        s = self.sock(netns, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind((ip, port))
        s.listen(16)
        s.settimeout(0.2)

        def serve() -> None:
            while not self._stop.is_set():
                try:
                    conn, _ = s.accept()
                except OSError:
                    continue
                self.sockets.append(conn)
                if sink is not None:
                    threading.Thread(target=sink, args=(conn,), daemon=True).start()

        threading.Thread(target=serve, daemon=True).start()

    def connects(self, netns: str, ip: str, port: int, timeout: float = 0.5) -> bool:
        s = self.sock(netns, socket.SOCK_STREAM)
        s.settimeout(timeout)
        try:
            s.connect((ip, port))
            return True
        except OSError:
            return False
        finally:
            s.close()

    def cgroup(self, name: str) -> list[str]:
        """A fresh v1 cpu, cpuacct and memory cgroup (or the v2 one), removed at teardown."""
        made = []
        roots = [f"/sys/fs/cgroup/{c}" for c in ("cpu", "cpuacct", "memory") if os.path.isdir(f"/sys/fs/cgroup/{c}")]
        if not roots and os.path.exists("/sys/fs/cgroup/cgroup.controllers"):
            roots = ["/sys/fs/cgroup"]
        for root in roots:
            path = os.path.join(root, f"{PREFIX}-{name}")
            os.mkdir(path)
            made.append(path)
            self.cgroups.append(path)
        return made


def _leftovers_in(netns: str) -> list[str]:
    return run_in(netns, lambda: iptables.leftovers() + tc.leftovers())


def _host_links() -> list[str]:
    return [link["ifname"] for link in json.loads(run(["ip", "-j", "link", "show"]).stdout or "[]")]


def _fault_processes_left() -> list[int]:
    """Processes an executor started for a fault (stress-ng, a DNS responder, an HTTP proxy, a FUSE
    server...): each carries the CHAOSPLANE_FAULT marker in its environment."""
    found = []
    for entry in os.listdir("/proc"):
        try:
            with open(f"/proc/{entry}/environ", "rb") as f:
                if stress.MARKER.encode() + b"=" in f.read():
                    found.append(int(entry))
        except (OSError, ValueError):
            continue
    return found


def _describe(pids: list[int]) -> list[str]:
    out = []
    for pid in pids:
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                command = f.read().replace(b"\0", b" ").decode(errors="replace").strip()
            out.append(f"{pid} {command[:120]}")
        except OSError:
            out.append(str(pid))
    return out


@pytest.fixture
def lab() -> Iterator[Lab]:
    n = (next(_counter) + os.getpid()) % 250 + 1
    a, b = f"{PREFIX}-{n}-a", f"{PREFIX}-{n}-b"
    lab = Lab(n, a, b, f"10.250.{n}.1", f"10.250.{n}.2")
    host_before = iptables.leftovers()
    run(["ip", "netns", "add", a])
    run(["ip", "netns", "add", b])
    try:
        run(["ip", "-n", a, "link", "add", "veth0", "type", "veth", "peer", "name", "veth1", "netns", b])
        for ns, ip in ((a, lab.ip_a), (b, lab.ip_b)):
            dev = "veth0" if ns == a else "veth1"
            run(["ip", "-n", ns, "addr", "add", f"{ip}/24", "dev", dev])
            run(["ip", "-n", ns, "link", "set", dev, "up"])
            run(["ip", "-n", ns, "link", "set", "lo", "up"])
        yield lab
    finally:
        problems = []
        # First what the faults may have left, while the namespaces still exist to look in.
        for ns in (a, b):
            try:
                problems += [f"{ns}: {item}" for item in _leftovers_in(f"/run/netns/{ns}")]
            except Exception as error:  # noqa: BLE001 - reported as a problem below
                problems.append(f"{ns}: cannot inspect: {error}")
        if delayer.running():
            problems.append(f"delayers still running: {delayer.running()}")
            for fid in delayer.running():
                delayer.stop(fid)
        left = _fault_processes_left()
        if stress.running() or left:
            problems.append(f"fault processes left: {stress.running()} {_describe(left)}")
        new_chains = [c for c in iptables.leftovers() if c not in host_before]
        if new_chains:
            problems.append(f"host iptables: {new_chains}")
        # Then take down what the test itself made, and check that it is gone.
        lab._stop.set()
        for s in lab.sockets:
            s.close()
        for child in lab.processes:
            if child.poll() is None:
                os.killpg(child.pid, 9)
            child.wait(5)
        for pid in left:
            try:
                os.kill(pid, 9)
            except ProcessLookupError:
                pass
        for ns in (a, b):
            run(["ip", "netns", "del", ns], check=False)
        deadline = time.monotonic() + 5
        for path in lab.cgroups:
            while True:
                try:
                    os.rmdir(path)
                    break
                except OSError as error:
                    if time.monotonic() > deadline:
                        problems.append(f"cgroup {path} not removable: {error}")
                        break
                    time.sleep(0.05)
        listed = run(["ip", "netns", "list"]).stdout
        problems += [f"namespace {ns} still exists" for ns in (a, b) if ns in listed]
        problems += [f"host device {name}" for name in _host_links() if name.startswith(tc.IFB_PREFIX)]
        if problems:
            pytest.fail("left behind:\n" + "\n".join(problems))

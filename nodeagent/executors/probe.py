"""What this host can do, found by trying it, once, at start. Names are the catalogue's Capability
values (injector.faults.model.Capability), copied rather than imported: the agent imports nothing of
the Django side.

Kernel features are probed in a throwaway network namespace (a veth pair in it), so probing never
touches the host's own interfaces, qdiscs or rules.
"""
from __future__ import annotations

import os
import shutil
import threading
from collections.abc import Callable

from .delayer import available as nfqueue_module
from .namespaces import CommandFailed, run, run_in

NETEM, IPTABLES, TC_TBF, STRESS_NG = "netem", "iptables", "tc-tbf", "stress-ng"
PROCESS_SIGNAL, FUSE, PTRACE_VDSO = "process-signal", "fuse", "ptrace-vdso"
BPF_KPROBE, BYTEMAN = "bpf-kprobe", "byteman"
CONTAINER_RUNTIME, NFQUEUE, IFB, NFT, CGROUP, JAVA = "container-runtime", "nfqueue", "ifb", "nft", "cgroup", "java"

Capability = tuple[str, bool, str]
_cache: list[Capability] | None = None
_lock = threading.Lock()


def _try(argv: list[str]) -> tuple[bool, str]:
    try:
        run(argv)
        return True, ""
    except FileNotFoundError:
        return False, f"{argv[0]} is not installed"
    except CommandFailed as failed:
        return False, failed.stderr.strip().splitlines()[-1] if failed.stderr.strip() else str(failed)


def _probe_kernel() -> dict[str, tuple[bool, str]]:
    """netem, tbf, ifb, iptables, NFQUEUE and nft, tried inside a namespace made for the purpose."""
    name = f"chaosplane-probe-{os.getpid()}"
    ok, why = _try(["ip", "netns", "add", name])
    if not ok:
        return {k: (False, f"cannot make a network namespace to probe in: {why}")
                for k in (NETEM, TC_TBF, IFB, IPTABLES, NFQUEUE, NFT)}
    try:
        def probe() -> dict[str, tuple[bool, str]]:
            found: dict[str, tuple[bool, str]] = {}
            run(["ip", "link", "add", "cpprobe0", "type", "veth", "peer", "name", "cpprobe1"])
            run(["ip", "link", "set", "cpprobe0", "up"])
            found[NETEM] = _try(["tc", "qdisc", "add", "dev", "cpprobe0", "root", "handle", "1:", "netem", "delay",
                                 "1ms"])
            run(["tc", "qdisc", "del", "dev", "cpprobe0", "root"], check=False)
            found[TC_TBF] = _try(["tc", "qdisc", "add", "dev", "cpprobe0", "root", "handle", "1:", "tbf", "rate",
                                  "1mbit", "burst", "10000", "limit", "10000"])
            found[IFB] = _try(["ip", "link", "add", "cpprobeifb", "type", "ifb"])
            if found[IFB][0]:
                found[IFB] = _try(["tc", "qdisc", "add", "dev", "cpprobe0", "handle", "ffff:", "ingress"])
            if found[IFB][0]:
                found[IFB] = _try(["tc", "filter", "add", "dev", "cpprobe0", "parent", "ffff:", "protocol", "all",
                                   "u32", "match", "u32", "0", "0", "action", "mirred", "egress", "redirect", "dev",
                                   "cpprobeifb"])
            found[IPTABLES] = _try(["iptables", "-w", "-A", "INPUT", "-m", "statistic", "--mode", "random",
                                    "--probability", "0.5", "-j", "DROP"])
            found[NFQUEUE] = _try(["iptables", "-w", "-A", "INPUT", "-j", "NFQUEUE", "--queue-num", "7",
                                   "--queue-bypass"])
            found[NFT] = _try(["nft", "list", "tables"])
            return found

        found = run_in(f"/run/netns/{name}", probe)
    finally:
        run(["ip", "netns", "del", name], check=False)  # takes the veth, ifb, qdiscs and rules with it
    module_ok, module_why = nfqueue_module()
    ok, why = found[NFQUEUE]
    found[NFQUEUE] = (ok and module_ok, ("iptables NFQUEUE + " + module_why) if ok else why)
    if found[NETEM][0]:
        found[NETEM] = (True, "tc netem: delay, loss, duplicate, corrupt in the kernel")
    else:
        path = ("delay through the userspace NFQUEUE delayer" if found[NFQUEUE][0] else "delay refused") + (
            ", loss through iptables statistic" if found[IPTABLES][0] else "")
        found[NETEM] = (False, f"no sch_netem ({found[NETEM][1]}); {path}; duplicate and corrupt refused")
    for name, detail in ((TC_TBF, "tc tbf"), (IFB, "ifb + mirred for ingress"), (IPTABLES, "iptables (xt)"),
                         (NFT, "nft")):
        if found[name][0]:
            found[name] = (True, detail)
    return found


def _cgroup() -> tuple[bool, str]:
    if os.path.exists("/sys/fs/cgroup/cgroup.controllers"):
        with open("/sys/fs/cgroup/cgroup.controllers") as f:
            controllers = f.read().split()
        if "cpu" in controllers or "memory" in controllers:
            return True, f"v2 ({' '.join(controllers)})"
    v1 = [c for c in ("cpu", "cpuacct", "memory", "freezer") if os.path.isdir(f"/sys/fs/cgroup/{c}")]
    return (bool(v1), f"v1 ({' '.join(v1)})" if v1 else "no cpu or memory controller")


def _ptrace() -> tuple[bool, str]:
    try:
        with open("/proc/sys/kernel/yama/ptrace_scope") as f:
            scope = int(f.read())
    except OSError:
        return True, "no Yama: ptrace allowed"
    return scope < 3, f"Yama ptrace_scope {scope}"


def _kprobes() -> tuple[bool, str]:
    for path in ("/sys/kernel/tracing/kprobe_events", "/sys/kernel/debug/tracing/kprobe_events",
                 "/sys/bus/event_source/devices/kprobe"):
        if os.path.exists(path):
            return True, path
    return False, "the kernel has no kprobes (CONFIG_KPROBES)"


def _byteman() -> tuple[bool, str]:
    java = shutil.which("java")
    jars = [p for p in ("/usr/share/java/byteman.jar", "/usr/share/byteman/lib/byteman.jar") if os.path.exists(p)]
    if java and jars:
        return True, f"{java}, {jars[0]}"
    return False, "needs java and byteman.jar" + (f" (java: {java})" if java else "")


def _runtimes() -> tuple[bool, str]:
    from .containers import SOCKETS

    present = [name for name, path in SOCKETS.items() if os.path.exists(path)]
    return (bool(present), ", ".join(present) if present else "no docker, containerd or CRI-O socket")


def _which(name: str) -> Callable[[], tuple[bool, str]]:
    return lambda: (True, shutil.which(name) or "") if shutil.which(name) else (False, f"{name} is not installed")


def detect() -> list[Capability]:
    kernel = _probe_kernel()
    rows: list[tuple[str, Callable[[], tuple[bool, str]]]] = [
        (NETEM, lambda: kernel[NETEM]),
        (NFQUEUE, lambda: kernel[NFQUEUE]),
        (TC_TBF, lambda: kernel[TC_TBF]),
        (IFB, lambda: kernel[IFB]),
        (IPTABLES, lambda: kernel[IPTABLES]),
        (NFT, lambda: kernel[NFT]),
        (STRESS_NG, _which("stress-ng")),
        (CGROUP, _cgroup),
        (PROCESS_SIGNAL, lambda: (True, "kill(2)")),
        (FUSE, lambda: (os.path.exists("/dev/fuse"), "/dev/fuse" if os.path.exists("/dev/fuse") else "no /dev/fuse")),
        (PTRACE_VDSO, _ptrace),
        (BPF_KPROBE, _kprobes),
        (JAVA, _which("java")),
        (BYTEMAN, _byteman),
        (CONTAINER_RUNTIME, _runtimes),
    ]
    found = [(name, *check()) for name, check in rows]
    # Fault families in their own modules say what they need themselves; theirs replace the generic rows.
    for name, ok, detail in _plugged():
        found = [row for row in found if row[0] != name] + [(name, ok, detail)]
    return found


def _plugged() -> list[Capability]:
    from . import PLUGGED

    rows: list[Capability] = []
    for module in PLUGGED:
        try:
            if hasattr(module, "capabilities"):
                rows.extend(module.capabilities())
            elif hasattr(module, "capability"):
                rows.append(module.capability())
        except Exception as error:  # noqa: BLE001 - a broken probe must not stop the agent from starting
            rows.append((module.__name__.rsplit(".", 1)[-1], False, f"probe failed: {error}"))
    return rows


def capabilities(refresh: bool = False) -> list[Capability]:
    global _cache
    with _lock:
        if _cache is None or refresh:
            _cache = detect()
        return list(_cache)


def have(name: str) -> bool:
    return any(n == name and ok for n, ok, _ in capabilities())

"""DNSChaos (error, random) and PhysicalMachineChaos network-dns: a DNS responder of the fault's own
(dns_responder.py, one process) in the target's network namespace, and iptables rules that send the
namespace's DNS traffic to it.

- The rules: chain CHAOSPLANE-<short id>-DNS in the nat table (iptables, and ip6tables when the
  namespace has ::1), jumped to from OUTPUT: `-m owner --gid-owner <the responder's gid> -j RETURN`
  (its own queries upstream pass: no redirect loop), then udp and tcp `--dport 53 -j REDIRECT` to the
  responder's ports on 127.0.0.1 / ::1. Every query leaving the namespace for any server's port 53 is
  caught, and conntrack turns the answer's source back into that server's address.
- DNSChaos: names matching `patterns` (glob, `*` and `?`, case-insensitive; none: every name) get
  SERVFAIL (`error`: what Chaos Mesh's DNS server answers, rcode 2, "the server could not answer",
  which resolvers report as a temporary failure and retry, rather than NXDOMAIN, which would claim
  the name does not exist) or a random address (`random`: A and AAAA; other types SERVFAIL, as Chaos
  Mesh). Other names are forwarded to the server the query was sent to: its original destination,
  read back from conntrack (UDP) or SO_ORIGINAL_DST (TCP). That is what the target would have used,
  whichever resolv.conf it read (a pod's, /etc/netns/NAME, a local stub's), so nothing has to be
  read or guessed from files. On a host target the rules are the host's: the agent's own lookups are
  caught too, as with chaosd's edit of /etc/resolv.conf.
- network-dns (chaosd): every query goes to `dns-server` instead of where it was sent (chaosd writes
  it into /etc/resolv.conf; its default 123.123.123.123 when none is given), and `dns-domain-name`
  resolves to `dns-ip` (chaosd appends to /etc/hosts; here the responder answers it for the
  address's family and forwards the name's other types). No file of the target is touched.
- Injection also deletes the conntrack entries of plain UDP DNS flows, so a client that keeps its
  socket (a stub resolver, nscd) is caught from its next query, not after its flow times out.
- Recovery: remove the jump and the chain, delete the conntrack entries of redirected DNS flows (so a
  client that reuses its socket is not sent to a port that is gone), and kill the responder, found by
  CHAOSPLANE_FAULT=<short id> in its environment, so a restarted agent finds it from the order alone.
  A fault whose namespace is gone only needs its responder killed (the rules went with the namespace).
"""
from __future__ import annotations

import json
import os
import re
import select
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from nodeagent.orders import FaultOrder, Refused

from . import dns_responder, iptables, validate
from .marked import MARKER
from .marked import marked as marked_processes
from .namespaces import CommandFailed, Resolved, resolve, run, run_in
from .network import params

DNS_PROXY = "dns-proxy"  # the catalogue's Capability value
RESPONDER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "dns_responder.py")
CHAOSD_DEFAULT_SERVER = "123.123.123.123"
READY_TIMEOUT = 5.0
GID_BASE = 3_000_000_000  # the responder's group: GID_BASE + a number from the fault id, used by nothing else
MAX_PATTERNS = 256
MAX_STARS = 8
_PATTERN = re.compile(r"[a-zA-Z0-9_?*-]+(\.[a-zA-Z0-9_?*-]+)*\.?")
FAMILIES = {4: "iptables", 6: "ip6tables"}

_running: dict[str, subprocess.Popen[bytes]] = {}
_lock = threading.Lock()


def chain(short: str) -> str:
    return f"{iptables.PREFIX}{short}-DNS"  # 27 characters; iptables allows 28


def gid(short: str) -> int:
    return GID_BASE + int(short, 16) % 1_000_000_000


def pattern(value: object) -> str:
    """A domain glob. The catalogue allows `*` only at the end ("chaos-mesh.*"); the agent also takes it
    elsewhere ("*.chaos.test"), at most MAX_STARS times."""
    text = validate.text(value, "patterns item", 253)
    if not _PATTERN.fullmatch(text):
        raise Refused(f"patterns: {text[:60]!r} is not a domain pattern (letters, digits, - _ and the wildcards "
                      "* and ?, separated by dots)")
    if text.count("*") > MAX_STARS:
        raise Refused(f"patterns: {text[:60]!r} has more than {MAX_STARS} *")
    return text


@dataclass
class Plan:
    where: Resolved
    short: str
    args: list[str]
    what: str


def plan(order: FaultOrder) -> Plan:
    """The responder's arguments, every value checked, and the target resolved; nothing runs yet."""
    short = validate.short_id(order.fault_id)
    p = params(order)
    if order.kind == "DNSChaos":
        raw = p.get("patterns") or []
        if not isinstance(raw, list) or len(raw) > MAX_PATTERNS:
            raise Refused(f"patterns must be a list of at most {MAX_PATTERNS} domain patterns")
        patterns = [pattern(item) for item in raw]
        args = ["--mode", validate.choice(order.action, "action", ("error", "random"))]
        for item in patterns:
            args += ["--pattern", item]
        names = f"names matching {', '.join(patterns)}" if patterns else "every name"
        answer = "SERVFAIL" if order.action == "error" else "a random address"
        what = f"DNS answers {answer} for {names}; other names forwarded to the server they were sent to"
    elif order.kind == "PhysicalMachineChaos" and order.action == "network-dns":
        server = validate.address(p.get("dns-server") or CHAOSD_DEFAULT_SERVER)
        name, address = p.get("dns-domain-name"), p.get("dns-ip")
        if (name is None) != (address is None):
            raise Refused("dns-domain-name and dns-ip go together: give both or neither")
        args = ["--mode", "pass", "--upstream", str(server)]
        what = f"every DNS query sent to {server}"
        if name is not None:
            host = validate.hostname(validate.text(name, "dns-domain-name", 254).removesuffix("."))
            mapped = validate.address(address)
            args += ["--map", f"{host}={mapped}"]
            what += f"; {host} resolves to {mapped}"
    else:
        raise Refused(f"{str(order.kind)[:40]} {str(order.action)[:40]} is not a DNS fault")
    if shutil.which("iptables") is None:
        raise Refused("iptables is not installed on this host")
    return Plan(resolve(order.target), short, [*args, "--gid", str(gid(short))], what)


def _start(pl: Plan, fid: str) -> subprocess.Popen[bytes]:
    def spawn() -> subprocess.Popen[bytes]:  # in a thread inside the target's namespace: the child is born there
        return subprocess.Popen(  # an argv list of checked values, no shell
            [sys.executable, "-I", "-S", RESPONDER, *pl.args], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL, start_new_session=True, cwd="/",
            env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL": "C", MARKER: pl.short},
        )

    with _lock:
        child = run_in(pl.where.netns, spawn)
        _running[fid] = child
    return child


def _await_ready(child: subprocess.Popen[bytes]) -> dict[str, int]:
    """The ports of the responder's `ready udp4=P tcp4=P ...` line; Refused with its error otherwise."""
    assert child.stdout is not None
    try:
        readable, _, _ = select.select([child.stdout], [], [], READY_TIMEOUT)
        line = child.stdout.readline(512) if readable else None
    finally:
        child.stdout.close()
    text = (line or b"").decode(errors="replace").strip()
    if not text.startswith("ready "):
        if line is None:
            text = f"no word in {READY_TIMEOUT:g} s"
        elif not text:  # its output closed: it is gone
            try:
                text = f"it exited with status {child.wait(2)}"
            except subprocess.TimeoutExpired:
                text = "it closed its output"
        raise Refused(f"the DNS responder did not start: {text[:200]}")
    ports = dict(item.partition("=")[::2] for item in text.split()[1:])
    return {name: validate.port(port) for name, port in ports.items()}


def _install(short: str, ports: dict[str, int]) -> list[str]:
    """The chain for each family the responder listens in; what was not done, in words."""
    notes = []
    for version, binary in FAMILIES.items():
        udp, tcp = ports.get(f"udp{version}"), ports.get(f"tcp{version}")
        if udp is None or tcp is None:
            notes.append(f"IPv{version} DNS not intercepted (no {'127.0.0.1' if version == 4 else '::1'} "
                         "in the namespace)")
            continue
        name = chain(short)
        try:
            run([binary, "-w", "-t", "nat", "-N", name])
            run([binary, "-w", "-t", "nat", "-A", name, "-m", "owner", "--gid-owner", str(gid(short)),
                 "-j", "RETURN"])
            for proto, port in (("udp", udp), ("tcp", tcp)):
                run([binary, "-w", "-t", "nat", "-A", name, "-p", proto, "--dport", "53", "-j", "REDIRECT",
                     "--to-ports", str(port)])
            run([binary, "-w", "-t", "nat", "-I", "OUTPUT", "1", "-j", name])
        except (CommandFailed, FileNotFoundError) as error:
            if version == 4:
                raise
            _remove_family(binary, name)
            notes.append(f"IPv6 DNS not intercepted ({str(error)[:120]})")
    return notes


def _remove_family(binary: str, name: str) -> None:
    try:
        for _ in range(16):  # a jump inserted twice (a retried injection) is removed as often as it is there
            if run([binary, "-w", "-t", "nat", "-D", "OUTPUT", "-j", name], check=False).returncode != 0:
                break
        if run([binary, "-w", "-t", "nat", "-F", name], check=False).returncode == 0:
            run([binary, "-w", "-t", "nat", "-X", name], check=False)
    except FileNotFoundError:
        pass  # no ip6tables: nothing of ours can be there


def _flush(which: Callable[[dns_responder.Entry], bool]) -> None:
    try:
        dns_responder.flush(which)
    except OSError:
        pass  # no ctnetlink: the entries time out on their own (30 s for UDP)


def _loopback_up() -> bool:
    """The calling thread's namespace has its loopback up (a REDIRECT delivers through it; 127.0.0.1 can
    be bound even while it is down, so the responder alone would not notice)."""
    links = json.loads(run(["ip", "-j", "link", "show", "lo"]).stdout or "[]")
    return bool(links) and "UP" in links[0].get("flags", [])


def inject(order: FaultOrder) -> str:
    pl = plan(order)  # everything validated and resolved before the first command
    if not run_in(pl.where.netns, _loopback_up):
        raise Refused(f"the loopback of {pl.where.description} is down: the DNS responder listens on it")
    recover(order)  # a retried order starts from clean
    try:
        child = _start(pl, order.fault_id)
        ports = _await_ready(child)

        def work() -> list[str]:
            notes = _install(pl.short, ports)
            _flush(dns_responder.plain_udp_dns)  # a client reusing its socket is caught from its next query
            return notes

        notes = run_in(pl.where.netns, work)
    except BaseException as error:
        recover(order)  # a half-made fault comes back out before the error is reported
        if isinstance(error, CommandFailed):
            raise Refused(f"could not apply the fault: {error}") from None
        raise
    listening = ", ".join(f"{k} {v}" for k, v in sorted(ports.items()))
    extra = "".join(f"; {note}" for note in notes)
    return f"{pl.what} in {pl.where.description} (responder pid {child.pid}, {listening}){extra}"


marked = marked_processes  # nodeagent.executors.marked


def _kill(fault_id: str, short: str) -> None:
    with _lock:
        child = _running.pop(fault_id, None)
    pids = set(marked(short))
    if child is not None and child.poll() is None:
        pids.add(child.pid)
    for pid in pids:
        if pid in (os.getpid(), os.getppid()):
            continue
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    if child is not None:
        child.wait(5)
    deadline = time.monotonic() + 2
    while marked(short) and time.monotonic() < deadline:  # an orphan is reaped by init, not by us
        time.sleep(0.02)


def recover(order: FaultOrder) -> None:
    short = validate.short_id(order.fault_id)
    try:
        where: Resolved | None = resolve(order.target)
    except Refused:
        where = None  # the namespace is gone, and its rules with it; a responder may still hold it
    if where is not None:
        def work() -> None:
            for binary in FAMILIES.values():
                _remove_family(binary, chain(short))
            _flush(dns_responder.redirected_dns)

        run_in(where.netns, work)
    _kill(order.fault_id, short)


def leftovers() -> list[str]:
    """CHAOSPLANE chains and jumps in the nat table of this namespace (iptables.leftovers reads filter)."""
    found = []
    for binary in FAMILIES.values():
        try:
            listing = run([binary, "-w", "-t", "nat", "-S"], check=False).stdout
        except FileNotFoundError:
            continue
        found += [f"{binary} nat: {line}" for line in listing.splitlines() if iptables.PREFIX in line]
    return found


def running() -> list[str]:
    with _lock:
        return [fid for fid, child in _running.items() if child.poll() is None]


def capability() -> tuple[str, bool, str]:
    """dns-proxy: nat REDIRECT, the owner match and ctnetlink, tried in a namespace made for it."""
    if shutil.which("iptables") is None:
        return DNS_PROXY, False, "iptables is not installed"
    name = f"chaosplane-dnsprobe-{os.getpid()}"
    try:
        run(["ip", "netns", "add", name])
    except (CommandFailed, FileNotFoundError) as error:
        return DNS_PROXY, False, f"cannot make a network namespace to probe in: {error}"
    try:
        def probe() -> None:
            run(["iptables", "-w", "-t", "nat", "-N", "CHAOSPLANE-probe-DNS"])
            run(["iptables", "-w", "-t", "nat", "-A", "CHAOSPLANE-probe-DNS", "-m", "owner", "--gid-owner",
                 str(GID_BASE), "-j", "RETURN"])
            run(["iptables", "-w", "-t", "nat", "-A", "CHAOSPLANE-probe-DNS", "-p", "udp", "--dport", "53", "-j",
                 "REDIRECT", "--to-ports", "5353"])
            run(["iptables", "-w", "-t", "nat", "-I", "OUTPUT", "1", "-j", "CHAOSPLANE-probe-DNS"])
            with dns_responder.Conntrack() as ct:
                ct.entries()

        run_in(f"/run/netns/{name}", probe)
    except (CommandFailed, OSError) as error:
        return DNS_PROXY, False, f"iptables nat REDIRECT with the owner match, or ctnetlink, failed: {error}"
    finally:
        run(["ip", "netns", "del", name], check=False)  # takes the probe's rules with it
    return DNS_PROXY, True, "iptables nat REDIRECT + owner match + ctnetlink; the agent's own responder"


#: (kind, action) -> (inject, recover), merged into nodeagent.executors.REGISTRY.
EXECUTORS: dict[tuple[str, str], tuple[Callable[[FaultOrder], str], Callable[[FaultOrder], None]]] = {
    ("DNSChaos", "error"): (inject, recover),
    ("DNSChaos", "random"): (inject, recover),
    ("PhysicalMachineChaos", "network-dns"): (inject, recover),
}

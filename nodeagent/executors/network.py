"""NetworkChaos and PhysicalMachineChaos network-* faults, in the target's network namespace.

- partition: iptables DROP in the fault's own chains. One direction only is cut by conntrack's
  direction: "to" drops packets of connections the target opens towards the peers (its replies to
  connections they open still pass), "from" the reverse; "both" drops everything.
- loss: iptables statistic DROP, on the receiver side (INPUT) for "from", on OUTPUT for "to" (the
  sending application then sees EPERM for a dropped UDP datagram; TCP retransmits).
- bandwidth: tbf on egress; ingress ("from") through an ifb device and a mirred redirect.
- delay: tc netem where the kernel has it (and no peers are named); otherwise NFQUEUE to a delayer
  thread of the agent. duplicate and corrupt need netem and are refused without it.

Direction is the catalogue's: "to" is traffic from the target to the peers, "from" from them to it.
"""
from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass, field
from typing import Any

from nodeagent.orders import FaultOrder, Refused

from . import delayer, iptables, probe, tc, validate
from .namespaces import CommandFailed, Resolved, resolve, run_in

Net = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True)
class Peer:
    net: Net
    port: int | None = None


@dataclass
class Spec:
    direction: str = "to"
    peers: list[Peer] = field(default_factory=list)
    device: str | None = None
    protocol: str | None = None  # tcp | udp | icmp | None (all)
    sports: list[str] = field(default_factory=list)  # the target's ports (physical source-port)
    dports: list[str] = field(default_factory=list)  # the peers' ports (physical egress-port)
    accept_flags: list[str] | None = None


def params(order: FaultOrder) -> dict[str, Any]:
    """PhysicalMachineChaos nests an action's fields under its name; NetworkChaos does not."""
    p = order.params
    if not isinstance(p, dict):
        raise Refused("params must be an object")
    inner = p.get(order.action)
    return inner if order.kind == "PhysicalMachineChaos" and isinstance(inner, dict) else p


def _resolve_host(name: str) -> list[Net]:
    try:
        infos = socket.getaddrinfo(validate.hostname(name), None, proto=socket.IPPROTO_TCP)
    except socket.gaierror as error:
        raise Refused(f"host name {name} does not resolve: {error}") from None
    return sorted({ipaddress.ip_network(info[4][0]) for info in infos}, key=str)


def external_target(value: Any) -> list[Peer]:
    """IP, CIDR or host name, with an optional :port ([v6]:port for IPv6)."""
    raw = validate.text(value, "externalTargets item", 300).strip()
    host, port = raw, None
    if raw.startswith("["):
        host, _, rest = raw[1:].partition("]")
        if rest:
            if not rest.startswith(":"):
                raise Refused(f"externalTargets: {raw[:60]!r} is not [IPv6]:port")
            port = validate.port(rest[1:])
    elif raw.count(":") == 1:
        host, port_text = raw.split(":")
        port = validate.port(port_text)
    try:
        return [Peer(ipaddress.ip_network(host, strict=False), port)]
    except ValueError:
        pass
    return [Peer(net, port) for net in _resolve_host(host)]


def spec(order: FaultOrder) -> Spec:
    p = params(order)
    s = Spec()
    if order.kind == "NetworkChaos":
        s.direction = validate.choice(p.get("direction", "to"), "direction", ("to", "from", "both"))
        targets = p.get("externalTargets") or []
        if not isinstance(targets, list) or len(targets) > 256:
            raise Refused("externalTargets must be a list of at most 256 items")
        s.peers = [peer for item in targets for peer in external_target(item)]
    else:
        if "direction" in p:
            s.direction = validate.choice(p["direction"], "direction", ("to", "from"))
        if "ip-address" in p:
            s.peers += [Peer(validate.network(item)) for item in validate.comma_list(p["ip-address"], "ip-address")]
        if "hostname" in p:
            s.peers += [Peer(net) for item in validate.comma_list(p["hostname"], "hostname")
                        for net in _resolve_host(item)]
        if "ip-protocol" in p:
            proto = validate.choice(p["ip-protocol"], "ip-protocol", ("tcp", "udp", "icmp", "all"))
            s.protocol = None if proto == "all" else proto
        if "source-port" in p:
            s.sports = validate.ports(p["source-port"])
        if "egress-port" in p:
            s.dports = validate.ports(p["egress-port"])
        if (s.sports or s.dports) and s.protocol not in ("tcp", "udp"):
            raise Refused("source-port and egress-port need ip-protocol tcp or udp")
        if "accept-tcp-flags" in p:
            if s.protocol != "tcp":
                raise Refused("accept-tcp-flags needs ip-protocol tcp")
            s.accept_flags = validate.tcp_flags(p["accept-tcp-flags"])
    if p.get("device") is not None:
        s.device = validate.interface(p["device"])
    return s


def _matches(s: Spec, hook: str) -> list[tuple[int, list[str]]]:
    """(family, iptables match argv) for each peer, or one per family when there is none."""
    out_ = hook == "O"
    dev = (["-o" if out_ else "-i", s.device] if s.device else [])
    ports: list[str] = []
    if s.dports:
        ports += ["-m", "multiport", "--dports" if out_ else "--sports", ",".join(s.dports)]
    if s.sports:
        ports += ["-m", "multiport", "--sports" if out_ else "--dports", ",".join(s.sports)]
    proto = ["-p", s.protocol] if s.protocol else []
    if not s.peers:
        # Never the loopback: a fault on "all traffic" must not cut the agent's own local sockets.
        lo = ["!", "-o" if out_ else "-i", "lo"] if not s.device else []
        return [(family, [*dev, *lo, *proto, *ports]) for family in (4, 6)]
    found = []
    for peer in s.peers:
        addr = ["-d" if out_ else "-s", str(peer.net)]
        if peer.port is None:
            found.append((peer.net.version, [*dev, *addr, *proto, *ports]))
            continue
        for p in [s.protocol] if s.protocol in ("tcp", "udp") else ["tcp", "udp"]:
            found.append((peer.net.version, [*dev, *addr, "-p", p, "--dport" if out_ else "--sport",
                                             str(peer.port), *ports]))
    return found


def _hooks(direction: str) -> list[str]:
    return {"to": ["O"], "from": ["I"], "both": ["O", "I"]}[direction]


def _rules(s: Spec, target: list[str], one_way: bool = False) -> list[tuple[int, str, list[str]]]:
    rules = []
    for hook in _hooks(s.direction):
        conn = ["-m", "conntrack", "--ctdir", "ORIGINAL"] if one_way and s.direction != "both" else []
        if s.accept_flags:
            for family in (4, 6):
                rules.append((family, hook, ["-p", "tcp", "--tcp-flags", *s.accept_flags, "-j", "RETURN"]))
        rules += [(family, hook, [*match, *conn, *target]) for family, match in _matches(s, hook)]
    return rules


def _families(rules: list[tuple[int, str, list[str]]]) -> list[tuple[int, str, list[str]]]:
    """Accept rules only for families that have a fault rule."""
    used = {f for f, _, spec in rules if spec[-2:] != ["-j", "RETURN"]}
    return [r for r in rules if r[0] in used]


# The actions ---------------------------------------------------------------------------------------


@dataclass
class Plan:
    """What one order does in its namespace; built (and so validated) before anything runs."""

    where: Resolved
    short: str
    rules: list[tuple[int, str, list[str]]] = field(default_factory=list)
    qdisc: list[str] | None = None
    devices: list[str] | None = None
    egress: bool = False
    ingress: bool = False
    delay: tuple[float, float] | None = None
    what: list[str] = field(default_factory=list)


def _loss_rules(s: Spec, share: float) -> list[tuple[int, str, list[str]]]:
    probability = f"{share / 100:.6f}"
    return _rules(s, ["-m", "statistic", "--mode", "random", "--probability", probability, "-j", "DROP"])


def _delay_values(d: dict[str, Any], latency_key: str = "latency") -> tuple[int, int, float]:
    latency = validate.duration_ns(d.get(latency_key), "latency", maximum_s=60)
    jitter = validate.duration_ns(d["jitter"], "jitter", maximum_s=60) if d.get("jitter") is not None else 0
    corr = validate.percent(d.get("correlation", 0), "correlation")
    if latency <= 0:
        raise Refused("latency must be more than 0")
    return latency, jitter, corr


def _share(d: Any, key: str) -> tuple[float, float]:
    if not isinstance(d, dict):
        raise Refused(f"{key} must be an object")
    share = validate.percent(d.get(key), key)
    if share <= 0:
        raise Refused(f"{key} must be more than 0")
    return share, validate.percent(d.get("correlation", 0), "correlation")


def _netem_ok(s: Spec) -> bool:
    return probe.have(probe.NETEM) and not s.peers and not s.sports and not s.dports and not s.protocol


def plan(order: FaultOrder) -> Plan:
    s = spec(order)
    p = params(order)
    pl = Plan(resolve(order.target), validate.short_id(order.fault_id))
    action = order.action.removeprefix("network-") if order.kind == "PhysicalMachineChaos" else order.action
    peers = ", ".join(str(peer.net) + (f":{peer.port}" if peer.port else "") for peer in s.peers) or "all"
    if action == "partition":
        pl.rules = _families(_rules(s, ["-j", "DROP"], one_way=True))
        pl.what.append(f"partition {s.direction} {peers}")
        return pl
    if action == "bandwidth":
        b = p.get("bandwidth", p) if order.kind == "NetworkChaos" else p
        if not isinstance(b, dict):
            raise Refused("bandwidth must be an object")
        if s.peers or s.sports or s.dports:
            raise Refused("bandwidth limits a whole device here: limiting towards some peers only is not supported")
        rate = validate.rate_bits(b.get("rate"))
        limit = validate.integer(b.get("limit"), "limit", 1, 2**32 - 1)
        buffer = validate.integer(b.get("buffer"), "buffer", 1, 2**32 - 1)
        peak = validate.integer(b["peakrate"], "peakrate", 0, 2**40) if b.get("peakrate") is not None else None
        minburst = validate.integer(b["minburst"], "minburst", 0, 2**32 - 1) if b.get("minburst") is not None else None
        pl.qdisc = tc.tbf(rate, limit, buffer, peak, minburst)
        pl.egress, pl.ingress = s.direction in ("to", "both"), s.direction in ("from", "both")
        pl.devices = [s.device] if s.device else None
        pl.what.append(f"bandwidth {rate}bit {s.direction}")
        return pl
    # delay, loss, duplicate, corrupt, netem (several at once)
    parts: dict[str, Any] = {}
    if order.kind == "NetworkChaos":
        names = ["delay", "loss", "duplicate", "corrupt", "rate"] if action == "netem" else [action]
        parts = {n: p[n] for n in names if p.get(n) is not None}
        if not parts:
            raise Refused(f"{action}: nothing to do (give {' or '.join(names)})")
    elif action == "delay":
        parts = {"delay": p}
    elif action in ("loss", "duplicate", "corrupt"):
        parts = {action: {action: p.get("percent"), "correlation": p.get("correlation", 0)}}
    else:
        raise Refused(f"{order.kind} {order.action} is not supported by this agent")
    if _netem_ok(s):
        return _netem_plan(pl, s, parts)
    for name in ("duplicate", "corrupt"):
        if name in parts:
            raise Refused(f"{name} needs tc netem, which this host's kernel does not have"
                          if not probe.have(probe.NETEM) else
                          f"{name} towards some peers or ports only is not supported (netem shapes a whole device)")
    if "rate" in parts:
        raise Refused("rate needs tc netem here; use the bandwidth action")
    if "loss" in parts:
        share, _ = _share(parts["loss"], "loss")
        pl.rules += _loss_rules(s, share)
        pl.what.append(f"loss {share:g}% {s.direction} {peers} (iptables statistic; correlation not applied)")
    if "delay" in parts:
        if not probe.have(probe.NFQUEUE):
            raise Refused("delay needs tc netem or the NFQUEUE userspace path; this host has neither")
        d = parts["delay"]
        if not isinstance(d, dict):
            raise Refused("delay must be an object")
        latency, jitter, _ = _delay_values(d)
        queue = delayer.queue_number(pl.short)
        pl.rules += _rules(s, ["-j", "NFQUEUE", "--queue-num", str(queue), "--queue-bypass"])
        pl.delay = (latency / 1e9, jitter / 1e9)
        pl.what.append(f"delay {latency / 1e6:g}ms +-{jitter / 1e6:g}ms {s.direction} {peers} "
                       f"(userspace NFQUEUE {queue}; correlation and reorder not applied)")
    pl.rules = _families(pl.rules)
    return pl


def _netem_plan(pl: Plan, s: Spec, parts: dict[str, Any]) -> Plan:
    kw: dict[str, Any] = {}
    if "delay" in parts:
        d = parts["delay"]
        if not isinstance(d, dict):
            raise Refused("delay must be an object")
        latency, jitter, corr = _delay_values(d)
        kw.update(delay_us=latency // 1000, jitter_us=jitter // 1000, correlation=corr)
        r = d.get("reorder")
        if isinstance(r, dict):
            kw.update(reorder=validate.percent(r.get("reorder"), "reorder"),
                      reorder_corr=validate.percent(r.get("correlation", 0), "correlation"),
                      gap=validate.integer(r.get("gap", 0), "gap", 0, 2**31))
    for name in ("loss", "duplicate", "corrupt"):
        if name in parts:
            kw[name] = _share(parts[name], name)[0]
    if "rate" in parts:
        kw["rate_bits"] = validate.rate_bits(parts["rate"].get("rate") if isinstance(parts["rate"], dict) else None)
    pl.qdisc = tc.netem(**kw)
    pl.egress, pl.ingress = s.direction in ("to", "both"), s.direction in ("from", "both")
    pl.devices = [s.device] if s.device else None
    pl.what.append(f"netem {' '.join(pl.qdisc[1:])} {s.direction}")
    return pl


def inject(order: FaultOrder) -> str:
    pl = plan(order)  # everything validated, resolved and refused before the first command

    def work() -> None:
        if pl.rules:
            iptables.install(pl.short, pl.rules)
        if pl.qdisc is not None:
            devices = pl.devices or tc.links()
            if not devices:
                raise Refused("no network device in the target's namespace")
            tc.install(pl.short, devices, pl.qdisc, pl.egress, pl.ingress)

    recover(order)  # a retried order starts from clean: what a previous attempt made is not doubled
    try:
        if pl.delay is not None:  # bound to its queue before the rules send packets there
            delayer.start(order.fault_id, pl.where.netns, delayer.queue_number(pl.short), *pl.delay)
        run_in(pl.where.netns, work)
    except BaseException as error:
        recover(order)  # a half-made fault comes back out before the error is reported
        if isinstance(error, CommandFailed):
            raise Refused(f"could not apply the fault: {error}") from None
        raise
    return f"{'; '.join(pl.what)} in {pl.where.description}"


def recover(order: FaultOrder) -> None:
    short = validate.short_id(order.fault_id)
    delayer.stop(order.fault_id)  # its rules use --queue-bypass: packets pass while the rules go
    try:
        where = resolve(order.target)
    except Refused:
        return  # the namespace is gone, and with it every rule and qdisc of the fault

    def work() -> None:
        iptables.remove(short)
        tc.remove(short)

    run_in(where.netns, work)

"""Root qdiscs (tbf, netem) of one fault on a namespace's devices, egress directly and ingress through
an ifb device with a mirred redirect (Linux shapes only egress). Called from a thread already inside
the target namespace.

Names come from the fault's short id: the qdisc handle (so recovery deletes only its own root qdisc)
and the ifb devices, cpi<10 hex><index>, so recovery finds them from the order alone.
"""
from __future__ import annotations

import json

from nodeagent.orders import Refused

from .namespaces import CommandFailed, run

IFB_PREFIX = "cpi"


def handle(short: str) -> str:
    # Majors 0x1000-0xefff: never the kernel's default 0: nor ingress's ffff:.
    return f"{0x1000 + int(short[:4], 16) % 0xE000:x}:"


def ifb_name(short: str, index: int) -> str:
    return f"{IFB_PREFIX}{short[:10]}{index:x}"


def links() -> list[str]:
    data = json.loads(run(["ip", "-j", "link", "show"]).stdout or "[]")
    return [link["ifname"] for link in data if link["ifname"] != "lo" and not link["ifname"].startswith(IFB_PREFIX)]


def _qdiscs(device: str) -> list[dict[str, object]]:
    return json.loads(run(["tc", "-j", "qdisc", "show", "dev", device]).stdout or "[]")


def _check_free(device: str, ingress: bool) -> None:
    for q in _qdiscs(device):
        if q.get("root") and q.get("handle") != "0:" and not ingress:
            raise Refused(f"{device} already has a root qdisc ({q.get('kind')} {q.get('handle')}): another fault?")
        if q.get("kind") in ("ingress", "clsact") and ingress:
            raise Refused(f"{device} already has an ingress qdisc: another fault?")


def install(short: str, devices: list[str], qdisc: list[str], egress: bool, ingress: bool) -> None:
    """qdisc: the argv tail after `handle H:`, e.g. ["tbf", "rate", "1000000bit", ...]."""
    present = set(links())
    for device in devices:
        if device not in present:
            raise Refused(f"no device {device} in the target's network namespace")
        if egress:
            _check_free(device, ingress=False)
        if ingress:
            _check_free(device, ingress=True)
    ours = handle(short)
    for index, device in enumerate(devices):
        if egress:
            run(["tc", "qdisc", "add", "dev", device, "root", "handle", ours, *qdisc])
        if ingress:
            ifb = ifb_name(short, index)
            run(["ip", "link", "add", ifb, "type", "ifb"])
            run(["ip", "link", "set", ifb, "up"])
            run(["tc", "qdisc", "add", "dev", ifb, "root", "handle", ours, *qdisc])
            run(["tc", "qdisc", "add", "dev", device, "handle", "ffff:", "ingress"])
            run(["tc", "filter", "add", "dev", device, "parent", "ffff:", "protocol", "all", "u32", "match", "u32",
                 "0", "0", "action", "mirred", "egress", "redirect", "dev", ifb])


def remove(short: str) -> None:
    ours, mine = handle(short), f"{IFB_PREFIX}{short[:10]}"
    for device in links():
        try:
            qdiscs = _qdiscs(device)
        except CommandFailed:
            continue
        if any(q.get("root") and q.get("handle") == ours for q in qdiscs):
            run(["tc", "qdisc", "del", "dev", device, "root"], check=False)
        if any(q.get("kind") == "ingress" for q in qdiscs):
            # Only the ingress qdisc whose redirect goes to one of our ifb devices.
            filters = run(["tc", "filter", "show", "dev", device, "parent", "ffff:"], check=False).stdout
            if mine in filters:
                run(["tc", "qdisc", "del", "dev", device, "ingress"], check=False)
    data = json.loads(run(["ip", "-j", "link", "show"]).stdout or "[]")
    for link in data:
        if link["ifname"].startswith(mine):
            run(["ip", "link", "del", link["ifname"]], check=False)


def leftovers() -> list[str]:
    """Root qdiscs other than the default, ingress qdiscs, and ifb devices of any fault, here."""
    found = []
    data = json.loads(run(["ip", "-j", "link", "show"]).stdout or "[]")
    for link in data:
        name = link["ifname"]
        if name.startswith(IFB_PREFIX):
            found.append(f"ifb device {name}")
            continue
        for q in _qdiscs(name):
            if (q.get("root") and q.get("handle") != "0:") or q.get("kind") in ("ingress", "clsact"):
                found.append(f"qdisc {q.get('kind')} {q.get('handle')} on {name}")
    return found


def tbf(rate_bits: int, limit: int, buffer: int, peakrate_bytes: int | None, minburst: int | None) -> list[str]:
    argv = ["tbf", "rate", f"{rate_bits}bit", "burst", str(buffer), "limit", str(limit)]
    if peakrate_bytes:
        argv += ["peakrate", f"{peakrate_bytes * 8}bit", "mtu", str(minburst or 1600)]
    return argv


def netem(delay_us: int = 0, jitter_us: int = 0, correlation: float = 0, loss: float = 0, duplicate: float = 0,
          corrupt: float = 0, reorder: float = 0, reorder_corr: float = 0, gap: int = 0,
          rate_bits: int = 0) -> list[str]:
    """tc netem's argv, for kernels that have sch_netem (detected as the `netem` capability)."""
    argv = ["netem"]
    if delay_us:
        argv += ["delay", f"{delay_us}us", f"{jitter_us}us", f"{correlation:g}%"]
        if reorder:
            argv += ["reorder", f"{reorder:g}%", f"{reorder_corr:g}%"] + (["gap", str(gap)] if gap else [])
    if loss:
        argv += ["loss", f"{loss:g}%"]
    if duplicate:
        argv += ["duplicate", f"{duplicate:g}%"]
    if corrupt:
        argv += ["corrupt", f"{corrupt:g}%"]
    if rate_bits:
        argv += ["rate", f"{rate_bits}bit"]
    return argv

"""Every value that reaches a command or a syscall is checked here first, and refused (Refused) with
the reason when it is not exactly what it claims to be. Checks are allowlists (patterns, ranges), not
blocklists: a value either has the shape of an interface name, an address, a port, ... or it is refused.

The control plane validates too (injector.faults), but the agent trusts nothing that came over the
wire: it is the last line before argv lists that run as root.
"""
from __future__ import annotations

import hashlib
import ipaddress
import re
import signal as _signal
from decimal import Decimal, InvalidOperation
from typing import Any

from nodeagent.orders import Refused

MAX_TEXT = 256  # no field of ours is longer; a 10 kB string is refused before any pattern runs

_IFNAME = re.compile(r"[a-zA-Z0-9][a-zA-Z0-9_.-]{0,14}")  # IFNAMSIZ 16 with the NUL; no ':' or '/'
_NETNS = re.compile(r"[a-zA-Z0-9][a-zA-Z0-9_.-]{0,63}")
# /proc/PID/comm holds at most 15 bytes; names with shell or path characters are refused outright.
_COMM = re.compile(r"[a-zA-Z0-9_][a-zA-Z0-9_.:@+-]{0,14}")
_FAULT_ID = re.compile(r"[a-zA-Z0-9][a-zA-Z0-9_.:-]{0,127}")
_CONTAINER_ID = re.compile(r"[a-zA-Z0-9][a-zA-Z0-9_.-]{0,127}")
_LABEL = r"[a-zA-Z0-9]([-a-zA-Z0-9]{0,61}[a-zA-Z0-9])?"
_HOSTNAME = re.compile(rf"(?=.{{1,253}}$)({_LABEL})(\.{_LABEL})*")
_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h)")
_DURATION_UNITS = {"ns": 1, "us": 10**3, "µs": 10**3, "μs": 10**3, "ms": 10**6, "s": 10**9, "m": 60 * 10**9,
                   "h": 3600 * 10**9}
_SIZE = re.compile(r"(\d{1,15})\s*(b|kb|mb|gb|tb|kib|mib|gib|tib|k|m|g|t)?", re.IGNORECASE)
_SIZE_UNITS = {"": 1, "b": 1, "kb": 10**3, "mb": 10**6, "gb": 10**9, "tb": 10**12, "kib": 2**10, "mib": 2**20,
               "gib": 2**30, "tib": 2**40, "k": 2**10, "m": 2**20, "g": 2**30, "t": 2**40}
_RATE = re.compile(r"(\d{1,15}(?:\.\d{1,6})?)\s*([a-z]+)", re.IGNORECASE)
_RATE_UNITS = {"bit": 1, "kbit": 10**3, "mbit": 10**6, "gbit": 10**9, "tbit": 10**12, "kibit": 2**10,
               "mibit": 2**20, "gibit": 2**30, "bps": 8, "kbps": 8 * 10**3, "mbps": 8 * 10**6, "gbps": 8 * 10**9,
               "tbps": 8 * 10**12, "kibps": 8 * 2**10, "mibps": 8 * 2**20, "gibps": 8 * 2**30}
_TCP_FLAGS = {"SYN", "ACK", "FIN", "RST", "URG", "PSH", "ALL", "NONE"}


def text(value: Any, what: str, max_length: int = MAX_TEXT) -> str:
    if not isinstance(value, str):
        raise Refused(f"{what}: {_show(value)} is not text")
    if not value or len(value) > max_length:
        raise Refused(f"{what}: must be 1 to {max_length} characters, not {len(value)}")
    return value


def _show(value: Any) -> str:
    shown = repr(value)
    return shown if len(shown) <= 60 else shown[:57] + "..."


def _match(pattern: re.Pattern[str], value: Any, what: str, shape: str, max_length: int = MAX_TEXT) -> str:
    value = text(value, what, max_length)
    if not pattern.fullmatch(value):
        raise Refused(f"{what}: {_show(value)} is not {shape}")
    return value


def interface(value: Any) -> str:
    name = _match(_IFNAME, value, "interface", "an interface name (letters, digits, _ . -; at most 15)", 15)
    if name in (".", ".."):
        raise Refused(f"interface: {name!r} is not an interface name")
    return name


def netns_name(value: Any) -> str:
    name = _match(_NETNS, value, "network namespace", "a namespace name (letters, digits, _ . -)", 64)
    if set(name) <= {"."}:
        raise Refused(f"network namespace: {name!r} is not a namespace name")
    return name


def fault_id(value: Any) -> str:
    return _match(_FAULT_ID, value, "fault id", "a fault id (letters, digits, _ . : -)", 128)


def short_id(fid: str) -> str:
    """12 hex digits naming everything a fault creates (chains, ifb devices, queues), so recovery can
    find them from the order alone, even after the agent restarted."""
    return hashlib.sha256(fault_id(fid).encode()).hexdigest()[:12]


def container_id(value: Any) -> str:
    return _match(_CONTAINER_ID, value, "container id", "a container id (letters, digits, _ . -)", 128)


def pid(value: Any) -> int:
    if isinstance(value, str) and value.isdigit() and len(value) <= 10:
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or not 1 < value <= 4194304:
        raise Refused(f"pid: {_show(value)} is not a process id (2 to 4194304)")
    return value


def process_name(value: Any) -> str:
    return _match(_COMM, value, "process name", "a process name (letters, digits, _ . : @ + -; at most 15)",
                  15)


def signal_number(value: Any) -> int:
    if isinstance(value, str) and value.isdigit() and len(value) <= 2:
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= _signal.SIGRTMAX:
        raise Refused(f"signal: {_show(value)} is not a signal number (1 to {int(_signal.SIGRTMAX)})")
    return value


def port(value: Any) -> int:
    if isinstance(value, str) and value.isdigit() and len(value) <= 5:
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 65535:
        raise Refused(f"port: {_show(value)} is not a port (1 to 65535)")
    return value


def ports(value: Any) -> list[str]:
    """Chaos Mesh's "80,8001:8010": each item a port or an ascending range, in iptables' spelling."""
    out = []
    for item in text(value, "ports").split(","):
        low, _, high = item.strip().partition(":")
        first, last = port(low), port(high) if high else None
        if last is not None and last < first:
            raise Refused(f"ports: {item!r} is not an ascending range")
        out.append(f"{first}:{last}" if last is not None else str(first))
    if len(out) > 15:  # iptables multiport takes at most 15
        raise Refused("ports: at most 15 ports or ranges")
    return out


def network(value: Any) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    """An IP address or a CIDR; host bits are allowed (10.0.0.1/24 means 10.0.0.0/24)."""
    value = text(value, "address", 64)
    try:
        return ipaddress.ip_network(value.strip(), strict=False)
    except ValueError:
        raise Refused(f"address: {_show(value)} is not an IP address or a CIDR") from None


def address(value: Any) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    value = text(value, "address", 64)
    try:
        return ipaddress.ip_address(value)
    except ValueError:
        raise Refused(f"address: {_show(value)} is not an IP address") from None


def hostname(value: Any) -> str:
    name = _match(_HOSTNAME, value, "host name", "a host name", 253)
    if name.replace(".", "").isdigit():
        raise Refused(f"host name: {name!r} is not a host name")
    return name


def percent(value: Any, what: str = "percent") -> float:
    """0-100 from 30, "30", "30%" or "0.5"; returned as a number."""
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise Refused(f"{what}: {_show(value)} is not a percentage")
    raw = text(value, what, 32) if isinstance(value, str) else str(value)
    raw = raw.strip().removesuffix("%")
    try:
        number = Decimal(raw)
    except InvalidOperation:
        raise Refused(f"{what}: {_show(value)} is not a percentage (0 to 100)") from None
    if not number.is_finite() or not 0 <= number <= 100:
        raise Refused(f"{what}: {_show(value)} is not a percentage (0 to 100)")
    return float(number)


def duration_ns(value: Any, what: str = "duration", maximum_s: int = 3600) -> int:
    """A Go duration ("100ms", "1.5s"); non-negative, at most `maximum_s` seconds."""
    raw = text(value, what, 32).strip()
    if raw == "0":
        return 0
    position, total = 0, Decimal(0)
    for match in _DURATION_PART.finditer(raw):
        if match.start() != position:
            break
        total += Decimal(match.group(1)) * _DURATION_UNITS[match.group(2)]
        position = match.end()
    if position == 0 or position != len(raw):
        raise Refused(f"{what}: {_show(value)} is not a duration (e.g. 100ms, 1.5s)")
    if total > maximum_s * 10**9:
        raise Refused(f"{what}: {_show(value)} is more than {maximum_s}s")
    return int(total)


def size(value: Any, what: str = "size") -> str:
    """Bytes ("256MB", "1GiB", 4096) or a share ("50%"), in stress-ng's spelling ("268435456b", "50%")."""
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise Refused(f"{what}: {_show(value)} is not a size")
    raw = text(str(value), what, 32).strip()
    if raw.endswith("%"):
        share = percent(raw, what)
        if share <= 0:
            raise Refused(f"{what}: must be more than 0%")
        return f"{share:g}%"
    match = _SIZE.fullmatch(raw)
    if not match:
        raise Refused(f"{what}: {_show(value)} is not a size (e.g. 256MB, 1GiB or 50%)")
    amount = int(match.group(1)) * _SIZE_UNITS[(match.group(2) or "").lower()]
    if not 4096 <= amount <= 2**50:
        raise Refused(f"{what}: {_show(value)} is out of range (4KiB to 1PiB)")
    return f"{amount}b"


def rate_bits(value: Any, what: str = "rate") -> int:
    """A tc rate ("1mbit", "125kbps" = bytes/s) in bits per second."""
    raw = text(value, what, 32).strip()
    match = _RATE.fullmatch(raw)
    unit = match.group(2).lower() if match else ""
    if not match or unit not in _RATE_UNITS:
        raise Refused(f"{what}: {_show(value)} is not a rate (e.g. 1mbit, 125kbps)")
    bits = int(Decimal(match.group(1)) * _RATE_UNITS[unit])
    if not 8 <= bits <= 10**13:
        raise Refused(f"{what}: {_show(value)} is out of range")
    return bits


def integer(value: Any, what: str, minimum: int, maximum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not minimum <= value <= maximum:
        raise Refused(f"{what}: {_show(value)} is not a whole number from {minimum} to {maximum}")
    return value


def choice(value: Any, what: str, choices: tuple[str, ...]) -> str:
    if value not in choices:
        raise Refused(f"{what}: {_show(value)} is not one of {', '.join(choices)}")
    return str(value)


def tcp_flags(value: Any) -> list[str]:
    """iptables --tcp-flags "MASK SET", e.g. "SYN,ACK SYN,ACK": two argv items."""
    parts = text(value, "accept-tcp-flags", 64).split(" ")
    if len(parts) != 2 or not all(parts) or not all(set(p.split(",")) <= _TCP_FLAGS for p in parts):
        raise Refused(f"accept-tcp-flags: {_show(value)} is not a TCP flag mask and set such as 'SYN,ACK SYN'")
    return parts


def comma_list(value: Any, what: str) -> list[str]:
    items = [item.strip() for item in text(value, what, 4096).split(",")]
    if not all(items) or len(items) > 64:
        raise Refused(f"{what}: {_show(value)} must be 1 to 64 comma-separated items")
    return items

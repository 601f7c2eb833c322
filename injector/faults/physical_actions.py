"""The actions of PhysicalMachineChaos (chaosd on hosts), one per Chaos Mesh action: each takes its
parameters under the spec key of its own name (`stress-cpu: {load: 10, workers: 1}`), with chaosd's
field names. Field types, limits and requirements follow Chaos Mesh's PhysicalMachineChaos webhook
and chaosd, checked harder (absolute paths, addresses, ports, signal numbers, enums).

Shell strings are never run: fields that hold one (`process.recoverCmd`, `kafka-fill.reloadCommand`)
are refused with the reason, and so are inline passwords (`redis-*.password`, `kafka-*.password`).
"""
from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from .model import Action, Capability, Target
from .params import (
    Bool,
    DurationType,
    Enum,
    Field,
    FieldError,
    FieldErrors,
    Int,
    ListOf,
    Obj,
    PercentType,
    Str,
    flatten,
    join,
)
from .units import Duration

SHELL_REFUSED = "holds a shell command; Chaosplane never runs shell strings, so this field is refused"
NO_INLINE_CREDENTIALS = (
    "is an inline password; Chaosplane never stores credentials in a fault definition, so this field is refused"
)

# Types --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Guarded(Obj):
    """An Obj that refuses some keys with a reason (a shell command, a password) rather than as unknown."""

    refused: tuple[tuple[str, str], ...] = ()

    def parse(self, value: Any, path: str) -> dict[str, Any]:
        reasons = dict(self.refused)
        if isinstance(value, dict) and any(k in reasons and value[k] not in (None, "") for k in value):
            errors = [
                FieldError(join(path, k), reasons[k]) for k in value if k in reasons and value[k] not in (None, "")
            ]
            try:
                super().parse({k: v for k, v in value.items() if k not in reasons}, path)
            except (FieldError, FieldErrors) as error:
                errors.extend(flatten(error))
            raise FieldErrors(errors)
        if isinstance(value, dict):
            value = {k: v for k, v in value.items() if k not in reasons}
        return super().parse(value, path)


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
        return True
    except ValueError:
        return False


def _is_ip_or_cidr(text: str) -> bool:
    try:
        ipaddress.ip_network(text, strict=False)
        return True
    except ValueError:
        return False


_LABEL = r"[a-zA-Z0-9]([-a-zA-Z0-9]{0,61}[a-zA-Z0-9])?"
_HOSTNAME = re.compile(rf"(?=.{{1,253}}$)({_LABEL})(\.{_LABEL})*")


def _is_hostname(text: str) -> bool:
    return bool(_HOSTNAME.fullmatch(text)) and not text.replace(".", "").isdigit()


def _is_host(text: str) -> bool:
    return _is_ip(text) or _is_hostname(text)


def _is_port_or_range(text: str) -> bool:
    low, _, high = text.partition(":")
    if not low.isdigit() or (high and not high.isdigit()):
        return False
    first, last = int(low), int(high or low)
    return 1 <= first <= last <= 65535


@dataclass(frozen=True)
class CommaList(Str):
    """Chaos Mesh's comma-separated strings ("10.0.0.1,10.0.0.0/24"): each item checked, the text kept."""

    item: Callable[[str], bool] | None = None
    item_help: str = ""

    def parse(self, value: Any, path: str) -> str:
        text = super().parse(value, path)
        for part in text.split(","):
            if not part.strip():
                raise FieldError(path, f"{text!r} has an empty item: separate items with single commas")
            if self.item is not None and not self.item(part.strip()):
                raise FieldError(path, f"{part.strip()!r} is not {self.item_help}")
        return text


@dataclass(frozen=True)
class HostPort(Str):
    """`host:port` (`[v6]:port` for IPv6), or an http(s) URL of that when `url` is set."""

    url: bool = False
    port_required: bool = True

    def parse(self, value: Any, path: str) -> str:
        text = super().parse(value, path)
        has_scheme = "://" in text
        if has_scheme and not self.url:
            raise FieldError(path, f"{text!r}: give host:port, without a scheme")
        try:
            parts = urlsplit(text if has_scheme else f"//{text}")
            port = parts.port
        except ValueError:
            raise FieldError(path, f"{text!r}: the port must be a number from 1 to 65535") from None
        if has_scheme and parts.scheme not in ("http", "https"):
            raise FieldError(path, f"{text!r}: the scheme must be http or https")
        if parts.path.strip("/") or parts.query or parts.fragment or parts.username or parts.password:
            raise FieldError(path, f"{text!r}: give only {'scheme, ' if self.url else ''}host and port")
        if not parts.hostname or not _is_host(parts.hostname):
            raise FieldError(path, f"{text!r} does not name a host: use an IP address or a host name")
        if port == 0 or (self.port_required and port is None):
            raise FieldError(path, f"{text!r}: give a port from 1 to 65535 after the host, e.g. {parts.hostname}:6379")
        return text


ABS_PATH = Str(
    min_length=2,
    max_length=4096,
    pattern=r"/[^\x00\n]*[^/\x00\n]",
    pattern_help="an absolute path such as /var/lib/app",
)
DEVICE = Str(max_length=15, pattern=r"[a-zA-Z0-9_.:-]+", pattern_help="a network interface name such as eth0")
POSITIVE = DurationType(minimum=Duration(1))
PORT = Int(minimum=1, maximum=65535)


class IPAddress(Str):
    def parse(self, value: Any, path: str) -> str:
        text = super().parse(value, path)
        if not _is_ip(text):
            raise FieldError(path, f"{text!r} is not an IP address")
        return text


class HostName(Str):
    def parse(self, value: Any, path: str) -> str:
        text = super().parse(value, path)
        if not _is_host(text):
            raise FieldError(path, f"{text!r} is not an IP address or a host name")
        return text


# Shared field groups ------------------------------------------------------------------------------


def device(help: str = "The network interface to act on, e.g. eth0.") -> Field:
    return Field("device", DEVICE, required=True, label="Device", help=help)


IP_ADDRESSES = Field(
    "ip-address",
    CommaList(item=_is_ip_or_cidr, item_help="an IP address or a CIDR"),
    label="IP addresses",
    help="Only traffic to these addresses or CIDRs, comma-separated (default: all traffic).",
)
HOSTNAMES = Field(
    "hostname",
    CommaList(item=_is_hostname, item_help="a host name"),
    label="Host names",
    help="Only traffic to these hosts, comma-separated; resolved when the fault starts.",
)
IP_PROTOCOL = Field(
    "ip-protocol", Enum(("tcp", "udp", "icmp", "all")), label="Protocol", help="Only traffic of this IP protocol."
)
ACCEPT_TCP_FLAGS = Field(
    "accept-tcp-flags",
    Str(pattern=r"[A-Z,]+ [A-Z,]+", pattern_help="iptables --tcp-flags: a mask and a set, e.g. \"SYN,ACK SYN,ACK\""),
    label="Accepted TCP flags",
    help="Packets with these TCP flags still pass (iptables --tcp-flags syntax); needs ip-protocol tcp.",
)
PORTS = CommaList(item=_is_port_or_range, item_help="a port (1-65535) or a range such as 8001:8010")


def _ports_need_protocol(values: dict[str, Any], path: str) -> None:
    for name in ("source-port", "egress-port"):
        if name in values and values.get("ip-protocol") not in ("tcp", "udp"):
            raise FieldError(join(path, "ip-protocol"), f"must be tcp or udp when {name} is given")


def _flags_need_tcp(values: dict[str, Any], path: str) -> None:
    if "accept-tcp-flags" in values and values.get("ip-protocol") != "tcp":
        raise FieldError(join(path, "ip-protocol"), "must be tcp when accept-tcp-flags is given")


NETWORK_COMMON = (
    Field("correlation", PercentType(), label="Correlation", unit="%",
          help="How much each packet's fate depends on the last one's, 0-100 (default 0)."),
    device(),
    Field("source-port", PORTS, label="Source ports",
          help="Only egress traffic from these ports, e.g. 80,8001:8010; needs ip-protocol tcp or udp."),
    Field("egress-port", PORTS, label="Destination ports",
          help="Only egress traffic to these ports, e.g. 80,8001:8010; needs ip-protocol tcp or udp."),
    IP_ADDRESSES,
    IP_PROTOCOL,
    HOSTNAMES,
)


def _share(what: str) -> Field:
    return Field("percent", PercentType(), required=True, label="Share", unit="%", help=f"Share of packets {what}.")


def _nonzero_percent(values: dict[str, Any], path: str) -> None:
    if values["percent"].value == 0:
        raise FieldError(join(path, "percent"), "must be more than 0")


JVM_COMMON = (
    Field("pid", Int(minimum=1), required=True, label="Process id", help="The Java process to attach to."),
    Field("port", PORT, default=9288, label="Agent port", help="Port of the Byteman agent chaosd installs."),
)
_JAVA_NAME = r"[A-Za-z_$][A-Za-z0-9_$]*"
CLASS_METHOD = (
    Field("class", Str(pattern=rf"{_JAVA_NAME}(\.{_JAVA_NAME})*",
                       pattern_help="a fully qualified Java class name, e.g. com.example.Main$Inner"),
          required=True, label="Class", help="The class, fully qualified, e.g. com.example.OrderService."),
    Field("method", Str(pattern=rf"{_JAVA_NAME}|<init>|<clinit>", pattern_help="a Java method name"),
          required=True, label="Method", help="The method of the class, e.g. placeOrder."),
)
EXCEPTION = Str(min_length=1, max_length=1024)

REDIS_COMMON = (
    Field("addr", HostPort(max_length=260), required=True, label="Redis address",
          help="host:port of the Redis server (or Sentinel), e.g. 127.0.0.1:6379."),
)
REDIS_REFUSED = (("password", NO_INLINE_CREDENTIALS),)
SENTINEL = (
    Field("conf", ABS_PATH, label="Sentinel config", help="Absolute path of the Sentinel configuration file."),
    Field("flushConfig", Bool(), default=False, label="Flush config",
          help="Make Sentinel rewrite its configuration on disk."),
    Field("redisPath", Bool(), label="redis-server path",
          help="Chaos Mesh declares this as true/false (the path of redis-server is meant); kept for compatibility."),
)

KAFKA_COMMON = (
    Field("topic", Str(min_length=1, max_length=249, pattern=r"[a-zA-Z0-9._-]+",
                       pattern_help="a Kafka topic name (letters, digits, . _ -, at most 249)"),
          required=True, label="Topic", help="The topic to act on."),
    Field("host", HostName(max_length=253), required=True, label="Broker host", help="Host of a Kafka broker."),
    Field("port", PORT, required=True, label="Broker port", help="Port of the Kafka broker, e.g. 9092."),
    Field("username", Str(min_length=1, max_length=256), label="User", help="SASL user name, when the broker asks."),
)
KAFKA_REFUSED = (("password", NO_INLINE_CREDENTIALS),)
MESSAGE_SIZE = Field("messageSize", Int(minimum=1, maximum=2**31 - 1), required=True, label="Message size",
                     unit="bytes", help="Bytes in each message sent.")

CLOCKS = ("CLOCK_REALTIME", "CLOCK_MONOTONIC", "CLOCK_PROCESS_CPUTIME_ID", "CLOCK_THREAD_CPUTIME_ID",
          "CLOCK_MONOTONIC_RAW", "CLOCK_REALTIME_COARSE", "CLOCK_MONOTONIC_COARSE", "CLOCK_BOOTTIME",
          "CLOCK_REALTIME_ALARM", "CLOCK_BOOTTIME_ALARM")

STRESS_OPTIONS = Field(
    "options",
    ListOf(Str(max_length=256, pattern=r"--?[a-zA-Z0-9][-a-zA-Z0-9]*([ =][^\s;&|`$<>\\]+)?",
               pattern_help="a stress-ng option such as --cpu-load-slice 10 (no shell characters)")),
    label="stress-ng options",
    help="Extra stress-ng options, one per item.",
)

FILE_NAME = Field("file-name", ABS_PATH, label="File", help="Absolute path of the file.")
DIR_NAME = Field("dir-name", ABS_PATH, label="Directory", help="Absolute path of the directory.")


def _not_both(a: str, b: str) -> Callable[[dict[str, Any], str], None]:
    def check(values: dict[str, Any], path: str) -> None:
        if a in values and b in values:
            raise FieldError(join(path, b), f"give {a} or {b}, not both")

    return check


def _true_one_of(*names: str) -> Callable[[dict[str, Any], str], None]:
    def check(values: dict[str, Any], path: str) -> None:
        if not any(values.get(n) for n in names):
            raise FieldError(join(path, names[0]), f"set at least one of {', '.join(names)} to true")

    return check


def _both_or_neither(a: str, b: str) -> Callable[[dict[str, Any], str], None]:
    def check(values: dict[str, Any], path: str) -> None:
        if (a in values) != (b in values):
            missing = b if a in values else a
            raise FieldError(join(path, missing), f"is required when {b if missing == a else a} is given")

    return check


# Actions ------------------------------------------------------------------------------------------

HOST = frozenset({Target.HOST})
PROCESS = frozenset({Target.PROCESS})


def action(
    name: str,
    label: str,
    help: str,
    fields: tuple[Field, ...],
    capability: Capability | None,
    targets: frozenset[Target] = HOST,
    validators: tuple[Callable[[dict[str, Any], str], None], ...] = (),
    refused: tuple[tuple[str, str], ...] = (),
    one_shot: bool = False,
) -> Action:
    """An action whose parameters live under the spec key of its own name."""
    params = Guarded(fields, validators=validators, refused=refused)
    return Action(
        name=name,
        label=label,
        help=help,
        fields=(Field(name, params, required=True, label=label, help=help),),
        targets=targets,
        capability=capability,
        one_shot=one_shot,
    )

"""NetworkChaos: netem (delay, loss, duplicate, corrupt, reorder), partition and bandwidth, in the
target's network namespace, in a direction, towards other pods or external addresses."""
from __future__ import annotations

import ipaddress
import re
from typing import Any

from injector.selection import POD_SELECTOR, Mode, ModeSpec

from .common import REMOTE_CLUSTER
from .model import Action, Capability, Kind, Target
from .params import (
    DurationType,
    Enum,
    Field,
    FieldError,
    Int,
    ListOf,
    Obj,
    PercentType,
    RateType,
    Str,
    one_of_required,
    requires,
)

CORRELATION = Field(
    "correlation", PercentType(), label="Correlation", unit="%", help="How much each value depends on the last (0-100)."
)

REORDER = Obj(
    (
        Field("reorder", PercentType(), required=True, label="Reorder", unit="%", help="Share sent at once."),
        CORRELATION,
        Field("gap", Int(minimum=0), required=True, label="Gap", help="Packets between reordered ones."),
    )
)

DELAY = Obj(
    (
        Field("latency", DurationType(), required=True, label="Latency", help="Added delay, e.g. 100ms."),
        Field("jitter", DurationType(), label="Jitter", help="Random variation of the delay, e.g. 10ms."),
        CORRELATION,
        Field("reorder", REORDER, label="Reorder", help="Send some packets at once, out of order."),
    )
)


def _netem_rate(name: str, label: str) -> Obj:
    return Obj(
        (Field(name, PercentType(), required=True, label=label, unit="%", help="Share of packets, 0-100."), CORRELATION)
    )


LOSS = _netem_rate("loss", "Loss")
DUPLICATE = _netem_rate("duplicate", "Duplicate")
CORRUPT = _netem_rate("corrupt", "Corrupt")

#: The token bucket of `tc tbf`; PhysicalMachineChaos network-bandwidth takes the same fields.
BANDWIDTH_FIELDS = (
    Field("rate", RateType(), required=True, label="Rate", help="e.g. 1mbps (bytes/s) or 8mbit (bits/s)."),
    Field("limit", Int(minimum=1, maximum=2**32 - 1), required=True, label="Limit", unit="bytes",
          help="Bytes that may queue waiting for tokens."),
    Field("buffer", Int(minimum=1, maximum=2**32 - 1), required=True, label="Buffer", unit="bytes",
          help="Largest burst, in bytes."),
    Field("peakrate", Int(minimum=0, maximum=2**64 - 1), label="Peak rate", unit="bytes/s",
          help="Maximum depletion rate of the bucket."),
    Field("minburst", Int(minimum=0, maximum=2**32 - 1), label="Min burst", unit="bytes",
          help="Size of the peak-rate bucket (the MTU for exact shaping)."),
)
BANDWIDTH = Obj(BANDWIDTH_FIELDS, validators=(requires("minburst", "peakrate"),))

RATE = Obj((Field("rate", RateType(), required=True, label="Rate", help="e.g. 1mbps."),))

_LABEL = r"[a-zA-Z0-9]([-a-zA-Z0-9]{0,61}[a-zA-Z0-9])?"
HOSTNAME = re.compile(rf"^(?=.{{1,253}}$)({_LABEL})(\.{_LABEL})*$")


class ExternalTarget(Str):
    """An IP address, a CIDR or a host name, with an optional `:port` (`[v6]:port` for IPv6)."""

    def parse(self, value: Any, path: str) -> str:
        text = super().parse(value, path).strip()
        host, port = text, None
        if text.startswith("["):
            host, _, rest = text[1:].partition("]")
            port = rest[1:] if rest.startswith(":") else None
            if rest and port is None:
                raise FieldError(path, f"{value!r} is not an address: write [IPv6]:port")
        elif text.count(":") == 1:
            host, port = text.split(":")
        if port is not None and not (port.isdigit() and 1 <= int(port) <= 65535):
            raise FieldError(path, f"{value!r}: the port must be a number from 1 to 65535")
        try:
            ipaddress.ip_network(host, strict=False)
            return text
        except ValueError:
            pass
        if not HOSTNAME.match(host) or host.replace(".", "").isdigit():
            raise FieldError(path, f"{value!r} is not an IP address, a CIDR or a host name")
        return text


TARGET = Obj(
    (
        Field("selector", POD_SELECTOR, required=True, label="Selector"),
        Field("mode", Enum(tuple(Mode)), required=True, label="Mode"),
        Field("value", Str(), label="Value", help="How many (fixed) or what percent (the percent modes)."),
    ),
    validators=(lambda v, path: ModeSpec.parse(v["mode"], v.get("value"), path) and None,),
)

DEVICE = Str(min_length=1, max_length=15, pattern=r"[a-zA-Z0-9_.:-]+", pattern_help="a network interface name")

COMMON = (
    Field(
        "direction",
        Enum(("to", "from", "both")),
        default="to",
        label="Direction",
        help="to: traffic from the selected pods to the target; from: from the target to them; both.",
    ),
    Field("target", TARGET, label="Target pods", help="The other side: only traffic between the pods and these."),
    Field(
        "externalTargets",
        ListOf(ExternalTarget(), unique=True),
        label="External targets",
        help="Addresses outside the cluster: IP, CIDR or host name, with an optional port.",
    ),
    Field("device", DEVICE, label="Device", help="The interface to act on (default: every interface)."),
    Field("targetDevice", DEVICE, label="Target device", help="The interface on the target pods."),
    REMOTE_CLUSTER,
)

NET = frozenset({Target.POD})


def _action(name: str, label: str, help: str, fields: tuple[Field, ...], capability: Capability, **kw: Any) -> Action:
    return Action(name=name, label=label, help=help, fields=fields, targets=NET, capability=capability, **kw)


KIND = Kind(
    name="NetworkChaos",
    label="Network fault",
    help="Delay, drop, duplicate or corrupt packets, cut the network, or limit bandwidth.",
    common_fields=COMMON,
    actions=(
        _action("delay", "Delay", "Delay packets, with jitter and reordering.",
                (Field("delay", DELAY, required=True, label="Delay"),), Capability.NETEM),
        _action("loss", "Loss", "Drop a share of packets.",
                (Field("loss", LOSS, required=True, label="Loss"),), Capability.NETEM),
        _action("duplicate", "Duplicate", "Send a share of packets twice.",
                (Field("duplicate", DUPLICATE, required=True, label="Duplicate"),), Capability.NETEM),
        _action("corrupt", "Corrupt", "Flip a random bit in a share of packets.",
                (Field("corrupt", CORRUPT, required=True, label="Corrupt"),), Capability.NETEM),
        _action(
            "netem", "Netem (several at once)", "Delay, loss, duplication, corruption and rate together.",
            (
                Field("delay", DELAY, label="Delay"),
                Field("loss", LOSS, label="Loss"),
                Field("duplicate", DUPLICATE, label="Duplicate"),
                Field("corrupt", CORRUPT, label="Corrupt"),
                Field("rate", RATE, label="Rate"),
            ),
            Capability.NETEM,
            validators=(one_of_required("delay", "loss", "duplicate", "corrupt", "rate"),),
        ),
        _action("partition", "Partition", "Cut traffic between the selected pods and the target, in the direction.",
                (), Capability.IPTABLES),
        _action("bandwidth", "Bandwidth", "Limit the bandwidth with a token bucket.",
                (Field("bandwidth", BANDWIDTH, required=True, label="Bandwidth"),), Capability.TC_TBF),
    ),
)


"""DNSChaos: answer the selected pods' DNS queries with an error or a random address, for every
domain or only those matching patterns (through the DNS server Chaos Mesh puts in front of them)."""
from __future__ import annotations

import re
from typing import Any

from .common import CONTAINER_NAMES, REMOTE_CLUSTER
from .model import Action, Capability, Kind, Target
from .params import Field, FieldError, ListOf, Str, describe

# A label of letters, digits, `-`, `_` and the one-character placeholder `?`. `*` stands for any
# rest of the name, so Chaos Mesh only takes it as the pattern's last character ("chaos-*.org" is
# refused there at injection time; here, at once).
_LABEL = re.compile(r"[a-zA-Z0-9_?]([-a-zA-Z0-9_?]{0,61}[a-zA-Z0-9_?])?")


class DomainPattern(Str):
    """A domain name such as `google.com`, with `?` for any one character and a final `*`."""

    def parse(self, value: Any, path: str) -> str:
        text = super().parse(value, path)
        bad = f"{describe(value)} is not a domain pattern"
        if len(text) > 253:
            raise FieldError(path, f"{bad}: a domain name has at most 253 characters")
        if "*" in text[:-1]:
            raise FieldError(path, f"{bad}: * may only end the pattern (e.g. \"chaos-mesh.*\")")
        labels = (text[:-1] if text.endswith(".") and len(text) > 1 else text).split(".")  # "example.com." too
        last = labels[-1]
        if last.endswith("*"):
            labels[-1] = last[:-1]
            if not labels[-1]:
                labels.pop()  # "github.*" or "*": the star is a label of its own
        if not all(_LABEL.fullmatch(label) for label in labels):
            raise FieldError(
                path, f"{bad}: use labels of letters, digits and -, separated by dots, with ? and a final *"
            )
        return text


PATTERNS = Field(
    "patterns",
    ListOf(DomainPattern(min_length=1), unique=True),
    label="Domains",
    help="Only names matching these patterns, with ? for one character and a final * for any rest "
    "(e.g. google.com, chaos-mesh.*); every name when empty.",
)

DNS = frozenset({Target.POD})

KIND = Kind(
    name="DNSChaos",
    label="DNS fault",
    help="Make DNS lookups from the selected pods fail or return wrong addresses.",
    common_fields=(PATTERNS, CONTAINER_NAMES, REMOTE_CLUSTER),
    actions=(
        Action(
            name="error",
            label="DNS error",
            help="Answer matching DNS queries with an error, as if the name did not resolve.",
            fields=(),
            targets=DNS,
            capability=Capability.DNS_PROXY,
        ),
        Action(
            name="random",
            label="Random address",
            help="Answer matching DNS queries with a random IP address.",
            fields=(),
            targets=DNS,
            capability=Capability.DNS_PROXY,
        ),
    ),
)

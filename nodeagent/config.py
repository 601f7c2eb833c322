"""The agent's settings: command-line flags, each with an environment variable CHAOSPLANE_AGENT_*
(a flag wins over its variable). Every value is checked here; an error names the flag (and the
variable, when the value came from there).

The token is best passed in the environment (CHAOSPLANE_AGENT_TOKEN): a flag shows in `ps`. It is
never logged, and never part of the config's repr.
"""
from __future__ import annotations

import argparse
import os
import re
import socket
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

AGENT_VERSION = "0.1.0"
PREFIX = "CHAOSPLANE_AGENT_"
DEFAULT_JOURNAL = "/var/lib/chaosplane-agent/journal.sqlite3"
DEFAULT_STATE_DIR = "/var/lib/chaosplane-agent"

# Kubernetes-style labels: an optional DNS prefix and a name; values of the same alphabet, maybe empty.
_NAME = r"[A-Za-z0-9]([A-Za-z0-9_.-]{0,61}[A-Za-z0-9])?"
_PREFIX = r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*"
LABEL_KEY = re.compile(rf"^({_PREFIX}/)?{_NAME}$")
LABEL_VALUE = re.compile(rf"^({_NAME})?$")
HOST = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9.-]{0,251}[A-Za-z0-9])?$")
AGENT_NAME = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9_.-]{0,61}[A-Za-z0-9])?$")
TOKEN = re.compile(r"^[\x21-\x7e]{8,4096}$")  # printable ASCII, no spaces: it goes into a header


class ConfigError(ValueError):
    """A bad setting; the message names the flag."""


@dataclass(frozen=True)
class AgentConfig:
    gateway: str
    token: str | None = field(default=None, repr=False)
    ca_file: Path | None = None
    insecure_dev: bool = False
    cert_file: Path | None = None
    key_file: Path | None = None
    journal: Path = Path(DEFAULT_JOURNAL)
    state_dir: Path = Path(DEFAULT_STATE_DIR)
    lease: float = 30.0
    labels: dict[str, str] = field(default_factory=dict)
    name: str = ""
    hostname: str = ""
    backoff_max: float = 30.0
    log_level: str = "INFO"


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # type: ignore[override]
        raise ConfigError(message)


def parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog="python -m nodeagent",
        description="Chaosplane node agent: dials out to the agent gateway and applies the faults it is sent. "
        f"Every flag can also be set with an environment variable {PREFIX}<FLAG> (e.g. {PREFIX}GATEWAY).",
    )
    p.add_argument("--gateway", metavar="HOST:PORT", help="the agent gateway to dial ($CHAOSPLANE_AGENT_GATEWAY)")
    p.add_argument(
        "--token",
        help="registration token, or a credential; better given as $CHAOSPLANE_AGENT_TOKEN (flags show in ps). "
        "Not needed once the state dir holds a credential.",
    )
    p.add_argument("--ca-file", metavar="PEM", help="CA certificate(s) that verify the gateway")
    p.add_argument(
        "--insecure-dev", action="store_true", help="plaintext, no server verification (development; no variable)"
    )
    p.add_argument("--cert-file", metavar="PEM", help="client certificate for mutual TLS (with --key-file)")
    p.add_argument("--key-file", metavar="PEM", help="private key of --cert-file")
    p.add_argument("--journal", metavar="PATH", help=f"fault journal (default {DEFAULT_JOURNAL})")
    p.add_argument("--state-dir", metavar="DIR", help=f"where the credential is kept (default {DEFAULT_STATE_DIR})")
    p.add_argument(
        "--lease", metavar="SECONDS", help="recover every fault after this long without the gateway (default 30)"
    )
    p.add_argument(
        "--label", metavar="KEY=VALUE", action="append", help="a label for this agent (repeatable); "
        "$CHAOSPLANE_AGENT_LABELS takes KEY=VALUE,KEY=VALUE",
    )
    p.add_argument("--name", help="this agent's name, unique in its environment (default: the hostname)")
    p.add_argument("--backoff-max", metavar="SECONDS", help="longest wait between reconnects (default 30)")
    p.add_argument("--log-level", metavar="LEVEL", help="DEBUG, INFO (default), WARNING or ERROR")
    return p


def parse(argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None) -> AgentConfig:
    environ = os.environ if environ is None else environ
    ns = parser().parse_args(argv)

    def pick(flag: str) -> tuple[str | None, str]:
        """The value and where it came from (for error messages)."""
        dest = flag.lstrip("-").replace("-", "_")
        value = getattr(ns, dest)
        if value is not None:
            return value, flag
        var = PREFIX + dest.upper()
        if environ.get(var, "") != "":
            return environ[var], f"{flag} (from ${var})"
        return None, flag

    gateway, where = pick("--gateway")
    if not gateway:
        raise ConfigError(f"--gateway: required (HOST:PORT, or ${PREFIX}GATEWAY)")
    gateway = _gateway(gateway, where)

    token, where = pick("--token")
    if token is not None and not TOKEN.match(token):
        raise ConfigError(f"{where}: not a token (8 to 4096 printable characters, no spaces)")

    insecure = bool(ns.insecure_dev)  # a flag only, never from the environment: it must be explicit
    ca_file = _file(*pick("--ca-file"))
    if ca_file is None and not insecure:
        raise ConfigError(
            "--ca-file: required: the gateway's certificate is always verified "
            "(give --insecure-dev explicitly for a plaintext development gateway)"
        )
    cert_file, key_file = _file(*pick("--cert-file")), _file(*pick("--key-file"))
    if (cert_file is None) != (key_file is None):
        raise ConfigError("--cert-file and --key-file: give both (mutual TLS) or neither")
    if insecure and (ca_file or cert_file):
        raise ConfigError("--insecure-dev: cannot be combined with --ca-file, --cert-file or --key-file")

    journal, _ = pick("--journal")
    state_dir, _ = pick("--state-dir")
    lease = _seconds(*pick("--lease"), default=30.0, low=1.0, high=86400.0)
    backoff_max = _seconds(*pick("--backoff-max"), default=30.0, low=0.1, high=3600.0)

    labels: dict[str, str] = {}
    env_labels = environ.get(PREFIX + "LABELS", "")
    for item in filter(None, (s.strip() for s in env_labels.split(","))):
        _label(labels, item, f"--label (from ${PREFIX}LABELS)")
    for item in ns.label or []:
        _label(labels, item, "--label")

    hostname = socket.gethostname()
    name, where = pick("--name")
    name = name if name is not None else hostname.split(".")[0]
    if not AGENT_NAME.match(name):
        raise ConfigError(f"{where}: {name!r} is not a name (letters, digits, '-', '_', '.'; up to 63)")

    level, where = pick("--log-level")
    level = (level or "INFO").upper()
    if level not in ("DEBUG", "INFO", "WARNING", "ERROR"):
        raise ConfigError(f"{where}: one of DEBUG, INFO, WARNING, ERROR")

    return AgentConfig(
        gateway=gateway,
        token=token,
        ca_file=ca_file,
        insecure_dev=insecure,
        cert_file=cert_file,
        key_file=key_file,
        journal=Path(journal or DEFAULT_JOURNAL),
        state_dir=Path(state_dir or DEFAULT_STATE_DIR),
        lease=lease,
        labels=labels,
        name=name,
        hostname=hostname,
        backoff_max=backoff_max,
        log_level=level,
    )


def _gateway(value: str, where: str) -> str:
    host, sep, port = value.rpartition(":")
    if host.startswith("[") and host.endswith("]"):
        bare = host[1:-1]
        ok_host = bool(bare) and all(c in "0123456789abcdefABCDEF:." for c in bare)
    else:
        ok_host = bool(HOST.match(host))
    if not sep or not ok_host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ConfigError(f"{where}: {value!r} is not HOST:PORT (an IPv6 address goes in brackets: [::1]:8443)")
    return value


def _file(value: str | None, where: str) -> Path | None:
    if value is None:
        return None
    path = Path(value)
    if not path.is_file():
        raise ConfigError(f"{where}: {value}: no such file")
    if not os.access(path, os.R_OK):
        raise ConfigError(f"{where}: {value}: not readable")
    return path


def _seconds(value: str | None, where: str, *, default: float, low: float, high: float) -> float:
    if value is None:
        return default
    try:
        seconds = float(value)
    except ValueError:
        raise ConfigError(f"{where}: {value!r} is not a number of seconds") from None
    if not low <= seconds <= high:
        raise ConfigError(f"{where}: must be between {low:g} and {high:g} seconds, not {value}")
    return seconds


def _label(labels: dict[str, str], item: str, where: str) -> None:
    key, sep, value = item.partition("=")
    if not sep:
        raise ConfigError(f"{where}: {item!r} is not KEY=VALUE")
    if not LABEL_KEY.match(key) or len(key) > 253 + 1 + 63:
        raise ConfigError(f"{where}: {key!r} is not a label key (e.g. zone or example.com/tier)")
    if not LABEL_VALUE.match(value):
        raise ConfigError(f"{where}: {key}={value!r}: a label value has letters, digits, '-', '_', '.' (up to 63)")
    labels[key] = value

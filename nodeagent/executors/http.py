"""HTTPChaos: abort, delay, replace or patch the HTTP/1.1 requests or responses on one port of the target,
through a transparent proxy in the target's network namespace (as Chaos Mesh's tproxy does).

inject: the rule is validated, the proxy (http_proxy.py, a process of its own with CHAOSPLANE_FAULT=<short
id> in its environment) is started inside the namespace and says which port it listens on, then a nat
chain CHAOSPLANE-<short id>-H, jumped to from PREROUTING, REDIRECTs the TCP connections arriving for the
port to it. PREROUTING sees only traffic coming into the namespace, not the proxy's own connection to
the server, so nothing loops; connections made inside the namespace are not affected.

recover: the jump and the chain go first (new connections reach the server directly again), then the
proxy is killed, found by its marker when the agent that started it is gone. Connections that were
going through it are closed with it.

Differences from Chaos Mesh: the server sees the proxy's connection, from its own address, not the
client's; connections already open when the fault starts are not intercepted (nat sees new ones only);
one HTTP fault per port and namespace (a second is refused: Chaos Mesh merges them into one proxy); a
patch of a body that is not JSON leaves it unchanged (Chaos Mesh drops the connection).
"""
from __future__ import annotations

import base64
import binascii
import ctypes
import json
import os
import re
import select
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from nodeagent.orders import FaultOrder, Refused

from . import iptables, validate
from .marked import MARKER, gone
from .marked import marked as marked_processes
from .namespaces import CommandFailed, Resolved, resolve, run, run_in

PROXY = os.path.join(os.path.dirname(os.path.abspath(__file__)), "http_proxy.py")
CAPABILITY = "http-proxy"
ACTIONS = ("abort", "delay", "replace", "patch")
METHODS = ("GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH")
FAMILIES = {4: "iptables", 6: "ip6tables"}
READY_TIMEOUT = 10.0
MAX_BODY = 16 * 2**20
MAX_ITEMS = 64

_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]{1,256}")
_HEADER_VALUE = re.compile(r"[\t\x20-\x7e]{0,4096}")  # no CR, LF or NUL: nothing can be smuggled in
_GLOB = re.compile(r"[/*][\x21-\x7e]{0,1023}")
_PATH = re.compile(r"/[\x21-\x22\x24-\x3e\x40-\x7e]{0,1023}")  # no ? or #
_KNOWN = {"target", "port", "path", "method", "code", "request_headers", "response_headers", "abort", "delay",
          "replace", "patch", "remoteCluster"}

_running: dict[str, subprocess.Popen[bytes]] = {}
_lock = threading.Lock()


def chain(short: str) -> str:
    return f"{iptables.PREFIX}{short}-H"


# The rule ------------------------------------------------------------------------------------------


def _object(value: Any, what: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise Refused(f"{what} must be an object")
    return value


def _headers(value: Any, what: str) -> list[list[str]]:
    """A {name: value} map (Chaos Mesh's replace and selectors) as [name, value] pairs."""
    return _pairs(list(_object(value, what).items()), what)


def _pairs(value: Any, what: str) -> list[list[str]]:
    """[name, value] header pairs; names are HTTP tokens, values printable without CR or LF."""
    if not isinstance(value, list) or len(value) > MAX_ITEMS:
        raise Refused(f"{what} must be a list of at most {MAX_ITEMS} [name, value] pairs")
    out = []
    for item in value:
        if not isinstance(item, (list, tuple)) or len(item) != 2:
            raise Refused(f"{what}: each item must be a [name, value] pair")
        name, text = item
        if not isinstance(name, str) or not _TOKEN.fullmatch(name):
            raise Refused(f"{what}: {str(name)[:40]!r} is not a header name")
        if not isinstance(text, str) or not _HEADER_VALUE.fullmatch(text):
            raise Refused(f"{what}: the value of {name} must be printable ASCII without CR or LF (at most 4096)")
        out.append([name, text])
    return out


def _queries(value: Any, what: str) -> list[list[str]]:
    """[name, value] query parameters (URL-encoded by the proxy, so any text up to 1024 characters)."""
    if isinstance(value, dict):
        value = list(value.items())
    if not isinstance(value, list) or len(value) > MAX_ITEMS:
        raise Refused(f"{what} must hold at most {MAX_ITEMS} parameters")
    out = []
    for item in value:
        if not isinstance(item, (list, tuple)) or len(item) != 2:
            raise Refused(f"{what}: each item must be a [name, value] pair")
        out.append([validate.text(item[0], what, 1024), _text_or_empty(item[1], what)])
    return out


def _text_or_empty(value: Any, what: str) -> str:
    if not isinstance(value, str) or len(value) > 1024:
        raise Refused(f"{what}: a value must be text of at most 1024 characters")
    return value


def _status(value: Any, what: str) -> int:
    return validate.integer(value, what, 100, 599)


def rule(order: FaultOrder) -> dict[str, Any]:
    """The proxy's rule from the order's params (the catalogue's canonical JSON), every value checked,
    every header and query normalised to [name, value] pairs."""
    p = _object(order.params, "params")
    unknown = sorted(set(p) - _KNOWN)
    if unknown:
        raise Refused(f"HTTPChaos: unknown field(s) {', '.join(unknown)[:80]}")
    if order.action not in ACTIONS:
        raise Refused(f"HTTPChaos has no action {str(order.action)[:40]!r}")
    out: dict[str, Any] = {
        "target": validate.choice(p.get("target"), "target", ("Request", "Response")),
        "port": validate.port(p.get("port")),
    }
    response = out["target"] == "Response"
    if p.get("path") is not None:
        out["path"] = _match(_GLOB, p["path"], "path", "a URI path glob starting with / or * (no spaces)")
    if p.get("method") is not None:
        out["method"] = validate.choice(p["method"], "method", METHODS)
    if p.get("code") is not None:
        _only(response, "code", "Response")
        out["code"] = _status(p["code"], "code")
    if p.get("request_headers") is not None:
        out["request_headers"] = _headers(p["request_headers"], "request_headers")
    if p.get("response_headers") is not None:
        _only(response, "response_headers", "Response")
        out["response_headers"] = _headers(p["response_headers"], "response_headers")
    if p.get("abort") is not None:
        if not isinstance(p["abort"], bool):
            raise Refused("abort must be true or false")
        out["abort"] = p["abort"]
    if p.get("delay") is not None:
        out["delay"] = validate.duration_ns(p["delay"], "delay", maximum_s=3600) / 1e9
    if p.get("replace") is not None:
        out["replace"] = _replace(_object(p["replace"], "replace"), response)
    if p.get("patch") is not None:
        out["patch"] = _patch(_object(p["patch"], "patch"), response)
    given = [a for a in ACTIONS if out.get(a) not in (None, False)]
    if not given:
        raise Refused("HTTPChaos: give at least one of abort (true), delay, replace, patch")
    if order.action not in given:
        raise Refused(f"HTTPChaos {order.action}: the spec has no {order.action}")
    return out


def _only(ok: bool, what: str, target: str) -> None:
    if not ok:
        raise Refused(f"{what} only applies with target {target}")


def _match(pattern: re.Pattern[str], value: Any, what: str, shape: str) -> str:
    if not isinstance(value, str) or not pattern.fullmatch(value):
        raise Refused(f"{what}: {str(value)[:60]!r} is not {shape}")
    return value


def _replace(r: dict[str, Any], response: bool) -> dict[str, Any]:
    unknown = sorted(set(r) - {"path", "method", "code", "body", "queries", "headers"})
    if unknown:
        raise Refused(f"replace: unknown field(s) {', '.join(unknown)[:80]}")
    out: dict[str, Any] = {}
    if r.get("path") is not None:
        _only(not response, "replace.path", "Request")
        out["path"] = _match(_PATH, r["path"], "replace.path", "a URI path starting with / (no spaces, ? or #)")
    if r.get("method") is not None:
        _only(not response, "replace.method", "Request")
        out["method"] = validate.choice(r["method"], "replace.method", METHODS)
    if r.get("code") is not None:
        _only(response, "replace.code", "Response")
        out["code"] = validate.integer(r["code"], "replace.code", 200, 599)  # a 1xx would leave the client waiting
    if r.get("body") is not None:
        if not isinstance(r["body"], str) or len(r["body"]) > MAX_BODY * 4 // 3 + 4:
            raise Refused(f"replace.body must be base64 text of at most {MAX_BODY // 2**20} MiB decoded")
        try:
            base64.b64decode(r["body"], validate=True)
        except (binascii.Error, ValueError):
            raise Refused("replace.body is not base64") from None
        out["body"] = r["body"]
    if r.get("queries") is not None:
        _only(not response, "replace.queries", "Request")
        out["queries"] = _queries(_object(r["queries"], "replace.queries"), "replace.queries")
    if r.get("headers") is not None:
        out["headers"] = _headers(r["headers"], "replace.headers")
    if not out:
        raise Refused("replace: give at least one of path, method, code, body, queries, headers")
    return out


def _patch(r: dict[str, Any], response: bool) -> dict[str, Any]:
    unknown = sorted(set(r) - {"body", "queries", "headers"})
    if unknown:
        raise Refused(f"patch: unknown field(s) {', '.join(unknown)[:80]}")
    out: dict[str, Any] = {}
    if r.get("body") is not None:
        body = _object(r["body"], "patch.body")
        validate.choice(body.get("type"), "patch.body.type", ("JSON",))
        value = body.get("value")
        if not isinstance(value, str) or not 0 < len(value) <= 2**20:
            raise Refused("patch.body.value must be JSON text of at most 1 MiB")
        try:
            json.loads(value)
        except ValueError as error:
            raise Refused(f"patch.body.value is not JSON: {error}") from None
        out["body"] = value
    if r.get("queries") is not None:
        _only(not response, "patch.queries", "Request")
        out["queries"] = _queries(r["queries"], "patch.queries")
    if r.get("headers") is not None:
        out["headers"] = _pairs(r["headers"], "patch.headers")
    if not out:
        raise Refused("patch: give at least one of body, queries, headers")
    return out


def describe(r: dict[str, Any]) -> str:
    done = []
    if r.get("abort"):
        done.append("abort")
    if r.get("delay"):
        done.append(f"delay {r['delay'] * 1e3:g}ms")
    for name in ("replace", "patch"):
        if r.get(name):
            done.append(f"{name} {'/'.join(r[name])}")
    only = [f"{k} {r[k]}" for k in ("method", "path", "code") if r.get(k) is not None]
    only += [f"{len(r[k])} {k.replace('_', ' ')}" for k in ("request_headers", "response_headers") if r.get(k)]
    return (f"HTTP {', '.join(done)} of {r['target'].lower()}s on port {r['port']}"
            + (f" ({', '.join(only)})" if only else ""))


# The proxy and the rules ---------------------------------------------------------------------------


@dataclass
class Plan:
    where: Resolved
    short: str
    rule: dict[str, Any]


def plan(order: FaultOrder) -> Plan:
    r = rule(order)  # every value checked before anything is resolved or started
    where = resolve(order.target)
    return Plan(where, validate.short_id(order.fault_id), r)


def _start(pl: Plan, fault_id: str) -> tuple[subprocess.Popen[bytes], int, int]:
    """The proxy, started inside the namespace; (process, IPv4 port, IPv6 port or 0) once it listens."""

    def spawn() -> subprocess.Popen[bytes]:
        return subprocess.Popen(  # an argv list, no shell; the rule goes in on stdin
            [sys.executable, "-I", "-S", PROXY], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, start_new_session=True, cwd="/",
            env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL": "C.UTF-8", MARKER: pl.short},
        )

    child = run_in(pl.where.netns, spawn)
    with _lock:
        _running[fault_id] = child
    assert child.stdin is not None and child.stdout is not None and child.stderr is not None
    try:
        child.stdin.write(json.dumps(pl.rule).encode())
        child.stdin.close()
    except OSError:
        pass  # it died: said below
    line, closed = b"", False
    deadline = time.monotonic() + READY_TIMEOUT
    fd = child.stdout.fileno()
    while not line.endswith(b"\n") and time.monotonic() < deadline and len(line) < 200:
        ready, _, _ = select.select([fd], [], [], max(0.0, deadline - time.monotonic()))
        if not ready:
            break
        data = os.read(fd, 200)
        if not data:
            closed = True
            break
        line += data
    child.stdout.close()
    parts = line.decode(errors="replace").split()
    if len(parts) != 3 or parts[0] != "READY" or not parts[1].isdigit() or not parts[2].isdigit():
        status = child.poll()
        child.kill()
        child.wait(5)
        why = child.stderr.read(4096).decode(errors="replace").strip().splitlines()
        child.stderr.close()
        said = (f"printed {line[:80]!r}" if line else f"exited with status {status}" if status is not None
                else "closed its output" if closed else f"said nothing in {READY_TIMEOUT:g}s")
        raise Refused(f"the HTTP proxy did not start ({said}{': ' + why[-1][:200] if why else ''})")
    child.stderr.close()  # it has pointed its own at /dev/null
    return child, validate.port(parts[1]), int(parts[2])


def _holder(short: str, port: int) -> str | None:
    """The chain of another HTTPChaos fault that already redirects `port` in this namespace, if any: only
    the newest PREROUTING jump would see the connections, so the older fault would silently stop."""
    listing = run(["iptables", "-w", "-t", "nat", "-S"]).stdout
    for line in listing.splitlines():
        parts = line.split()
        if (len(parts) > 1 and parts[0] == "-A" and parts[1].startswith(iptables.PREFIX) and parts[1].endswith("-H")
                and parts[1] != chain(short) and "REDIRECT" in parts and f"--dport {port} " in line + " "):
            return parts[1]
    return None


def _install(short: str, port: int, proxy_ports: dict[int, int]) -> list[str]:
    """The nat chain and its PREROUTING jump, per family; IPv6 is best effort (notes say what failed)."""
    holder = _holder(short, port)
    if holder is not None:
        raise Refused(f"another HTTP fault ({holder}) already holds port {port} in this namespace; "
                      "recover it first or combine the rules in one fault")
    notes = []
    for family, binary in FAMILIES.items():
        to = proxy_ports.get(family, 0)
        if not to:
            notes.append(f"IPv{family} not intercepted (the proxy cannot listen on it)")
            continue
        name = chain(short)
        try:
            run([binary, "-w", "-t", "nat", "-N", name])
            run([binary, "-w", "-t", "nat", "-A", name, "-p", "tcp", "--dport", str(port), "-m", "addrtype",
                 "--dst-type", "LOCAL", "-j", "REDIRECT", "--to-ports", str(to)])
            run([binary, "-w", "-t", "nat", "-I", "PREROUTING", "1", "-j", name])
        except (CommandFailed, FileNotFoundError) as error:
            if family == 4:
                raise
            _remove_family(binary, name)
            notes.append(f"IPv6 not intercepted ({str(error)[:120]})")
    return notes


def _remove_family(binary: str, name: str) -> None:
    try:
        for _ in range(16):  # a jump inserted twice is removed as often as it is there
            if run([binary, "-w", "-t", "nat", "-D", "PREROUTING", "-j", name], check=False).returncode != 0:
                break
        if run([binary, "-w", "-t", "nat", "-F", name], check=False).returncode == 0:
            run([binary, "-w", "-t", "nat", "-X", name], check=False)
    except FileNotFoundError:
        pass


def _remove(short: str) -> None:
    for binary in FAMILIES.values():
        _remove_family(binary, chain(short))


def nat_leftovers() -> list[str]:
    """Every CHAOSPLANE line of the nat tables in this thread's namespace (for tests and self-checks)."""
    found = []
    for binary in FAMILIES.values():
        try:
            listing = run([binary, "-w", "-t", "nat", "-S"]).stdout
        except (CommandFailed, FileNotFoundError):
            continue
        found += [f"{binary} nat: {line}" for line in listing.splitlines() if iptables.PREFIX in line]
    return found


proxies = marked_processes  # nodeagent.executors.marked


_gone = gone  # nodeagent.executors.marked


def _kill(fault_id: str, short: str) -> None:
    with _lock:
        child = _running.pop(fault_id, None)
    if child is not None:
        if child.poll() is None:
            child.kill()
        child.wait(5)
    for pid in proxies(short):  # started by an agent that is gone
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            continue
        deadline = time.monotonic() + 5
        while not _gone(pid) and time.monotonic() < deadline:
            time.sleep(0.01)


# The executor --------------------------------------------------------------------------------------


def inject(order: FaultOrder) -> str:
    pl = plan(order)
    if not os.path.exists(PROXY):
        raise Refused(f"the HTTP proxy program is missing ({PROXY})")
    recover(order)  # a retried order starts from clean
    try:
        child, v4, v6 = _start(pl, order.fault_id)
        notes = run_in(pl.where.netns, lambda: _install(pl.short, pl.rule["port"], {4: v4, 6: v6}))
    except BaseException as error:
        recover(order)  # a half-made fault comes back out before the error is reported
        if isinstance(error, (CommandFailed, FileNotFoundError)):
            raise Refused(f"could not redirect the port to the HTTP proxy: {str(error)[:300]}") from None
        raise
    note = f"; {'; '.join(notes)}" if notes else ""
    return f"{describe(pl.rule)} through a proxy (pid {child.pid}) in {pl.where.description}{note}"


def recover(order: FaultOrder) -> None:
    short = validate.short_id(order.fault_id)
    try:
        where: Resolved | None = resolve(order.target)
    except Refused:
        where = None  # the namespace is gone, and its rules with it; a proxy may still be running
    if where is not None:
        run_in(where.netns, lambda: _remove(short))  # first: new connections go straight to the server
    _kill(order.fault_id, short)


def running() -> list[str]:
    with _lock:
        return [fid for fid, child in _running.items() if child.poll() is None]


# What this host can do -----------------------------------------------------------------------------

CLONE_NEWNET = 0x40000000


def capability() -> tuple[str, bool, str]:
    """http-proxy: nat REDIRECT with the addrtype match, tried in a throwaway network namespace (a thread
    that unshares its own), and a Python to run the proxy with."""
    if not os.path.exists(PROXY) or not sys.executable:
        return CAPABILITY, False, "the HTTP proxy program or a Python to run it is missing"
    box: dict[str, tuple[bool, str]] = {}

    def probe() -> None:
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.unshare(CLONE_NEWNET) != 0:
            box["r"] = (False, f"cannot make a network namespace to probe in: {os.strerror(ctypes.get_errno())}")
            return
        try:
            run(["iptables", "-w", "-t", "nat", "-N", "CPPROBE"])
            run(["iptables", "-w", "-t", "nat", "-A", "CPPROBE", "-p", "tcp", "--dport", "1", "-m", "addrtype",
                 "--dst-type", "LOCAL", "-j", "REDIRECT", "--to-ports", "2"])
            box["r"] = (True, f"iptables nat REDIRECT to a userspace HTTP/1.1 proxy ({sys.executable})")
        except FileNotFoundError:
            box["r"] = (False, "iptables is not installed")
        except CommandFailed as failed:
            box["r"] = (False, f"iptables nat REDIRECT: {failed.stderr.strip()[:200] or failed}")

    thread = threading.Thread(target=probe, name="probe:http-proxy", daemon=True)
    thread.start()
    thread.join(30)
    ok, detail = box.get("r", (False, "the probe did not finish"))
    return CAPABILITY, ok, detail


_Executor = tuple[Callable[[FaultOrder], str], Callable[[FaultOrder], None]]
#: (kind, action) -> (inject, recover), merged into nodeagent.executors.REGISTRY.
EXECUTORS: dict[tuple[str, str], _Executor] = {("HTTPChaos", action): (inject, recover) for action in ACTIONS}

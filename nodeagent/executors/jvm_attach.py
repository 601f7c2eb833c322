"""Loading a Java agent into a running HotSpot JVM, as `bminstall` does, without starting a JVM of our own.

This is the HotSpot attach handshake of the JDK's own Linux VirtualMachineImpl, spoken from Python:
create `.attach_pid<nspid>` in the target's working directory (or its /tmp), send SIGQUIT, wait for the
JVM to open the UNIX socket `/tmp/.java_pid<nspid>` (reached through /proc/PID/root, so a JVM in a
container is reached from the host), then send protocol 1's `load instrument false <jar>=<options>`.

SIGQUIT kills a process that does not catch it, so nothing is sent to a process that is not a HotSpot
JVM (libjvm.so mapped) catching SIGQUIT. The agent jar is opened by the target JVM, in its own mount
namespace: the caller checks that the path exists there (jar_visible).
"""
from __future__ import annotations

import os
import re
import signal
import socket
import time

from nodeagent.orders import Refused

from . import validate

ATTACH_TIMEOUT = 10.0
_SIGQUIT_BIT = 1 << (signal.SIGQUIT - 1)


def _status(pid: int) -> dict[str, str]:
    try:
        with open(f"/proc/{pid}/status") as f:
            return dict(line.rstrip("\n").split(":\t", 1) for line in f if ":\t" in line)
    except OSError:
        raise Refused(f"process {pid} does not exist") from None


def ns_pid(pid: int) -> int:
    """The PID the process has in its own (innermost) PID namespace."""
    field = _status(pid).get("NSpid", "").split()
    return int(field[-1]) if field else pid


def is_hotspot(pid: int) -> bool:
    """True when the process maps a HotSpot libjvm.so."""
    try:
        with open(f"/proc/{pid}/maps") as f:
            return any(line.rstrip().endswith("/libjvm.so") for line in f)
    except OSError:
        return False


def check_jvm(pid: int) -> None:
    """Refuses unless `pid` is a HotSpot JVM that catches SIGQUIT (so the handshake cannot kill it)."""
    pid = validate.pid(pid)
    status = _status(pid)
    if not is_hotspot(pid):
        raise Refused(f"process {pid} ({status.get('Name', '?')}) is not a HotSpot JVM (no libjvm.so mapped)")
    caught = int(status.get("SigCgt", "0"), 16)
    ignored = int(status.get("SigIgn", "0"), 16)
    if not caught & _SIGQUIT_BIT or ignored & _SIGQUIT_BIT:
        raise Refused(f"JVM {pid} does not handle SIGQUIT (started with -Xrs?): it cannot be attached to")


def jar_visible(pid: int, path: str) -> bool:
    """Whether the target process sees a readable file at `path` in its own root."""
    return os.path.isfile(f"/proc/{pid}/root{path}")


def _socket_path(pid: int, nspid: int) -> str:
    return f"/proc/{pid}/root/tmp/.java_pid{nspid}"


def _start_listener(pid: int, nspid: int, timeout: float) -> str:
    """The attach socket's path, after starting the JVM's attach listener when it is not running yet."""
    path = _socket_path(pid, nspid)
    if os.path.exists(path):
        return path
    trigger = f"/proc/{pid}/cwd/.attach_pid{nspid}"
    try:
        fd = os.open(trigger, os.O_CREAT | os.O_WRONLY | os.O_NOFOLLOW, 0o600)
    except OSError:
        trigger = f"/proc/{pid}/root/tmp/.attach_pid{nspid}"
        try:
            fd = os.open(trigger, os.O_CREAT | os.O_WRONLY | os.O_NOFOLLOW, 0o600)
        except OSError as error:
            raise Refused(f"cannot start the attach listener of JVM {pid}: {error}") from None
    os.close(fd)
    try:
        os.kill(pid, signal.SIGQUIT)
        deadline = time.monotonic() + timeout
        delay = 0.02
        resent = False
        while not os.path.exists(path):
            if time.monotonic() > deadline:
                raise Refused(f"JVM {pid} did not open its attach socket within {timeout:.0f}s "
                              "(started with -XX:+DisableAttachMechanism?)")
            if not resent and time.monotonic() > deadline - timeout / 2:
                os.kill(pid, signal.SIGQUIT)  # once more, as the JDK does
                resent = True
            time.sleep(delay)
            delay = min(delay * 2, 0.2)
    finally:
        try:
            os.unlink(trigger)
        except OSError:
            pass
    return path


def execute(pid: int, command: str, args: tuple[str, str, str], timeout: float = ATTACH_TIMEOUT) -> str:
    """One attach command (protocol 1); returns its output after the status line, or refuses with the
    JVM's error."""
    check_jvm(pid)
    path = _start_listener(pid, ns_pid(pid), timeout)
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(timeout)
        try:
            s.connect(path)
            s.sendall(b"".join(part.encode() + b"\0" for part in ("1", command, *args)))
            chunks = []
            while chunk := s.recv(65536):
                chunks.append(chunk)
        except OSError as error:
            raise Refused(f"attach to JVM {pid} failed: {error}") from None
    reply = b"".join(chunks).decode(errors="replace")
    status, _, rest = reply.partition("\n")
    if status.strip() != "0":
        raise Refused(f"JVM {pid} refused the attach command {command}: {(rest or status).strip()[:300]}")
    return rest


_RETURN = re.compile(r"(?:return code: )?(-?\d+)")
# libinstrument's Agent_OnAttach codes
_AGENT_ERRORS = {100: "the JVM could not open the jar", 101: "the jar is not on the JVM's class path",
                 102: "its agentmain failed (for Byteman: it is already loaded in this JVM)"}


def load_agent(pid: int, jar: str, options: str) -> None:
    """VirtualMachine.loadAgent(jar, options): the JVM runs the jar's Agent-Class agentmain."""
    if "\0" in jar or "\0" in options:
        raise Refused("agent arguments must not hold NUL")
    out = execute(pid, "load", ("instrument", "false", f"{jar}={options}" if options else jar))
    first = out.strip().splitlines()[0] if out.strip() else ""
    match = _RETURN.fullmatch(first.strip())
    if match is None:
        raise Refused(f"JVM {pid} did not load {jar}: {first[:300] or 'no answer'}")
    code = int(match.group(1))
    if code != 0:
        why = _AGENT_ERRORS.get(code, "the agent failed")
        raise Refused(f"JVM {pid} did not start the agent in {jar}: {why} (code {code})")


def system_properties(pid: int) -> dict[str, str]:
    """The JVM's system properties (the attach `properties` command), a cheap proof an attach works."""
    out = execute(pid, "properties", ("", "", ""))
    props = {}
    for line in out.splitlines():
        if "=" in line and not line.startswith("#"):
            key, _, value = line.partition("=")
            props[key.replace("\\", "")] = value
    return props

"""IOChaos (latency, fault, attrOverride, mistake): a FUSE passthrough mounted over the volume, in the
target's mount namespace, that delays, fails, lies about or corrupts the matching file operations.

inject: every value is checked here, then a server process (iofault_fs.py, standard library only, the
kernel's FUSE protocol spoken on /dev/fuse: no libfuse, no fusermount) is started with
CHAOSPLANE_FAULT=<short id> in its environment; it enters the target's mount namespace, opens the volume
directory, mounts FUSE over it (source chaosplane-<short id>) and serves the real files from underneath,
answering "ready" or the reason it refused. Files the application opened before keep the real file;
what it opens after goes through the fault.

Targets: a process or container (its mount namespace, /proc/PID/ns/mnt) or the host, which means the
agent's own mount namespace (run the agent in the host's). The volume must be a directory and not a
system one (/, /etc, /usr, /proc, ... refused), nor hold the agent's own files (the server would then
serve its own code). Error numbers above 511 are refused: the kernel does not take them from FUSE.

recover, from the order alone (also after an agent restart): the mounts whose source is
chaosplane-<short id> are lazily unmounted (umount2 MNT_DETACH) in every mount namespace concerned (the
agent's, the server's, the target's; another namespace through a short helper process that enters it),
then the server is killed. The files underneath were never touched by the mount and read back unchanged.
"""
from __future__ import annotations

import json
import os
import re
import select
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from typing import Any

from nodeagent.orders import FaultOrder, Refused

from . import iofault_fs as fs
from . import validate
from .marked import MARKER
from .namespaces import resolve

FUSE = "fuse"  # injector.faults.model.Capability.FUSE
SCRIPT = os.path.abspath(fs.__file__)
START_TIMEOUT = 10.0
ACTIONS = ("latency", "fault", "attrOverride", "mistake")
#: injector.faults.io.METHODS, copied: the agent imports nothing of the Django side.
METHODS = (
    "lookup", "forget", "getattr", "setattr", "readlink", "mknod", "mkdir", "unlink", "rmdir", "symlink",
    "rename", "link", "open", "read", "write", "statfs", "release", "fsync", "setxattr", "getxattr",
    "listxattr", "removexattr", "flush", "opendir", "readdir", "releasedir", "fsyncdir", "access", "create",
    "getlk", "setlk", "bmap",
)
#: Operations whose answers carry attributes, which attrOverride changes.
WITH_ATTRIBUTES = frozenset({"lookup", "getattr", "setattr", "create", "mkdir", "mknod", "symlink", "link"})
MAX_OCCURRENCES = 65536
MAX_LENGTH = 2**31
_ENV = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL": "C"}

_running: dict[str, subprocess.Popen[bytes]] = {}
_lock = threading.Lock()


# --- checking the order ------------------------------------------------------------------------------------------

def _volume(value: Any) -> str:
    path = validate.text(value, "volumePath", 1024)
    why = fs.refusal(path)
    if why:
        raise Refused(f"volumePath: {why}")
    return path


def _glob(value: Any, volume: str) -> str:
    pattern = validate.text(value, "path", 1024)
    if not pattern.startswith("/") or fs._CONTROL.search(pattern):
        raise Refused(f"path: {pattern[:80]!r} is not an absolute path or glob")
    if {".", ".."} & set(pattern.split("/")):
        raise Refused(f"path: {pattern[:80]!r} has . or .. in it")
    if pattern.rstrip("/") != volume and not pattern.startswith(volume + "/"):
        raise Refused(f"path: {pattern[:80]} is not under volumePath {volume}")
    try:
        re.compile(fs.glob_regex(pattern))
    except re.error as error:
        raise Refused(f"path: {pattern[:80]!r} is not a glob ({error})") from None
    return pattern


def _methods(value: Any, action: str) -> list[str] | None:
    if value is None:
        return None
    if not isinstance(value, list) or not 1 <= len(value) <= len(METHODS):
        raise Refused(f"methods: must be a list of 1 to {len(METHODS)} of {', '.join(METHODS)}")
    methods = [validate.choice(item, "methods item", METHODS) for item in value]
    if len(set(methods)) != len(methods):
        raise Refused("methods: a method is named twice")
    chosen = set(methods)
    if chosen <= fs.NEVER_SENT | {"forget"}:
        raise Refused(f"methods: {', '.join(methods)} never fire through FUSE (locks stay in the kernel, which also "
                      "checks access; bmap is for block devices; forget has no answer to delay or fail)")
    if action == "mistake" and not chosen & {"read", "write"}:
        raise Refused("methods: mistake corrupts data read or written, so methods must include read or write")
    if action == "attrOverride" and not chosen & WITH_ATTRIBUTES:
        raise Refused(f"methods: attrOverride changes the attributes answered by {', '.join(sorted(WITH_ATTRIBUTES))};"
                      " methods names none of them")
    return methods


def _attr(value: Any) -> dict[str, Any]:
    if not isinstance(value, dict) or not value:
        raise Refused("attr: must name at least one attribute")
    out: dict[str, Any] = {}
    for key, item in value.items():
        if key in ("ino", "size", "blocks"):
            out[key] = validate.integer(item, f"attr.{key}", 0, 2**64 - 1)
        elif key in ("nlink", "uid", "gid", "rdev"):
            out[key] = validate.integer(item, f"attr.{key}", 0, 2**32 - 1)
        elif key == "perm":
            out[key] = validate.integer(item, "attr.perm", 0, 0o7777)
        elif key == "kind":
            out[key] = validate.choice(item, "attr.kind", tuple(fs.KINDS))
        elif key in ("atime", "mtime", "ctime"):
            if not isinstance(item, dict) or set(item) - {"sec", "nsec"}:
                raise Refused(f"attr.{key}: must be {{sec, nsec}}")
            out[key] = {"sec": validate.integer(item.get("sec"), f"attr.{key}.sec", -(2**63), 2**63 - 1),
                        "nsec": validate.integer(item.get("nsec", 0), f"attr.{key}.nsec", 0, 999_999_999)}
        else:
            raise Refused(f"attr: {str(key)[:40]!r} is not an attribute")
    return out


def _mistake(value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise Refused("mistake: must be {filling, maxOccurrences, maxLength}")
    return {"filling": validate.choice(value.get("filling"), "mistake.filling", ("zero", "random")),
            "maxOccurrences": validate.integer(value.get("maxOccurrences"), "mistake.maxOccurrences", 1,
                                               MAX_OCCURRENCES),
            "maxLength": validate.integer(value.get("maxLength"), "mistake.maxLength", 1, MAX_LENGTH)}


def config(order: FaultOrder) -> dict[str, Any]:
    """The server's order, every value checked; refuses what is not well-formed or not allowed."""
    if order.kind != "IOChaos" or order.action not in ACTIONS:
        raise Refused(f"{str(order.kind)[:40]} {str(order.action)[:40]} is not an IOChaos action")
    p = order.params
    if not isinstance(p, dict):
        raise Refused("params must be an object")
    volume = _volume(p.get("volumePath"))
    cfg: dict[str, Any] = {
        "action": order.action,
        "volume": volume,
        "path": _glob(p["path"], volume) if p.get("path") is not None else None,
        "methods": _methods(p.get("methods"), order.action),
        "percent": validate.percent(p.get("percent", 100)),
    }
    if order.action == "latency":
        cfg["delay_ns"] = validate.duration_ns(p.get("delay"), "delay")
    elif order.action == "fault":
        # The kernel takes 1 to 511 in a FUSE answer; a bigger number would leave the operation hanging.
        cfg["errno"] = validate.integer(p.get("errno"), "errno (through FUSE)", 1, 511)
    elif order.action == "attrOverride":
        cfg["attr"] = _attr(p.get("attr"))
    else:
        cfg["mistake"] = _mistake(p.get("mistake"))
    return cfg


def _describe(cfg: dict[str, Any]) -> str:
    what = {"latency": lambda: f"+{cfg['delay_ns'] / 1e6:g} ms", "fault": lambda: f"errno {cfg['errno']}",
            "attrOverride": lambda: "attributes " + ", ".join(sorted(cfg["attr"])),
            "mistake": lambda: f"{cfg['mistake']['filling']} filling, up to {cfg['mistake']['maxOccurrences']} x "
                               f"{cfg['mistake']['maxLength']} bytes"}[cfg["action"]]()
    scope = f"{cfg['path'] or 'every file'}, {', '.join(cfg['methods']) if cfg['methods'] else 'every operation'}"
    return f"{what} on {scope} at {cfg['percent']:g}%"


# --- namespaces and processes ------------------------------------------------------------------------------------

def _mnt_ns(pid: int | str) -> int | None:
    try:
        return os.stat(f"/proc/{pid}/ns/mnt").st_ino
    except OSError:
        return None


def _target(order: FaultOrder) -> tuple[int | None, str]:
    """(the process whose mount namespace is meant, None for the host's = the agent's; a description)."""
    if order.target.kind == "netns":
        raise Refused("IOChaos acts on the files of a container, a process or the host, not of a network namespace")
    where = resolve(order.target)
    return where.pid, where.description


def _servers(short: str) -> list[int]:
    """Live FUSE servers of this fault: its marker in the environment, `iofault_fs.py serve` on the command
    line (whichever path the agent had then). Zombies have neither left and are not listed."""
    found = []
    needle = f"{MARKER}={short}".encode()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/environ", "rb") as f:
                if needle not in f.read().split(b"\0"):
                    continue
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                argv = f.read().split(b"\0")
        except OSError:
            continue
        if any(arg.endswith(b"/iofault_fs.py") and argv[i + 1:i + 2] == [b"serve"] for i, arg in enumerate(argv)):
            found.append(int(entry))
    return found


def _mounted_in(pid: int | str, short: str) -> bool:
    try:
        mounts = fs.read_mountinfo(f"/proc/{pid}/mountinfo")
    except OSError:
        return False
    return any(m.source == fs.SOURCE_PREFIX + short for m in mounts)


def _status(child: subprocess.Popen[bytes]) -> str:
    assert child.stdout is not None
    ready, _, _ = select.select([child.stdout], [], [], START_TIMEOUT)
    if not ready:
        return f"refused the FUSE server did not answer within {START_TIMEOUT:g} s"
    return child.stdout.readline().decode(errors="replace").strip()


def _agent_files_under(volume: str) -> str | None:
    for own in (sys.prefix, sys.base_prefix, sys.executable, os.path.dirname(os.path.dirname(SCRIPT))):
        real = os.path.realpath(own)
        if real == volume or real.startswith(volume.rstrip("/") + "/"):
            return real
    return None


def inject(order: FaultOrder) -> str:
    short = validate.short_id(order.fault_id)
    cfg = config(order)
    pid, description = _target(order)
    ns = _mnt_ns(pid) if pid is not None else None
    if pid is not None and ns is None:
        raise Refused(f"process {pid} is gone")
    if ns is None or ns == _mnt_ns("thread-self"):
        mine = _agent_files_under(cfg["volume"])
        if mine:
            raise Refused(f"volumePath {cfg['volume']} holds the agent's own files ({mine})")
    live = _servers(short)
    if live:
        return f"IO {order.action} already on {cfg['volume']} in {description} (FUSE server pid {live[0]})"
    recover(order)  # what a previous, half-done attempt may have left
    cfg.update(short=short, pid=pid, ns=ns)
    child = subprocess.Popen(  # an argv list; the checked order goes on stdin
        [sys.executable, "-I", "-S", SCRIPT, "serve"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL, start_new_session=True, cwd="/", env={**_ENV, MARKER: short},
    )
    with _lock:
        _running[order.fault_id] = child
    assert child.stdin is not None and child.stdout is not None
    try:
        child.stdin.write(json.dumps(cfg).encode())
        child.stdin.close()
    except BrokenPipeError:
        pass
    line = _status(child)
    child.stdout.close()
    if not line.startswith("ready "):
        recover(order)
        raise Refused(line.removeprefix("refused ").strip() or "the FUSE server exited without saying why")
    return (f"IO {order.action} ({_describe(cfg)}) on {line.removeprefix('ready ')} in {description}: FUSE server "
            f"pid {child.pid}; files opened before now keep the real file")


def _unmount_in(pid: int, ns: int, short: str) -> list[str]:
    """Lazily unmount this fault's mounts in the mount namespace of `pid`, through a helper that enters it."""
    done = subprocess.run(  # an argv list; the values go on stdin
        [sys.executable, "-I", "-S", SCRIPT, "unmount"], input=json.dumps({"short": short, "pid": pid, "ns": ns}),
        capture_output=True, text=True, timeout=30, check=False, cwd="/", env=_ENV,
    )
    line = done.stdout.strip()
    if line.startswith("unmounted"):
        return []
    if _mnt_ns(pid) != ns:
        return []  # the namespace went away with its last process, and the mount with it
    return [line.removeprefix("refused ") or f"unmount helper exited {done.returncode}: {done.stderr.strip()[:200]}"]


def recover(order: FaultOrder) -> None:
    short = validate.short_id(order.fault_id)
    with _lock:
        child = _running.pop(order.fault_id, None)
    servers = _servers(short)
    holders = list(servers)
    try:
        pid, _ = _target(order)
        if pid is not None:
            holders.append(pid)
    except (Refused, OSError):
        pass  # the target is gone; the server (if any) still tells where the mount is
    own = _mnt_ns("thread-self")
    namespaces: dict[int, int] = {}
    for holder in holders:
        ns = _mnt_ns(holder)
        if ns is not None and ns != own:
            namespaces.setdefault(ns, holder)
    _done, problems = fs.unmount_ours(short)  # the agent's own namespace (the host's)
    for ns, holder in namespaces.items():
        if _mounted_in(holder, short):
            problems += _unmount_in(holder, ns, short)
    for pid in servers:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    if child is not None:
        child.kill()
        child.wait(5)
    deadline = time.monotonic() + 5
    while _servers(short) and time.monotonic() < deadline:
        time.sleep(0.02)
    left = _servers(short)
    if left:
        problems.append(f"FUSE server(s) {left} still running")
    if problems:
        raise RuntimeError(f"IOChaos {order.fault_id}: " + "; ".join(problems))


def capability() -> tuple[str, bool, str]:
    """Mounts (and at once unmounts) an unserved FUSE filesystem on a temporary directory."""
    try:
        dev = os.open("/dev/fuse", os.O_RDWR | os.O_CLOEXEC)
    except FileNotFoundError:
        return FUSE, False, "no /dev/fuse (the fuse kernel module is not loaded)"
    except OSError as error:
        return FUSE, False, f"cannot open /dev/fuse: {error.strerror}"
    try:
        directory = tempfile.mkdtemp(prefix="chaosplane-fuse-probe-")
        try:
            fs.mount_fuse(dev, directory.encode(), fs.SOURCE_PREFIX + "probe", 2 | 4)  # MS_NOSUID | MS_NODEV
            fs.umount_detach(directory)
        except OSError as error:
            return FUSE, False, f"cannot mount FUSE: {error.strerror}"
        finally:
            try:
                os.rmdir(directory)
            except OSError:
                pass
    finally:
        os.close(dev)
    return FUSE, True, "FUSE over /dev/fuse, served by the agent's own passthrough (no libfuse needed)"


#: (kind, action) -> (inject, recover), merged into nodeagent.executors.REGISTRY.
EXECUTORS: dict[tuple[str, str], tuple[Callable[[FaultOrder], str], Callable[[FaultOrder], None]]] = {
    ("IOChaos", action): (inject, recover) for action in ACTIONS
}

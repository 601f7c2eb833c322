"""Entering a target's network namespace, and running argv lists there.

Python 3.11 has no os.setns, so libc's setns(2) is called through ctypes. A network namespace is a
per-thread attribute in Linux: a fresh thread enters the target's namespace, does its work (commands
it starts inherit the namespace), and ends; the agent's other threads never leave their own.
"""
from __future__ import annotations

import ctypes
import os
import subprocess
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from nodeagent.orders import Refused, Target

from . import containers, validate

CLONE_NEWNET = 0x40000000
NETNS_DIR = "/run/netns"
COMMAND_TIMEOUT = 30.0
T = TypeVar("T")

_libc = ctypes.CDLL(None, use_errno=True)


class CommandFailed(Exception):
    def __init__(self, argv: list[str], returncode: int, stderr: str) -> None:
        super().__init__(f"{' '.join(argv)} exited {returncode}: {stderr.strip()[:300]}")
        self.argv, self.returncode, self.stderr = argv, returncode, stderr


@dataclass(frozen=True)
class Resolved:
    """Where a fault lands: a network namespace file (None: the agent's own) and a process, if any."""

    netns: str | None
    pid: int | None
    description: str


def setns(path: str) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        if _libc.setns(fd, CLONE_NEWNET) != 0:
            err = ctypes.get_errno()
            raise OSError(err, f"setns({path}): {os.strerror(err)}")
    finally:
        os.close(fd)


def run_in(netns: str | None, work: Callable[[], T]) -> T:
    """`work()` in a thread inside `netns` (None: called here, in the agent's namespace)."""
    if netns is None:
        return work()
    box: dict[str, object] = {}

    def body() -> None:
        try:
            setns(netns)
            box["result"] = work()
        except BaseException as error:  # handed to the caller's thread
            box["error"] = error

    thread = threading.Thread(target=body, name=f"netns:{netns}", daemon=True)
    thread.start()
    thread.join()
    if "error" in box:
        raise box["error"]  # type: ignore[misc]
    return box["result"]  # type: ignore[return-value]


def run(argv: list[str], check: bool = True, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    """An argv list, never a shell; in whatever namespace the calling thread is in."""
    done = subprocess.run(argv, capture_output=True, text=True, timeout=COMMAND_TIMEOUT, check=False, input=stdin,
                          env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL": "C"})
    if check and done.returncode != 0:
        raise CommandFailed(argv, done.returncode, done.stderr)
    return done


def netns_of_pid(pid: int) -> str:
    path = f"/proc/{validate.pid(pid)}/ns/net"
    if not os.path.exists(path):
        raise Refused(f"process {pid} does not exist")
    return path


def resolve(target: Target) -> Resolved:
    """The namespace and process a target means; refuses what does not exist or is not well-formed."""
    if target.kind == "host":
        return Resolved(None, None, "the host")
    if target.kind == "netns":
        if target.name is not None:
            name = validate.netns_name(target.name)
            path = os.path.join(NETNS_DIR, name)
            if not os.path.exists(path):
                raise Refused(f"network namespace {name} does not exist")
            return Resolved(path, None, f"netns {name}")
        if target.pid is not None:
            pid = validate.pid(target.pid)
            return Resolved(netns_of_pid(pid), pid, f"the netns of process {pid}")
        raise Refused("a netns target needs a name or a pid")
    if target.kind == "process":
        if target.pid is not None:
            pid = validate.pid(target.pid)
            return Resolved(netns_of_pid(pid), pid, f"process {pid}")
        if target.name is not None:
            from .process import pids_by_name

            name = validate.process_name(target.name)
            found = pids_by_name(name)
            if not found:
                raise Refused(f"no process named {name}")
            return Resolved(netns_of_pid(found[0]), found[0], f"process {name} ({found[0]})")
        raise Refused("a process target needs a pid or a name")
    if target.kind == "container":
        cid = validate.container_id(target.container_id)
        pid = containers.container_pid(cid, target.runtime)
        return Resolved(netns_of_pid(pid), pid, f"container {cid[:12]} (pid {pid})")
    raise Refused(f"unknown target kind {target.kind!r}")

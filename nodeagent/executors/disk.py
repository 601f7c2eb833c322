"""PhysicalMachineChaos disk-fill, disk-read-payload and disk-write-payload.

    disk-fill           a file `chaosplane-fill-<id>` in the directory `path` (default /var/tmp), of
                        exactly `size` bytes (or that share of the filesystem's size, "50%"): reserved
                        with fallocate, or written with dd (`fill-by-fallocate: false`) in the
                        background. Refused when it does not fit in the space available: a fill never
                        goes past what is asked. The file is deleted at recovery.
    disk-write-payload  `payload-process-num` dd processes writing `size` bytes in all (O_DSYNC) to
                        `chaosplane-write-<id>-<n>` files in the directory `path` (default /var/tmp);
                        they run until done or until recovery, which kills them and deletes the files.
    disk-read-payload   `payload-process-num` dd processes reading `size` bytes in all (O_DIRECT where
                        the filesystem has it, so the disk is read, not the page cache) from `path`, a
                        regular file or a block device (default: the host's root device); killed at
                        recovery if still running.

Directories must exist on a filesystem that stores data (not proc, sysfs, cgroup, ...); paths are
checked and resolved by files_paths, in the target's filesystem. Every dd carries
CHAOSPLANE_FAULT=<short id> in its environment, so recovery finds it after an agent restart; every file
is named after the fault, so recovery needs nothing but the order.
"""
from __future__ import annotations

import contextlib
import logging
import os
import shutil
import signal
import stat
import subprocess
import threading
import time
from collections.abc import Callable
from typing import Any

from nodeagent.orders import FaultOrder, Refused

from . import files_paths as fp
from . import validate
from .marked import MARKER, gone
from .marked import marked as marked_processes
from .network import params

DEFAULT_DIR = "/var/tmp"  # noqa: S108 - FHS's disk-backed temporary directory (/tmp is often tmpfs: memory)
DIRECT_ALIGN = 4096

log = logging.getLogger("nodeagent.executors.disk")
_running: dict[str, list[subprocess.Popen[bytes]]] = {}
_lock = threading.Lock()


def _human(n: int) -> str:
    for unit, size in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if n >= size:
            return f"{n / size:.1f} {unit}"
    return f"{n} B"


def _bytes(value: Any, what: str, allow_percent: bool) -> tuple[int | None, float | None]:
    """(bytes, None) or, where allowed, (None, percent)."""
    spelled = validate.size(value, what)
    if spelled.endswith("%"):
        if not allow_percent:
            raise Refused(f"{what}: give an amount of bytes (e.g. 1GiB), not a share")
        return None, float(spelled[:-1])
    return int(spelled[:-1]), None


def _workers(p: dict[str, Any]) -> int:
    return validate.integer(p.get("payload-process-num", 1), "payload-process-num", 1, 255)


def _dd() -> str:
    binary = shutil.which("dd", path=fp.PATH_ENV)
    if binary is None:
        raise Refused("dd is not installed on this host")
    return binary


def _directory(p: dict[str, Any], root: fp.Root) -> tuple[str, str]:
    """(the path as asked, the resolved directory inside the root), checked to be a directory on a
    filesystem that stores data."""
    raw = p.get("path") if p.get("path") not in (None, "") else DEFAULT_DIR
    inner = fp.locate(root, raw, "path", follow_final=True)
    host = root.host(inner)
    if not os.path.exists(host):
        raise Refused(f"path: {raw} does not exist")
    if not os.path.isdir(host):
        raise Refused(f"path: {raw} is not a directory (the fault's file is made in it, named after the fault)")
    point, fstype, _ = fp.mount_of(root, inner)
    if fstype in fp.PSEUDO_FS:
        raise Refused(f"path: {raw} is on a {fstype} filesystem ({point}), which stores no data")
    return raw, inner


def _free(host_dir: str) -> tuple[int, int]:
    """(bytes available to unprivileged programs, total bytes) of the filesystem."""
    vfs = os.statvfs(host_dir)
    return vfs.f_bavail * vfs.f_frsize, vfs.f_blocks * vfs.f_frsize


def _spawn(order: FaultOrder, argv: list[str]) -> subprocess.Popen[bytes]:
    """A dd marked with the fault's short id, in its own session, remembered for recovery."""
    child = subprocess.Popen(  # an argv list of checked values, no shell
        argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True,
        cwd="/", env={"PATH": fp.PATH_ENV, "LC_ALL": "C", MARKER: validate.short_id(order.fault_id)},
    )
    with _lock:
        _running.setdefault(order.fault_id, []).append(child)
    return child


def _failed_at_once(children: list[subprocess.Popen[bytes]]) -> str | None:
    """The error of a dd that exited non-zero within a moment of starting, if any."""
    time.sleep(0.15)
    for child in children:
        if child.poll() not in (None, 0):
            err = child.stderr.read().decode(errors="replace").strip() if child.stderr else ""
            return f"dd exited {child.returncode}: {err[-200:]}"
    return None


# disk-fill --------------------------------------------------------------------------------------------


def _fill_name(order: FaultOrder) -> str:
    return f"chaosplane-fill-{validate.short_id(order.fault_id)}"


def _fill(order: FaultOrder, p: dict[str, Any], root: fp.Root) -> str:
    amount, share = _bytes(p.get("size"), "size", allow_percent=True)
    by_fallocate = p.get("fill-by-fallocate", True)
    if not isinstance(by_fallocate, bool):
        raise Refused(f"fill-by-fallocate: {by_fallocate!r:.20} is not true or false")
    raw, inner = _directory(p, root)
    dd = None if by_fallocate else _dd()
    host_dir = root.host(inner)
    free, total = _free(host_dir)
    if share is not None:
        amount = int(total * share / 100)
        if amount < 1:
            raise Refused(f"size: {share:g}% of {raw}'s filesystem is 0 bytes")
    assert amount is not None
    if amount > free:
        raise Refused(f"size: {_human(amount)} is more than the {_human(free)} available on the filesystem of {raw}")
    path = os.path.join(host_dir, _fill_name(order))
    if os.path.lexists(path):
        return f"{raw}/{_fill_name(order)} already exists: filled before"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    if by_fallocate:
        try:
            os.posix_fallocate(fd, 0, amount)
        except OSError as error:
            os.unlink(path)
            raise Refused(f"size: fallocate of {_human(amount)} in {raw} failed: {error.strerror}") from None
        finally:
            os.close(fd)
        return f"filled {_human(amount)} of {raw} with {_fill_name(order)} (fallocate) in {root.description}"
    os.close(fd)
    assert dd is not None
    child = _spawn(order, [dd, "if=/dev/zero", f"of={path}", "bs=1M", f"count={amount}", "iflag=count_bytes",
                           "oflag=nofollow", "conv=notrunc,fsync", "status=none"])
    failed = _failed_at_once([child])
    if failed:
        recover(order)
        raise Refused(f"path: writing {_human(amount)} in {raw} failed: {failed}")
    return f"filling {_human(amount)} of {raw} with {_fill_name(order)} (dd, pid {child.pid}) in {root.description}"


def _undo_fill(order: FaultOrder, p: dict[str, Any], root: fp.Root) -> None:
    _remove_in(order, p, root, lambda name: name == _fill_name(order))


# disk-write-payload -----------------------------------------------------------------------------------


def _write_prefix(order: FaultOrder) -> str:
    return f"chaosplane-write-{validate.short_id(order.fault_id)}-"


def _shares(total: int, n: int, align: int = 1) -> list[int]:
    """`total` split in `n` parts (multiples of `align`, zero parts dropped), adding up to at most `total`."""
    base, rest = divmod(total // align, n)
    return [(base + (1 if i < rest else 0)) * align for i in range(n) if base + (1 if i < rest else 0)]


def _write(order: FaultOrder, p: dict[str, Any], root: fp.Root) -> str:
    amount, _ = _bytes(p.get("size"), "size", allow_percent=False)
    assert amount is not None
    n = _workers(p)
    raw, inner = _directory(p, root)
    dd = _dd()
    host_dir = root.host(inner)
    free, _ = _free(host_dir)
    if amount > free:
        raise Refused(f"size: {_human(amount)} is more than the {_human(free)} available on the filesystem of {raw}")
    with _lock:
        if any(child.poll() is None for child in _running.get(order.fault_id, [])):
            return "disk write payload already running"
    children = []
    for i, share in enumerate(_shares(amount, n)):
        path = os.path.join(host_dir, f"{_write_prefix(order)}{i}")
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600))
        children.append(_spawn(order, [dd, "if=/dev/zero", f"of={path}", "bs=1M", f"count={share}",
                                       "iflag=count_bytes", "oflag=dsync,nofollow", "conv=notrunc", "status=none"]))
    failed = _failed_at_once(children)
    if failed:
        recover(order)
        raise Refused(f"path: writing in {raw} failed: {failed}")
    return (f"{len(children)} dd process(es) writing {_human(amount)} in all to {raw} in {root.description} "
            f"(pids {', '.join(str(c.pid) for c in children)})")


def _undo_write(order: FaultOrder, p: dict[str, Any], root: fp.Root) -> None:
    prefix = _write_prefix(order)
    _remove_in(order, p, root, lambda name: name.startswith(prefix) and name[len(prefix):].isdigit())


def _remove_in(order: FaultOrder, p: dict[str, Any], root: fp.Root, ours: Callable[[str], bool]) -> None:
    """Delete this fault's regular files in the order's directory (the directory as resolved now)."""
    try:
        raw = p.get("path") if p.get("path") not in (None, "") else DEFAULT_DIR
        host_dir = root.host(fp.locate(root, raw, "path", follow_final=True))
        names = os.listdir(host_dir)
    except (Refused, FileNotFoundError, NotADirectoryError):
        return  # nothing can have been made there
    for name in names:
        if ours(name):
            path = os.path.join(host_dir, name)
            with contextlib.suppress(FileNotFoundError):
                if stat.S_ISREG(os.lstat(path).st_mode):
                    os.unlink(path)


# disk-read-payload ------------------------------------------------------------------------------------


def _root_device() -> str:
    _, fstype, source = fp.mount_of(fp.Root("", None, "the host"), "/")
    try:
        if source.startswith("/dev/") and stat.S_ISBLK(os.stat(source).st_mode):
            return source
    except OSError:
        pass
    raise Refused(f"path: the root filesystem ({fstype} from {source or 'nowhere'}) has no block device to read; "
                  "give a file or a block device")


def _read_source(p: dict[str, Any], root: fp.Root) -> tuple[str, str]:
    """(the path as asked, the path to open): a regular file or a block device, nothing else (opening a
    character device can have effects of its own: a watchdog reboots the host)."""
    raw = p.get("path")
    if raw in (None, ""):
        if root.prefix:
            raise Refused("path: give the file to read (the default, the root device, is for host targets)")
        device = _root_device()
        return f"the root device {device}", device
    path = fp.abs_path(raw, "path")
    inner = fp.resolve_in(root, path, "path", follow_final=True)
    for checked in (path, inner):
        if checked == "/" or any(checked == t or checked.startswith(t + "/") for t in ("/proc", "/sys")):
            raise Refused(f"path: {checked[:80]} is a kernel interface, not data to read")
    host = root.host(inner)
    try:
        mode = os.stat(host).st_mode
    except OSError as error:
        raise Refused(f"path: {raw}: {error.strerror}") from None
    if not (stat.S_ISREG(mode) or stat.S_ISBLK(mode)):
        raise Refused(f"path: {raw} is neither a regular file nor a block device")
    return raw, host


def _read(order: FaultOrder, p: dict[str, Any], root: fp.Root) -> str:
    amount, _ = _bytes(p.get("size"), "size", allow_percent=False)
    assert amount is not None
    n = _workers(p)
    raw, host = _read_source(p, root)
    dd = _dd()
    try:
        fd = os.open(host, os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK)
    except OSError as error:
        raise Refused(f"path: {raw}: {error.strerror}") from None
    try:
        length = os.lseek(fd, 0, os.SEEK_END)  # block devices have no st_size
    finally:
        os.close(fd)
    if length <= 0:
        raise Refused(f"path: {raw} is empty")
    try:
        os.close(os.open(host, os.O_RDONLY | os.O_DIRECT | os.O_CLOEXEC | os.O_NONBLOCK))
        direct = True
    except OSError:  # tmpfs and a few others: no O_DIRECT
        direct = False
    with _lock:
        if any(child.poll() is None for child in _running.get(order.fault_id, [])):
            return "disk read payload already running"
    shares = _shares(amount, n, DIRECT_ALIGN if direct else 1) or [amount]
    flags = "count_bytes,skip_bytes,fullblock" + (",direct" if direct else "")
    children = []
    for i, share in enumerate(shares):
        skip = (length * i // len(shares)) // 2**20 * 2**20  # spread over the file, 1 MiB aligned
        children.append(_spawn(order, [dd, f"if={host}", "of=/dev/null", "bs=1M", f"count={share}", f"skip={skip}",
                                       f"iflag={flags}", "status=none"]))
    failed = _failed_at_once(children)
    if failed:
        recover(order)
        raise Refused(f"path: reading {raw} failed: {failed}")
    return (f"{len(children)} dd process(es) reading {_human(sum(shares))} in all from {raw}"
            f"{' (O_DIRECT)' if direct else ''} (pids {', '.join(str(c.pid) for c in children)})")


# Processes --------------------------------------------------------------------------------------------


marked = marked_processes  # nodeagent.executors.marked


_gone = gone  # nodeagent.executors.marked


def _stop_workers(order: FaultOrder) -> None:
    """SIGKILL this fault's dd processes (ours and any a previous agent left) and wait until they are gone,
    so the space of the files they held is free when recovery returns."""
    with _lock:
        children = _running.pop(order.fault_id, [])
    pids = {child.pid for child in children if child.poll() is None} | set(marked(validate.short_id(order.fault_id)))
    for pid in pids:
        if pid != os.getpid():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 5
    for pid in pids:
        while not _gone(pid) and time.monotonic() < deadline:
            time.sleep(0.01)
    for child in children:
        with contextlib.suppress(subprocess.TimeoutExpired):
            child.wait(1)
        if child.stderr:
            child.stderr.close()


def running(fault_id: str) -> list[int]:
    """The pids of this fault's dd processes that still run (for tests and status)."""
    with _lock:
        return [c.pid for c in _running.get(fault_id, []) if c.poll() is None]


# Entry points -----------------------------------------------------------------------------------------

_INJECT: dict[str, Callable[[FaultOrder, dict[str, Any], fp.Root], str]] = {
    "disk-fill": _fill, "disk-write-payload": _write, "disk-read-payload": _read,
}
_UNDO: dict[str, Callable[[FaultOrder, dict[str, Any], fp.Root], None]] = {
    "disk-fill": _undo_fill, "disk-write-payload": _undo_write,
}


def inject(order: FaultOrder) -> str:
    validate.fault_id(order.fault_id)
    action = _INJECT.get(order.action)
    if action is None:
        raise Refused(f"{order.action[:40]} is not a disk action")
    return action(order, params(order), fp.root_of(order.target))


def recover(order: FaultOrder) -> None:
    """Kill the fault's dd processes, then delete its files; idempotent, from the order alone."""
    validate.fault_id(order.fault_id)
    _stop_workers(order)
    undo = _UNDO.get(order.action)
    if undo is None:
        return
    try:
        root = fp.root_of(order.target)
    except Refused as why:
        log.warning("fault %s: cannot reach the target's files any more (%s)", order.fault_id, why)
        return
    undo(order, params(order), root)


def capability() -> tuple[str, bool, str]:
    return fp.capability()


#: (kind, action) -> (inject, recover), merged into nodeagent.executors.REGISTRY.
EXECUTORS: dict[tuple[str, str], tuple[Callable[[FaultOrder], str], Callable[[FaultOrder], None]]] = {
    ("PhysicalMachineChaos", name): (inject, recover) for name in _INJECT
}

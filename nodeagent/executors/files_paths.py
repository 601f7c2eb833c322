"""Paths, roots and state for the file and disk faults (files.py, disk.py).

Every path from an order is checked before anything is touched: text, absolute, normalised (no '.',
'..', '//' or trailing '/'), no NUL or newline, each name at most 255 bytes. It is then resolved inside
the target's root: the host's for a host target, /proc/PID/root for a process or container in another
mount namespace, with symbolic links followed *within* that root (an absolute link in a container
means the container's path, never the host's). The resolved path is refused when it reaches:

- `/` itself: removing, renaming or chmod-ing the root takes the host, and this agent, down;
- /proc, /sys: kernel interfaces; a write there is a kernel setting, not file content, and a rename
  back does not undo it;
- /dev: device nodes; a write to a block device destroys a filesystem, and merely opening some
  (a watchdog) reboots the host;
- /boot: the kernel and boot loader; a fault left there by an agent that died can leave a host that
  does not boot again;
- /etc/shadow, /etc/gshadow, /etc/passwd, /etc/group, /etc/sudoers: the account databases; moved
  aside, chmod-ed or appended to, they lock everyone out (the operator who would repair it too) or
  grant root;
- the agent's own state directory (journal, the state that undoes faults), on the host;
- for moves and mode changes (file-delete, file-rename, file-modify) a top-level directory as a
  whole (/usr, /etc, /var, ...): moving one aside breaks every program, the agent that has to move it
  back included.

State that recovery needs beyond the order (an original size, mode or name) is kept in a JSON file
named after the fault id under $CHAOSPLANE_AGENT_STATE_DIR/<family> (default
/var/lib/chaosplane-agent/<family>), mode 0700, written atomically before the change is made.
"""
from __future__ import annotations

import contextlib
import ctypes
import errno
import json
import os
import posixpath
import re
import shutil
import stat
import tempfile
from collections import deque
from dataclasses import dataclass
from typing import Any

from nodeagent.orders import Refused, Target

from . import validate
from .namespaces import resolve as resolve_target

STATE_ENV = "CHAOSPLANE_AGENT_STATE_DIR"
DEFAULT_STATE_ROOT = "/var/lib/chaosplane-agent"
MAX_PATH = 4096
MAX_LINKS = 40  # the kernel's own limit on symbolic links in one lookup
DENIED_TREES = {
    "/proc": "kernel interfaces, not files",
    "/sys": "kernel interfaces, not files",
    "/dev": "device nodes: a write can destroy a filesystem, an open can reboot the host",
    "/boot": "the kernel and boot loader: a fault left there can stop the host from booting",
}
DENIED_FILES = ("/etc/shadow", "/etc/gshadow", "/etc/passwd", "/etc/group", "/etc/sudoers")
# Filesystems that store nothing: filling or loading them is meaningless or a kernel setting.
PSEUDO_FS = frozenset({
    "proc", "sysfs", "devtmpfs", "devpts", "cgroup", "cgroup2", "debugfs", "tracefs", "securityfs", "pstore",
    "bpf", "configfs", "fusectl", "mqueue", "hugetlbfs", "autofs", "efivarfs", "binfmt_misc", "nsfs",
    "selinuxfs", "rpc_pipefs",
})
PATH_ENV = "/usr/sbin:/usr/bin:/sbin:/bin"

_libc = ctypes.CDLL(None, use_errno=True)
_AT_FDCWD = -100
_RENAME_NOREPLACE = 1


# Paths ------------------------------------------------------------------------------------------------


def abs_path(value: Any, what: str) -> str:
    """An absolute, normalised path, or Refused naming `what`."""
    if not isinstance(value, str):
        raise Refused(f"{what}: {value!r:.60} is not text")
    if not value or len(value) > MAX_PATH:
        raise Refused(f"{what}: must be 1 to {MAX_PATH} characters")
    if "\x00" in value or "\n" in value:
        raise Refused(f"{what}: contains a NUL byte or a newline")
    if not value.startswith("/"):
        raise Refused(f"{what}: {value[:80]!r} is not an absolute path")
    if value.startswith("//") or posixpath.normpath(value) != value:
        raise Refused(f"{what}: {value[:80]!r} is not a normalised path (no '.', '..', '//' or trailing '/')")
    if any(len(part.encode()) > 255 for part in value.split("/")):
        raise Refused(f"{what}: a name in {value[:80]!r} is longer than 255 bytes")
    return value


def state_root() -> str:
    return os.environ.get(STATE_ENV) or DEFAULT_STATE_ROOT


@dataclass(frozen=True)
class Root:
    """Where a target's paths live: `prefix` "" for the agent's own mount namespace, else /proc/PID/root."""

    prefix: str
    pid: int | None
    description: str

    def host(self, inner: str) -> str:
        """The path the agent opens for the target's path `inner`."""
        return self.prefix + inner if self.prefix else inner


def root_of(target: Target) -> Root:
    """The filesystem a target sees. Network namespaces share the host's files; a process or container
    in the agent's own mount namespace too. Raises Refused when the process is gone."""
    if target.kind in ("host", "netns"):
        return Root("", None, "the host")
    where = resolve_target(target)
    pid = where.pid
    if pid is None:
        return Root("", None, "the host")
    try:
        same = os.readlink(f"/proc/{pid}/ns/mnt") == os.readlink("/proc/self/ns/mnt")
    except OSError:
        raise Refused(f"cannot see the mount namespace of {where.description}") from None
    if same:
        return Root("", pid, where.description)
    return Root(f"/proc/{pid}/root", pid, f"the filesystem of {where.description}")


def resolve_in(root: Root, path: str, what: str, follow_final: bool) -> str:
    """`path` with its symbolic links followed inside `root` (the final one only with `follow_final`),
    as a path inside the root. Components that do not exist are kept as they are."""
    parts: deque[str] = deque(path.split("/")[1:])
    done: list[str] = []
    hops = 0
    while parts:
        name = parts.popleft()
        if name in ("", "."):
            continue
        if name == "..":
            if done:
                done.pop()
            continue
        if not parts and not follow_final:
            done.append(name)
            break
        here = root.host("/" + "/".join([*done, name]))
        try:
            st = os.lstat(here)
        except (FileNotFoundError, NotADirectoryError):
            rest = [p for p in [name, *parts] if p not in ("", ".")]
            return posixpath.normpath("/" + "/".join(done + rest))
        if stat.S_ISLNK(st.st_mode):
            hops += 1
            if hops > MAX_LINKS:
                raise Refused(f"{what}: too many symbolic links in {path[:80]!r}")
            link = os.readlink(here)
            if link.startswith("/"):
                done = []
            parts.extendleft(reversed(link.split("/")))
            continue
        done.append(name)
    return "/" + "/".join(done)


def check_allowed(inner: str, what: str, *, moves: bool = False, root: Root | None = None) -> None:
    """Refuse the paths no fault may touch (see the module docstring for why)."""
    if inner == "/":
        raise Refused(f"{what}: the root directory is never a fault's target")
    for tree, why in DENIED_TREES.items():
        if inner == tree or inner.startswith(tree + "/"):
            raise Refused(f"{what}: {inner[:80]} is under {tree}, which the agent never touches ({why})")
    if inner in DENIED_FILES:
        raise Refused(f"{what}: {inner} is an account database; the agent never changes it")
    own = state_root().rstrip("/") or "/"
    if (root is None or not root.prefix) and (inner == own or inner.startswith(own + "/")):
        raise Refused(f"{what}: {inner[:80]} is in this agent's state directory, which recovery depends on")
    if moves and inner.count("/") == 1:
        raise Refused(f"{what}: {inner} is a top-level directory; moving or changing it breaks the host, and "
                      "this agent with it")


def locate(root: Root, value: Any, what: str, *, follow_final: bool, moves: bool = False) -> str:
    """Validate a path from the order, resolve it in `root`, refuse what may not be touched; returns
    the path inside the root (open it as root.host(...))."""
    path = abs_path(value, what)
    check_allowed(path, what, moves=moves, root=root)
    inner = resolve_in(root, path, what, follow_final)
    check_allowed(inner, what, moves=moves, root=root)
    return inner


# Mounts ------------------------------------------------------------------------------------------------

_OCTAL = re.compile(r"\\([0-7]{3})")


def _unescape(text: str) -> str:
    return _OCTAL.sub(lambda m: chr(int(m.group(1), 8)), text)


def mount_of(root: Root, inner: str) -> tuple[str, str, str]:
    """(mount point, filesystem type, source) of the mount holding `inner`, as the target sees it."""
    info = f"/proc/{root.pid}/mountinfo" if root.prefix else "/proc/self/mountinfo"
    best = ("/", "", "")
    with open(info, encoding="utf-8", errors="surrogateescape") as f:
        for line in f:
            left, _, right = line.partition(" - ")
            fields, tail = left.split(" "), right.split(" ")
            if len(fields) < 5 or len(tail) < 2:
                continue
            point = _unescape(fields[4])
            inside = point == "/" or inner == point or inner.startswith(point.rstrip("/") + "/")
            if inside and len(point) >= len(best[0]):  # the later of two equal ones is mounted on top
                best = (point, tail[0], _unescape(tail[1]))
    return best


# Renames ----------------------------------------------------------------------------------------------


def rename_noreplace(source: str, dest: str) -> None:
    """rename(2) that fails with FileExistsError rather than replace `dest` (renameat2 NOREPLACE; where
    the filesystem lacks it, a check just before the rename)."""
    fn = getattr(_libc, "renameat2", None)
    if fn is not None:
        fn.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
        if fn(_AT_FDCWD, os.fsencode(source), _AT_FDCWD, os.fsencode(dest), _RENAME_NOREPLACE) == 0:
            return
        err = ctypes.get_errno()
        if err not in (errno.EINVAL, errno.ENOSYS):
            raise OSError(err, os.strerror(err), source, None, dest)
    if os.path.lexists(dest):
        raise FileExistsError(errno.EEXIST, os.strerror(errno.EEXIST), dest)
    os.rename(source, dest)


def move_out_of_the_way(root: Root, inner: str, tag: str) -> str:
    """Rename whatever now sits at `inner` to a hidden sibling `.chaosplane-<tag>.recreated[.N]`, so the
    original can come back without destroying what a program made meanwhile. Returns its new path."""
    parent = posixpath.dirname(inner)
    for n in range(100):
        name = f".chaosplane-{tag}.recreated" + (f".{n}" if n else "")
        aside = posixpath.join(parent, name)
        try:
            rename_noreplace(root.host(inner), root.host(aside))
            return aside
        except FileExistsError:
            continue
    raise OSError(errno.EEXIST, f"no free name to move {inner} aside")


# State files ------------------------------------------------------------------------------------------


def state_dir(family: str) -> str:
    """$CHAOSPLANE_AGENT_STATE_DIR/<family>, created 0700 (and made 0700 if it was not)."""
    path = os.path.join(state_root(), family)
    os.makedirs(path, mode=0o700, exist_ok=True)
    st = os.lstat(path)
    if not stat.S_ISDIR(st.st_mode):
        raise RuntimeError(f"{path} is not a directory")
    if stat.S_IMODE(st.st_mode) != 0o700:
        os.chmod(path, 0o700)
    return path


def _state_path(family: str, fault_id: str) -> str:
    return os.path.join(state_dir(family), f"{validate.fault_id(fault_id)}.json")


def save_state(family: str, fault_id: str, data: dict[str, Any]) -> None:
    """Written to a temporary file, synced, then renamed into place: never half a state file."""
    path = _state_path(family, fault_id)
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path), prefix=".tmp-")
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(data, f, sort_keys=True)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    dir_fd = os.open(os.path.dirname(path), os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def load_state(family: str, fault_id: str) -> dict[str, Any] | None:
    path = os.path.join(state_root(), family, f"{validate.fault_id(fault_id)}.json")
    try:
        with open(path) as f:
            data = json.load(f)
    except FileNotFoundError:
        return None
    if not isinstance(data, dict):
        raise RuntimeError(f"{path} does not hold a fault's state")
    return data


def drop_state(family: str, fault_id: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(os.path.join(state_root(), family, f"{validate.fault_id(fault_id)}.json"))


def state_files(family: str) -> list[str]:
    """The state files of a family (tests check that none is left)."""
    path = os.path.join(state_root(), family)
    return sorted(os.listdir(path)) if os.path.isdir(path) else []


# Capability -------------------------------------------------------------------------------------------


def capability() -> tuple[str, bool, str]:
    """"filesystem": dd on PATH (disk loads and write fills), fallocate in /var/tmp, and a state directory
    this agent can create or write. Creates and removes one 4 KiB probe file, nothing else."""
    problems, notes = [], []
    dd = shutil.which("dd", path=PATH_ENV)
    if dd is None:
        problems.append("dd is not installed (disk payloads and fill-by-dd refused)")
    else:
        notes.append(f"dd at {dd}")
    try:
        fd, probe = tempfile.mkstemp(prefix=".chaosplane-probe-", dir="/var/tmp")  # noqa: S108 - a probe, removed
        try:
            os.posix_fallocate(fd, 0, 4096)
            notes.append("fallocate in /var/tmp")
        finally:
            os.close(fd)
            os.unlink(probe)
    except OSError as error:
        notes.append(f"no fallocate in /var/tmp ({error.strerror}): fills are written")
    _, _, device = mount_of(Root("", None, "the host"), "/")
    try:
        os.close(os.open(device, os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK))
        notes.append(f"root device {device} readable")
    except OSError as error:
        notes.append(f"root device {device or '(none)'} not readable ({error.strerror}): disk-read-payload needs a "
                     "path")
    place = state_root()
    while not os.path.exists(place) and place != "/":
        place = os.path.dirname(place)
    if not (os.path.isdir(place) and os.access(place, os.W_OK | os.X_OK)):
        problems.append(f"cannot write the state directory {state_root()} (file-* faults need it)")
    else:
        notes.append(f"state in {state_root()}")
    return "filesystem", not problems, "; ".join(problems + notes)

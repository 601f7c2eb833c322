"""PhysicalMachineChaos file-* actions, in the target's filesystem (the host's, or /proc/PID/root of a
process or container in another mount namespace). Paths are checked and resolved by files_paths.

    file-create    a new empty file (file-name) or directory (dir-name); removed at recovery, only if it
                   is still the one this fault made (same inode)
    file-modify    chmod to `privilege` (octal digits as chmod's: 600, 4755); the old mode put back
    file-delete    moved aside to `.chaosplane-<id>.deleted` in the same directory (a rename: the same
                   inode, bytes and metadata), moved back at recovery
    file-rename    source-file -> dest-file (refused when dest-file exists or is on another filesystem),
                   renamed back at recovery
    file-append    `data` appended `count` times; truncated back to the original length at recovery
    file-replace   origin-string -> dest-string in place (every line, or only `line`); one-shot as in
                   the catalogue: nothing is put back

What recovery needs besides the order (the original mode, length, names) is written to a state file
named after the fault id before anything changes, so a fresh agent process can undo it after the
previous one was killed. Recovery acts only on what that state says this fault did: after a refused
inject, or for a fault never applied, it does nothing. When a program recreated a deleted or renamed
path meanwhile, that one is kept as `.chaosplane-<id>.recreated` beside it and the original comes
back.
"""
from __future__ import annotations

import errno
import logging
import os
import posixpath
import shutil
import stat
from collections.abc import Callable
from typing import Any

from nodeagent.orders import FaultOrder, Refused

from . import files_paths as fp
from . import validate
from .network import params

FAMILY = "files"
MAX_REPLACE = 64 * 2**20  # file-replace reads the whole file
CHUNK = 2**20

log = logging.getLogger("nodeagent.executors.files")


def _one_of(p: dict[str, Any], a: str, b: str) -> tuple[str, Any]:
    given = [name for name in (a, b) if p.get(name) not in (None, "")]
    if len(given) != 1:
        raise Refused(f"{a}: give {a} or {b} (one of them)")
    return given[0], p[given[0]]


def _mode(value: Any) -> int:
    """chmod's octal digits written as a number (600, 4755) or as text."""
    text = str(value) if isinstance(value, int) and not isinstance(value, bool) else value
    if not isinstance(text, str) or not 1 <= len(text) <= 4 or not set(text) <= set("01234567"):
        raise Refused(f"privilege: {value!r:.40} is not a mode (octal digits 0-7, e.g. 600 or 4755)")
    return int(text, 8)


def _lstat(path: str) -> os.stat_result | None:
    try:
        return os.lstat(path)
    except (FileNotFoundError, NotADirectoryError):
        return None


def _same(st: os.stat_result | None, state: dict[str, Any]) -> bool:
    return st is not None and (st.st_ino, st.st_dev) == (state.get("ino"), state.get("dev"))


def _need_parent(root: fp.Root, inner: str, what: str) -> None:
    parent = posixpath.dirname(inner)
    if not os.path.isdir(root.host(parent)):
        raise Refused(f"{what}: the directory {parent} does not exist")


def _applied(order: FaultOrder) -> dict[str, Any] | None:
    """The state of an earlier inject of this fault: a finished one is returned (inject is then a no-op),
    a half-done one is undone first."""
    state = fp.load_state(FAMILY, order.fault_id)
    if state is not None and not state.get("applied"):
        recover(order)
        return None
    return state


def _mark_applied(order: FaultOrder, state: dict[str, Any], **more: Any) -> None:
    fp.save_state(FAMILY, order.fault_id, {**state, **more, "applied": True})


# file-create ------------------------------------------------------------------------------------------


def _create(order: FaultOrder, p: dict[str, Any], root: fp.Root) -> str:
    field, raw = _one_of(p, "file-name", "dir-name")
    inner = fp.locate(root, raw, field, follow_final=False)
    _need_parent(root, inner, field)
    host = root.host(inner)
    if os.path.lexists(host):
        raise Refused(f"{field}: {raw} already exists; file-create makes a new one (and removes it at recovery)")
    is_dir = field == "dir-name"
    state = {"action": order.action, "path": inner, "dir": is_dir}
    fp.save_state(FAMILY, order.fault_id, state)  # before: a crash right after creating still removes it
    try:
        if is_dir:
            os.mkdir(host, 0o755)
        else:
            os.close(os.open(host, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644))
    except OSError as error:
        fp.drop_state(FAMILY, order.fault_id)
        raise Refused(f"{field}: cannot create {raw}: {error.strerror}") from None
    st = os.lstat(host)
    _mark_applied(order, state, ino=st.st_ino, dev=st.st_dev)
    return f"created {'directory' if is_dir else 'empty file'} {raw} in {root.description}"


def _undo_create(state: dict[str, Any], root: fp.Root) -> None:
    host = root.host(state["path"])
    st = _lstat(host)
    if st is None:
        return
    if "ino" in state:
        ours = _same(st, state)
    else:  # killed between creating and recording it: only an empty one can be ours
        ours = (stat.S_ISREG(st.st_mode) and st.st_size == 0) or (stat.S_ISDIR(st.st_mode) and not os.listdir(host))
    if not ours:
        log.warning("%s was replaced since the fault created it; left in place", state["path"])
    elif stat.S_ISDIR(st.st_mode):
        shutil.rmtree(host)
    else:
        os.unlink(host)


# file-modify ------------------------------------------------------------------------------------------


def _modify(order: FaultOrder, p: dict[str, Any], root: fp.Root) -> str:
    mode = _mode(p.get("privilege"))
    inner = fp.locate(root, p.get("file-name"), "file-name", follow_final=True, moves=True)
    host = root.host(inner)
    try:
        st = os.stat(host)
    except OSError as error:
        raise Refused(f"file-name: {p['file-name']}: {error.strerror}") from None
    state = {"action": order.action, "path": inner, "mode": stat.S_IMODE(st.st_mode), "ino": st.st_ino,
             "dev": st.st_dev}
    fp.save_state(FAMILY, order.fault_id, state)
    try:
        os.chmod(host, mode)
    except OSError as error:
        fp.drop_state(FAMILY, order.fault_id)
        raise Refused(f"file-name: cannot chmod {p['file-name']}: {error.strerror}") from None
    _mark_applied(order, state)
    return f"mode of {p['file-name']} changed from {state['mode']:o} to {mode:o} in {root.description}"


def _undo_modify(state: dict[str, Any], root: fp.Root) -> None:
    host = root.host(state["path"])
    try:
        st = os.stat(host)
    except (FileNotFoundError, NotADirectoryError):
        return
    if _same(st, state):
        os.chmod(host, state["mode"])
    else:
        log.warning("%s is no longer the file whose mode the fault changed; left as it is", state["path"])


# file-delete ------------------------------------------------------------------------------------------


def _aside_name(order: FaultOrder) -> str:
    return f".chaosplane-{validate.short_id(order.fault_id)}.deleted"


def _delete(order: FaultOrder, p: dict[str, Any], root: fp.Root) -> str:
    field, raw = _one_of(p, "file-name", "dir-name")
    inner = fp.locate(root, raw, field, follow_final=False, moves=True)
    host = root.host(inner)
    st = _lstat(host)
    if st is None:
        raise Refused(f"{field}: {raw} does not exist")
    if field == "dir-name" and not stat.S_ISDIR(st.st_mode):
        raise Refused(f"dir-name: {raw} is not a directory (give it as file-name)")
    if field == "file-name" and stat.S_ISDIR(st.st_mode):
        raise Refused(f"file-name: {raw} is a directory (give it as dir-name)")
    aside = posixpath.join(posixpath.dirname(inner), _aside_name(order))
    state = {"action": order.action, "path": inner, "aside": aside}
    fp.save_state(FAMILY, order.fault_id, state)
    try:
        fp.rename_noreplace(host, root.host(aside))
    except OSError as error:
        fp.drop_state(FAMILY, order.fault_id)
        raise Refused(f"{field}: cannot move {raw} aside: {error.strerror}") from None
    _mark_applied(order, state)
    return f"{raw} moved aside to {aside} in {root.description}; it comes back at recovery"


def _put_back(root: fp.Root, moved: str, original: str, tag: str) -> None:
    """Rename `moved` back to `original`; whatever a program made at `original` meanwhile is kept aside."""
    if _lstat(root.host(moved)) is None:
        return  # already back, or removed by someone else
    if _lstat(root.host(original)) is not None:
        kept = fp.move_out_of_the_way(root, original, tag)
        log.warning("%s was recreated during the fault; kept as %s", original, kept)
    fp.rename_noreplace(root.host(moved), root.host(original))


def _undo_delete(state: dict[str, Any], root: fp.Root, order: FaultOrder) -> None:
    _put_back(root, state["aside"], state["path"], validate.short_id(order.fault_id))


# file-rename ------------------------------------------------------------------------------------------


def _rename(order: FaultOrder, p: dict[str, Any], root: fp.Root) -> str:
    source = fp.locate(root, p.get("source-file"), "source-file", follow_final=False, moves=True)
    dest = fp.locate(root, p.get("dest-file"), "dest-file", follow_final=False)
    if source == dest:
        raise Refused("dest-file: must differ from source-file")
    if dest.startswith(source + "/"):
        raise Refused("dest-file: is inside source-file")
    if _lstat(root.host(source)) is None:
        raise Refused(f"source-file: {p['source-file']} does not exist")
    if _lstat(root.host(dest)) is not None:
        raise Refused(f"dest-file: {p['dest-file']} already exists; renaming onto it would destroy it")
    _need_parent(root, dest, "dest-file")
    state = {"action": order.action, "source": source, "dest": dest}
    fp.save_state(FAMILY, order.fault_id, state)
    try:
        fp.rename_noreplace(root.host(source), root.host(dest))
    except OSError as error:
        fp.drop_state(FAMILY, order.fault_id)
        if error.errno == errno.EXDEV:
            raise Refused(f"dest-file: {p['dest-file']} is on another filesystem than {p['source-file']}; "
                          "a rename cannot cross filesystems") from None
        raise Refused(f"dest-file: cannot rename {p['source-file']} to {p['dest-file']}: {error.strerror}") from None
    _mark_applied(order, state)
    return f"{p['source-file']} renamed to {p['dest-file']} in {root.description}; renamed back at recovery"


def _undo_rename(state: dict[str, Any], root: fp.Root, order: FaultOrder) -> None:
    _put_back(root, state["dest"], state["source"], validate.short_id(order.fault_id))


# file-append ------------------------------------------------------------------------------------------


def _open_regular(root: fp.Root, inner: str, raw: str, flags: int) -> int:
    try:
        fd = os.open(root.host(inner), flags | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK)
    except OSError as error:
        raise Refused(f"file-name: {raw}: {error.strerror}") from None
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise Refused(f"file-name: {raw} is not a regular file")
    return fd


def _append(order: FaultOrder, p: dict[str, Any], root: fp.Root) -> str:
    data = validate.text(p.get("data"), "data", 65536).encode()
    count = validate.integer(p.get("count", 1), "count", 1, 100_000)
    inner = fp.locate(root, p.get("file-name"), "file-name", follow_final=True)
    total = len(data) * count
    fd = _open_regular(root, inner, p["file-name"], os.O_WRONLY | os.O_APPEND)
    try:
        st = os.fstat(fd)
        vfs = os.fstatvfs(fd)
        free = vfs.f_bavail * vfs.f_frsize
        if total > free:
            raise Refused(f"count: appending {count} x {len(data)} bytes needs {total} bytes, more than the "
                          f"{free} free where {p['file-name']} is (disk-fill is the fault for a full disk)")
        state = {"action": order.action, "path": inner, "size": st.st_size, "ino": st.st_ino, "dev": st.st_dev}
        fp.save_state(FAMILY, order.fault_id, state)  # the length to go back to, before the first byte
        block = data * max(1, min(count, CHUNK // len(data)))
        left = total
        while left:
            piece = block[:left] if left < len(block) else block
            left -= os.write(fd, piece)
    finally:
        os.close(fd)
    _mark_applied(order, state)
    return f"appended {count} x {len(data)} bytes to {p['file-name']} in {root.description}"


def _undo_append(state: dict[str, Any], root: fp.Root) -> None:
    try:
        fd = os.open(root.host(state["path"]), os.O_WRONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK)
    except (FileNotFoundError, NotADirectoryError):
        return
    try:
        st = os.fstat(fd)
        if not _same(st, state):
            log.warning("%s is no longer the file the fault appended to; left as it is", state["path"])
        elif st.st_size < state["size"]:
            log.warning("%s is shorter than before the fault; left as it is", state["path"])
        else:
            os.ftruncate(fd, state["size"])
    finally:
        os.close(fd)


# file-replace (one-shot) ------------------------------------------------------------------------------


def _replace(order: FaultOrder, p: dict[str, Any], root: fp.Root) -> str:
    origin = validate.text(p.get("origin-string"), "origin-string", 65536).encode()
    dest = validate.text(p.get("dest-string"), "dest-string", 65536).encode()
    line = validate.integer(p.get("line", 0), "line", 0, 2**31)
    inner = fp.locate(root, p.get("file-name"), "file-name", follow_final=True)
    fd = _open_regular(root, inner, p["file-name"], os.O_RDWR)
    try:
        size = os.fstat(fd).st_size
        if size > MAX_REPLACE:
            raise Refused(f"file-name: {p['file-name']} holds {size} bytes; file-replace works on files of at most "
                          f"{MAX_REPLACE // 2**20} MiB")
        content = os.pread(fd, size, 0)
        if line:
            lines = content.split(b"\n")
            count = len(lines) - (1 if content.endswith(b"\n") or not content else 0)
            if line > count:
                raise Refused(f"line: {p['file-name']} has {count} lines, not {line}")
            found = lines[line - 1].count(origin)
            lines[line - 1] = lines[line - 1].replace(origin, dest)
            new = b"\n".join(lines)
        else:
            found = content.count(origin)
            new = content.replace(origin, dest)
        if not found:
            where = f" on line {line}" if line else ""
            raise Refused(f"origin-string: not found in {p['file-name']}{where}; nothing was changed")
        os.pwrite(fd, new, 0)  # in place: the file keeps its inode, owner, mode and links
        os.ftruncate(fd, len(new))
        os.fsync(fd)
    finally:
        os.close(fd)
    return (f"replaced {found} occurrence(s) in {p['file-name']} in {root.description} "
            "(one-shot: not put back at recovery)")


# Entry points -----------------------------------------------------------------------------------------

_INJECT: dict[str, Callable[[FaultOrder, dict[str, Any], fp.Root], str]] = {
    "file-create": _create, "file-modify": _modify, "file-delete": _delete, "file-rename": _rename,
    "file-append": _append, "file-replace": _replace,
}


def inject(order: FaultOrder) -> str:
    validate.fault_id(order.fault_id)
    action = _INJECT.get(order.action)
    if action is None:
        raise Refused(f"{order.action[:40]} is not a file action")
    p = params(order)
    root = fp.root_of(order.target)
    if order.action != "file-replace":
        done = _applied(order)
        if done is not None:
            return f"{order.action} already applied for this fault"
    return action(order, p, root)


def recover(order: FaultOrder) -> None:
    """Undo what the state file says this fault did; nothing when there is none (never applied, refused,
    one-shot, or already recovered)."""
    state = fp.load_state(FAMILY, order.fault_id)
    if state is None:
        return
    try:
        root = fp.root_of(order.target)
    except Refused as why:  # the process or container is gone, and its mount namespace with it
        log.warning("fault %s: cannot reach the target's files any more (%s); nothing restored", order.fault_id, why)
        fp.drop_state(FAMILY, order.fault_id)
        return
    action = state.get("action")
    if action == "file-create":
        _undo_create(state, root)
    elif action == "file-modify":
        _undo_modify(state, root)
    elif action == "file-delete":
        _undo_delete(state, root, order)
    elif action == "file-rename":
        _undo_rename(state, root, order)
    elif action == "file-append":
        _undo_append(state, root)
    fp.drop_state(FAMILY, order.fault_id)


def capability() -> tuple[str, bool, str]:
    return fp.capability()


#: (kind, action) -> (inject, recover), merged into nodeagent.executors.REGISTRY.
EXECUTORS: dict[tuple[str, str], tuple[Callable[[FaultOrder], str], Callable[[FaultOrder], None]]] = {
    ("PhysicalMachineChaos", name): (inject, recover) for name in _INJECT
}

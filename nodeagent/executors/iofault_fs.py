"""The FUSE filesystem behind IOChaos, spoken straight over /dev/fuse: no libfuse, no fusermount, only the
standard library, so the agent needs no package for it.

It runs as its own process (`python -I -S iofault_fs.py serve`, its order as JSON on stdin), started by
nodeagent.executors.iofault with CHAOSPLANE_FAULT=<short id> in its environment:

1. opens /dev/fuse and /proc, then enters the target's mount namespace (setns on /proc/PID/ns/mnt; the
   process is still single-threaded, as setns(CLONE_NEWNS) requires);
2. opens the volume directory (an O_PATH fd) BEFORE mounting over it, and mounts FUSE on that very
   directory (fchdir to the fd, mount on "."), source "chaosplane-<short id>", type fuse.chaosplane;
3. serves every request from the directory underneath, through that fd and per-inode O_PATH fds (the
   real files stay reachable although the mount hides them), and injects the fault into the requests
   whose operation (the catalogue's method names are the FUSE operations) and path match, at `percent`;
4. writes "ready <path>" (or "refused <reason>") on stdout, and serves until the mount is gone (reading
   /dev/fuse then fails with ENODEV) or it is killed.

`... iofault_fs.py unmount` (JSON {"short", "pid", "ns"} on stdin) enters the mount namespace of `pid` and
lazily unmounts (umount2 MNT_DETACH) every mount whose source is chaosplane-<short>; recovery uses it for
targets in another mount namespace than the agent's.

Semantics worth knowing: files opened before the mount keep the real file (the fault reaches what is
opened after); matching files are opened with FOPEN_DIRECT_IO while a read/write fault is on, so every
read and write reaches this server (the page cache would otherwise answer repeated reads); attributes
and entries are never cached by the kernel (timeouts 0), so attrOverride and lookups see each change.
Locks (getlk, setlk) stay in the kernel, access is checked by the kernel (default_permissions) and bmap
is for block-device FUSE only: faults on those methods never fire. Kernels before 6.6 refuse shared
mmap (ENODEV) of a file opened with FOPEN_DIRECT_IO, so there a faulted file cannot be mmapped shared.
The kernel takes error numbers 1 to 511 in an answer (a bigger one leaves the caller hanging, so it is
never sent), and it turns ENOSYS into "not implemented, stop asking" for some operations (flush, fsync,
xattrs). After recovery the mount is detached; a file still open through it then fails with ENOTCONN,
as the server is gone.

Stdlib only and importable on its own: the agent imports the helpers (glob_regex, refusal, mountinfo)
from here, and the server process runs this file with `-I -S`, without the agent's package.
"""
from __future__ import annotations

import ctypes
import errno
import json
import os
import random
import re
import resource
import stat
import struct
import sys
import threading
from typing import Any, NamedTuple

SOURCE_PREFIX = "chaosplane-"
FSTYPE = "fuse.chaosplane"

# --- shared checks -----------------------------------------------------------------------------------------------

#: Never mounted over: the system's own directories. The trees are refused with everything under them.
SYSTEM_DIRS = frozenset({
    "/", "/home", "/root", "/var", "/var/lib", "/var/log", "/var/cache", "/var/spool", "/opt", "/srv", "/mnt", "/media",
    "/snap", "/nix", "/nix/store",
    "/tmp", "/var/tmp",  # noqa: S108 - refused as volumes, not used as temporary directories
})
SYSTEM_TREES = (
    "/proc", "/sys", "/dev", "/usr", "/etc", "/boot", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/run",
    "/var/run", "/var/lib/docker", "/var/lib/containerd", "/var/lib/kubelet", "/var/lib/containers",
)
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def refusal(path: str) -> str | None:
    """Why `path` may not be a volume (None: it may): not absolute and normal, or a system directory."""
    if not path.startswith("/") or _CONTROL.search(path) or os.path.normpath(path) != path or path.startswith("//"):
        return f"{path[:80]!r} is not a normalised absolute path"
    if path in SYSTEM_DIRS:
        return f"{path} is a system directory"
    for tree in SYSTEM_TREES:
        if path == tree or path.startswith(tree + "/"):
            return f"{path} is under the system directory {tree}"
    return None


def glob_regex(pattern: str) -> str:
    """A path glob as a regular expression over whole paths: `*` and `?` stay within one path segment,
    `**/` is any number of directories, `**` anything, `[...]` a class. A pattern without any of these is
    a plain path: it covers that file, or everything under that directory."""
    if not any(c in pattern for c in "*?["):
        return re.escape(pattern.rstrip("/") or "/") + "(?:/.*)?"
    out, i = [], 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out.append("(?:.*/)?")
            i += 3
        elif pattern.startswith("**", i):
            out.append(".*")
            i += 2
        elif pattern[i] == "*":
            out.append("[^/]*")
            i += 1
        elif pattern[i] == "?":
            out.append("[^/]")
            i += 1
        elif pattern[i] == "[" and "]" in pattern[i + 2:]:
            end = pattern.index("]", i + 2)
            inner = pattern[i + 1:end]
            negate = inner[:1] in ("!", "^")
            body = inner[1:] if negate else inner
            out.append("[" + ("^" if negate else "") + body.replace("\\", "\\\\").replace("[", "\\[") + "]")
            i = end + 1
        else:
            out.append(re.escape(pattern[i]))
            i += 1
    return "".join(out)


class Mount(NamedTuple):
    id: int
    parent: int
    mountpoint: str
    fstype: str
    source: str


def _unescape(field: str) -> str:
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), field)


def parse_mountinfo(text: str) -> list[Mount]:
    mounts = []
    for line in text.splitlines():
        left, sep, right = line.partition(" - ")
        fields, tail = left.split(), right.split()
        if not sep or len(fields) < 5 or len(tail) < 2:
            continue
        mounts.append(Mount(int(fields[0]), int(fields[1]), _unescape(fields[4]), tail[0], _unescape(tail[1])))
    return mounts


def read_mountinfo(where: str = "/proc/thread-self/mountinfo", dir_fd: int | None = None) -> list[Mount]:
    fd = os.open(where, os.O_RDONLY | os.O_CLOEXEC, dir_fd=dir_fd)
    with open(fd, encoding="utf-8", errors="surrogateescape") as f:
        return parse_mountinfo(f.read())


# --- syscalls ----------------------------------------------------------------------------------------------------

_libc = ctypes.CDLL(None, use_errno=True)
_libc.mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong, ctypes.c_char_p]
_libc.umount2.argtypes = [ctypes.c_char_p, ctypes.c_int]
_libc.setns.argtypes = [ctypes.c_int, ctypes.c_int]
_libc.fchownat.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_uint32, ctypes.c_uint32, ctypes.c_int]
_libc.linkat.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
_libc.renameat2.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]


class Timespec(ctypes.Structure):
    _fields_ = [("tv_sec", ctypes.c_long), ("tv_nsec", ctypes.c_long)]


_libc.utimensat.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.POINTER(Timespec), ctypes.c_int]

CLONE_NEWNS = 0x00020000
MNT_DETACH = 2
AT_EMPTY_PATH = 0x1000
AT_SYMLINK_NOFOLLOW = 0x100
UTIME_NOW, UTIME_OMIT = (1 << 30) - 1, (1 << 30) - 2
RENAME_EXCHANGE = 2
_MS_FROM_ST = 1 | 2 | 4 | 8  # MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC have the ST_* values of statvfs


def _check(result: int, what: str = "") -> None:
    if result != 0:
        code = ctypes.get_errno()
        raise OSError(code, f"{what}: {os.strerror(code)}" if what else os.strerror(code))


def mount_fuse(dev: int, target: bytes, source: str, flags: int) -> None:
    options = f"fd={dev},rootmode=40000,user_id=0,group_id=0,allow_other,default_permissions"
    _check(_libc.mount(source.encode(), target, FSTYPE.encode(), flags, options.encode()), "mount")


def umount_detach(path: str) -> None:
    _check(_libc.umount2(os.fsencode(path), MNT_DETACH), f"umount {path}")


def enter_mount_ns(pid: int, expected_inode: int | None) -> bool:
    """setns into the mount namespace of `pid` (False: already in it). Single-threaded callers only."""
    fd = os.open(f"/proc/{pid}/ns/mnt", os.O_RDONLY | os.O_CLOEXEC)
    try:
        inode = os.fstat(fd).st_ino
        if expected_inode is not None and inode != expected_inode:
            raise OSError(errno.ESRCH, f"process {pid} is no longer in the mount namespace it was in")
        if inode == os.stat("/proc/thread-self/ns/mnt").st_ino:
            return False
        _check(_libc.setns(fd, CLONE_NEWNS), "setns")
        return True
    finally:
        os.close(fd)


def unmount_ours(short: str, proc: int | None = None) -> tuple[int, list[str]]:
    """Lazily unmount every mount of this fault in the calling thread's mount namespace, topmost first.
    Returns (how many, problems); a mount of ours covered by someone else's mount is a problem."""
    source, done, problems = SOURCE_PREFIX + short, 0, []
    for _ in range(16):
        mounts = read_mountinfo("thread-self/mountinfo", proc) if proc is not None else read_mountinfo()
        ours = [m for m in mounts if m.source == source]
        problems = []
        progress = False
        for mine in ours:
            above = [m for m in mounts if m.parent == mine.id and m.mountpoint == mine.mountpoint]
            if above:
                problems.append(f"{mine.mountpoint} is covered by {above[0].source} ({above[0].fstype})")
                continue
            try:
                umount_detach(mine.mountpoint)
                done, progress = done + 1, True
            except OSError as error:
                problems.append(str(error))
        if not ours or not progress:
            break
    return done, problems


# --- the FUSE protocol -------------------------------------------------------------------------------------------

(LOOKUP, FORGET, GETATTR, SETATTR, READLINK, SYMLINK, MKNOD, MKDIR, UNLINK, RMDIR, RENAME, LINK, OPEN, READ, WRITE,
 STATFS, RELEASE, FSYNC, SETXATTR, GETXATTR, LISTXATTR, REMOVEXATTR, FLUSH, INIT, OPENDIR, READDIR, RELEASEDIR,
 FSYNCDIR, GETLK, SETLK, SETLKW, ACCESS, CREATE, INTERRUPT, BMAP, DESTROY) = (
    1, 2, 3, 4, 5, 6, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31, 32,
    33, 34, 35, 36, 37, 38)
BATCH_FORGET, FALLOCATE, READDIRPLUS, RENAME2 = 42, 43, 44, 45

#: The catalogue's method names (injector.faults.io.METHODS) for each operation.
METHOD_OF = {
    LOOKUP: "lookup", FORGET: "forget", BATCH_FORGET: "forget", GETATTR: "getattr", SETATTR: "setattr",
    READLINK: "readlink", SYMLINK: "symlink", MKNOD: "mknod", MKDIR: "mkdir", UNLINK: "unlink", RMDIR: "rmdir",
    RENAME: "rename", RENAME2: "rename", LINK: "link", OPEN: "open", READ: "read", WRITE: "write", STATFS: "statfs",
    RELEASE: "release", FSYNC: "fsync", SETXATTR: "setxattr", GETXATTR: "getxattr", LISTXATTR: "listxattr",
    REMOVEXATTR: "removexattr", FLUSH: "flush", OPENDIR: "opendir", READDIR: "readdir", READDIRPLUS: "readdir",
    RELEASEDIR: "releasedir", FSYNCDIR: "fsyncdir", GETLK: "getlk", SETLK: "setlk", SETLKW: "setlk",
    ACCESS: "access", CREATE: "create", BMAP: "bmap",
}
#: Methods whose requests never reach this filesystem (see the module docstring).
NEVER_SENT = frozenset({"getlk", "setlk", "access", "bmap"})

IN_HEADER = struct.Struct("<IIQQIIIHH")
OUT_HEADER = struct.Struct("<IiQ")
ATTR = struct.Struct("<QQQqqqIIIIIIIIII")
ENTRY_OUT = struct.Struct("<QQQQII")
ATTR_OUT = struct.Struct("<QII")
GETATTR_IN = struct.Struct("<IIQ")
SETATTR_IN = struct.Struct("<IIQQQQQQIIIIIIII")
OPEN_IN = struct.Struct("<II")
OPEN_OUT = struct.Struct("<QIi")
CREATE_IN = struct.Struct("<IIII")
READ_IN = struct.Struct("<QQIIQII")
WRITE_OUT = struct.Struct("<II")
RELEASE_IN = struct.Struct("<QIIQ")
FSYNC_IN = struct.Struct("<QII")
U64 = struct.Struct("<Q")
PAIR32 = struct.Struct("<II")
FORGET_ONE = struct.Struct("<QQ")
MKNOD_IN = struct.Struct("<IIII")
RENAME2_IN = struct.Struct("<QII")
KSTATFS = struct.Struct("<QQQQQIIII24x")
FALLOCATE_IN = struct.Struct("<QQQII")
DIRENT = struct.Struct("<QQII")
INIT_IN = struct.Struct("<IIII")
INIT_OUT = struct.Struct("<IIIIHHIIHHII24x")

FATTR_MODE, FATTR_UID, FATTR_GID, FATTR_SIZE, FATTR_ATIME, FATTR_MTIME, FATTR_FH = 1, 2, 4, 8, 16, 32, 64
FATTR_ATIME_NOW, FATTR_MTIME_NOW = 128, 256
FOPEN_DIRECT_IO = 1
FUSE_ASYNC_READ, FUSE_ATOMIC_O_TRUNC, FUSE_BIG_WRITES, FUSE_PARALLEL_DIROPS = 1, 1 << 3, 1 << 5, 1 << 18
FUSE_INIT_EXT, FUSE_DIRECT_IO_ALLOW_MMAP_2 = 1 << 30, 1 << (36 - 32)
MINOR = 31  # every structure used here has its 7.31 layout
MAX_WRITE = 128 * 1024
BUFFER = MAX_WRITE + 4096
WORKERS = 8
# Flags of the application's open() that the server must not pass on when it reopens the file.
STRIP = os.O_CREAT | os.O_EXCL | os.O_NOCTTY | os.O_NOFOLLOW | os.O_DIRECT
KINDS = {"namedPipe": stat.S_IFIFO, "charDevice": stat.S_IFCHR, "blockDevice": stat.S_IFBLK, "directory": stat.S_IFDIR,
         "regularFile": stat.S_IFREG, "symlink": stat.S_IFLNK, "socket": stat.S_IFSOCK}


def encode_dev(dev: int) -> int:
    """dev_t -> the kernel's 32-bit new_encode_dev() form that FUSE carries."""
    major, minor = os.major(dev), os.minor(dev)
    return ((minor & 0xFF) | (major << 8) | ((minor & ~0xFF) << 12)) & 0xFFFFFFFF


def decode_dev(value: int) -> int:
    return os.makedev((value & 0xFFF00) >> 8, (value & 0xFF) | ((value >> 12) & 0xFFF00))


def _name(data: bytes) -> bytes:
    return data.split(b"\0", 1)[0]


class Request(NamedTuple):
    opcode: int
    unique: int
    nodeid: int
    uid: int
    gid: int
    body: bytes
    hit: bool


class Node:
    """An inode the kernel knows: an O_PATH fd on the real one, its path (for matching) and lookup count."""

    __slots__ = ("fd", "path", "lookups", "key")

    def __init__(self, fd: int, path: str, key: tuple[int, int]) -> None:
        self.fd, self.path, self.lookups, self.key = fd, path, 1, key


class Filesystem:
    """The passthrough with the fault; one instance per server process, shared by its worker threads."""

    def __init__(self, cfg: dict[str, Any], dev: int, proc: int, root_fd: int) -> None:
        self.dev, self.proc = dev, proc
        self.action = cfg["action"]
        self.methods = frozenset(cfg["methods"]) if cfg.get("methods") else None
        self.pattern = re.compile(glob_regex(cfg["path"])) if cfg.get("path") else None
        self.percent = float(cfg.get("percent", 100))
        self.delay = int(cfg.get("delay_ns") or 0) / 1e9
        self.errno = int(cfg.get("errno") or errno.EIO)
        if not 0 < self.errno < 512:  # the kernel rejects such an answer and the caller would hang for good
            self.errno = errno.EIO
        self.fake = cfg.get("attr") or {}
        self.mistake = cfg.get("mistake") or {}
        io_methods = self.methods is None or bool(self.methods & {"read", "write"})
        self.direct = self.action in ("latency", "fault", "mistake") and io_methods
        self.rng = random.Random()  # noqa: S311 - picks the requests a fault hits; nothing secret
        self.lock = threading.Lock()
        st = os.stat(root_fd)
        root = Node(root_fd, cfg["volume"], (st.st_dev, st.st_ino))
        root.lookups = 1 << 62
        self.nodes: dict[int, Node] = {1: root}
        self.by_key = {root.key: 1}
        self.next_id = 2
        self.files: set[int] = set()
        self.dirs: dict[int, list[tuple[int, int, bytes]] | None] = {}
        self.ready = threading.Event()
        self.handlers = {
            LOOKUP: self.lookup, GETATTR: self.getattr, SETATTR: self.setattr, READLINK: self.readlink,
            SYMLINK: self.symlink, MKNOD: self.mknod, MKDIR: self.mkdir, UNLINK: self.unlink, RMDIR: self.rmdir,
            RENAME: self.rename, RENAME2: self.rename, LINK: self.link, OPEN: self.open, READ: self.read,
            WRITE: self.write, STATFS: self.statfs, RELEASE: self.release, FSYNC: self.fsync,
            SETXATTR: self.setxattr, GETXATTR: self.getxattr, LISTXATTR: self.listxattr,
            REMOVEXATTR: self.removexattr, FLUSH: self.flush, OPENDIR: self.opendir, READDIR: self.readdir,
            RELEASEDIR: self.releasedir, FSYNCDIR: self.fsyncdir, ACCESS: self.access, CREATE: self.create,
            FALLOCATE: self.fallocate,
        }

    # -- the loop --

    def worker(self) -> None:
        while True:
            try:
                buf = os.read(self.dev, BUFFER)
            except OSError as error:
                if error.errno in (errno.EINTR, errno.EAGAIN, errno.ENOENT):
                    continue  # ENOENT: the request was interrupted before it was read
                os._exit(0 if error.errno == errno.ENODEV else 1)  # ENODEV: unmounted, nothing left to serve
            try:
                self.dispatch(buf)
            except Exception:  # noqa: BLE001 - a malformed request must neither end the worker nor hang its caller
                if len(buf) >= IN_HEADER.size:
                    self.send(IN_HEADER.unpack_from(buf)[2], errno.EIO)

    def send(self, unique: int, error: int, payload: bytes = b"") -> None:
        try:
            os.write(self.dev, OUT_HEADER.pack(OUT_HEADER.size + len(payload), -error, unique) + payload)
        except OSError:
            pass  # the request was interrupted, or the connection is gone

    def dispatch(self, buf: bytes) -> None:
        length, opcode, unique, nodeid, uid, gid, _pid, _ext, _pad = IN_HEADER.unpack_from(buf)
        body = buf[IN_HEADER.size:length]
        if opcode == INIT:
            self.init(unique, body)
            return
        if opcode == FORGET:
            self.forget(nodeid, U64.unpack_from(body)[0])
            return
        if opcode == BATCH_FORGET:
            count = PAIR32.unpack_from(body)[0]
            for i in range(count):
                self.forget(*FORGET_ONE.unpack_from(body, 8 + 16 * i))
            return
        if opcode == INTERRUPT:
            return
        handler = self.handlers.get(opcode)
        if handler is None:
            self.send(unique, 0 if opcode == DESTROY else errno.ENOSYS)
            return
        method = METHOD_OF.get(opcode, "")
        hit = self.hits(method, opcode, nodeid, body)
        request = Request(opcode, unique, nodeid, uid, gid, body, hit)
        if hit and self.action == "latency" and self.delay > 0:
            timer = threading.Timer(self.delay, self.run, (handler, request))
            timer.daemon = True
            timer.start()
        elif hit and self.action == "fault":
            if opcode in (RELEASE, RELEASEDIR):  # the handle is closed all the same; only the answer fails
                self.run(handler, request, self.errno)
            else:
                self.send(unique, self.errno)
        else:
            self.run(handler, request)

    def run(self, handler: Any, request: Request, fail: int = 0) -> None:
        try:
            payload = handler(request)
        except OSError as error:
            self.send(request.unique, error.errno or errno.EIO)
            return
        except Exception:  # noqa: BLE001 - answered as an I/O error rather than left hanging
            self.send(request.unique, errno.EIO)
            return
        self.send(request.unique, fail, b"" if fail else payload)

    # -- which requests the fault hits --

    def hits(self, method: str, opcode: int, nodeid: int, body: bytes) -> bool:
        if not method or (self.methods is not None and method not in self.methods):
            return False
        if self.action == "mistake" and method not in ("read", "write"):
            return False
        if self.pattern is not None:
            try:
                paths = self.paths(opcode, nodeid, body)
            except (KeyError, ValueError, struct.error):
                return False
            if not any(self.pattern.fullmatch(path) for path in paths):
                return False
        return self.percent >= 100 or self.rng.random() * 100 < self.percent

    def child_path(self, nodeid: int, name: bytes) -> str:
        return self.nodes[nodeid].path.rstrip("/") + "/" + os.fsdecode(name)

    _NAME_AT = {LOOKUP: 0, UNLINK: 0, RMDIR: 0, SYMLINK: 0, MKNOD: 16, MKDIR: 8, CREATE: 16}

    def paths(self, opcode: int, nodeid: int, body: bytes) -> tuple[str, ...]:
        """The paths a request is about: the entry named for operations on names, else the inode's."""
        if opcode in self._NAME_AT:
            return (self.child_path(nodeid, _name(body[self._NAME_AT[opcode]:])),)
        if opcode in (RENAME, RENAME2):
            newdir = U64.unpack_from(body)[0]
            old, new = body[8 if opcode == RENAME else 16:].split(b"\0")[:2]
            return self.child_path(nodeid, old), self.child_path(newdir, new)
        if opcode == LINK:
            return self.nodes[U64.unpack_from(body)[0]].path, self.child_path(nodeid, _name(body[8:]))
        return (self.nodes[nodeid].path,)

    # -- inodes --

    def node(self, nodeid: int) -> Node:
        node = self.nodes.get(nodeid)
        if node is None:
            raise OSError(errno.ESTALE, "unknown inode")
        return node

    def remember(self, parent: Node, name: bytes) -> tuple[int, os.stat_result]:
        """LOOKUP's bookkeeping: the entry's node (one more lookup of it) and its stat."""
        fd = os.open(name, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=parent.fd)
        try:
            st = os.stat(fd)
        except OSError:
            os.close(fd)
            raise
        key, path = (st.st_dev, st.st_ino), parent.path.rstrip("/") + "/" + os.fsdecode(name)
        with self.lock:
            nodeid = self.by_key.get(key)
            if nodeid is not None:
                known = self.nodes[nodeid]
                known.lookups += 1
                known.path = path
            else:
                nodeid, self.next_id = self.next_id, self.next_id + 1
                self.nodes[nodeid] = Node(fd, path, key)
                self.by_key[key] = nodeid
                fd = -1
        if fd >= 0:
            os.close(fd)
        return nodeid, st

    def forget(self, nodeid: int, count: int) -> None:
        with self.lock:
            node = self.nodes.get(nodeid)
            if node is None or nodeid == 1:
                return
            node.lookups -= count
            if node.lookups > 0:
                return
            del self.nodes[nodeid]
            if self.by_key.get(node.key) == nodeid:
                del self.by_key[node.key]
        os.close(node.fd)

    def repath(self, parent: Node, name: bytes) -> None:
        """After a rename: the moved inode (and what is under it) answers to its new path."""
        try:
            st = os.stat(name, dir_fd=parent.fd, follow_symlinks=False)
        except OSError:
            return
        new = parent.path.rstrip("/") + "/" + os.fsdecode(name)
        with self.lock:
            nodeid = self.by_key.get((st.st_dev, st.st_ino))
            if nodeid is None:
                return
            node = self.nodes[nodeid]
            old, node.path = node.path, new
            if stat.S_ISDIR(st.st_mode) and old != new:
                for other in self.nodes.values():
                    if other.path.startswith(old + "/"):
                        other.path = new + other.path[len(old):]

    def proc_path(self, node: Node) -> str:
        return f"thread-self/fd/{node.fd}"

    # -- answers --

    def attr(self, st: os.stat_result, request: Request) -> bytes:
        a_s, a_ns = divmod(st.st_atime_ns, 10**9)
        m_s, m_ns = divmod(st.st_mtime_ns, 10**9)
        c_s, c_ns = divmod(st.st_ctime_ns, 10**9)
        values = [st.st_ino, st.st_size, st.st_blocks, a_s, m_s, c_s, a_ns, m_ns, c_ns, st.st_mode, st.st_nlink,
                  st.st_uid, st.st_gid, encode_dev(st.st_rdev), st.st_blksize, 0]
        if request.hit and self.action == "attrOverride":
            self.override(values, request.nodeid == 1 and request.opcode in (GETATTR, SETATTR))
        return ATTR.pack(*values)

    def override(self, values: list[int], root: bool) -> None:
        attr = self.fake
        for index, key in ((0, "ino"), (1, "size"), (2, "blocks"), (10, "nlink"), (11, "uid"), (12, "gid"),
                           (13, "rdev")):
            if key in attr:
                values[index] = attr[key]
        for index, key in ((3, "atime"), (4, "mtime"), (5, "ctime")):
            if key in attr:
                values[index], values[index + 3] = attr[key]["sec"], attr[key].get("nsec", 0)
        if "perm" in attr:
            values[9] = (values[9] & ~0o7777) | attr["perm"]
        if "kind" in attr and not root:  # the mount's root stays a directory, or nothing under it works
            values[9] = (values[9] & 0o7777) | KINDS[attr["kind"]]

    def entry(self, request: Request, parent: Node, name: bytes) -> bytes:
        nodeid, st = self.remember(parent, name)
        return ENTRY_OUT.pack(nodeid, 0, 0, 0, 0, 0) + self.attr(st, request)

    def own(self, request: Request, parent: Node, name: bytes) -> None:
        """What the server (root) creates belongs to the caller, as it would without FUSE in between."""
        gid = 0xFFFFFFFF if os.stat(parent.fd).st_mode & stat.S_ISGID else request.gid
        _libc.fchownat(parent.fd, name, request.uid, gid, AT_SYMLINK_NOFOLLOW)

    def open_flags(self, path: str) -> int:
        if self.direct and (self.pattern is None or self.pattern.fullmatch(path)):
            return FOPEN_DIRECT_IO
        return 0

    def corrupt(self, data: bytes) -> bytes:
        if not data:
            return data
        buf = bytearray(data)
        for _ in range(self.rng.randint(1, min(self.mistake["maxOccurrences"], len(buf)))):
            length = min(self.rng.randint(1, self.mistake["maxLength"]), len(buf))
            start = self.rng.randint(0, len(buf) - length)
            buf[start:start + length] = bytes(length) if self.mistake["filling"] == "zero" else os.urandom(length)
        return bytes(buf)

    # -- operations --

    def init(self, unique: int, body: bytes) -> None:
        major, _minor, readahead, flags = INIT_IN.unpack_from(body)
        if major != 7:
            self.send(unique, errno.EPROTO)
            return
        flags2 = struct.unpack_from("<I", body, 16)[0] if flags & FUSE_INIT_EXT and len(body) >= 20 else 0
        want = FUSE_ASYNC_READ | FUSE_ATOMIC_O_TRUNC | FUSE_BIG_WRITES | FUSE_PARALLEL_DIROPS | FUSE_INIT_EXT
        out = INIT_OUT.pack(7, MINOR, readahead, flags & want, 16, 12, MAX_WRITE, 1, 0, 0,
                            flags2 & FUSE_DIRECT_IO_ALLOW_MMAP_2, 0)
        self.send(unique, 0, out)
        self.ready.set()

    def lookup(self, request: Request) -> bytes:
        return self.entry(request, self.node(request.nodeid), _name(request.body))

    def getattr(self, request: Request) -> bytes:
        flags, _, fh = GETATTR_IN.unpack_from(request.body)
        node = self.node(request.nodeid)
        st = os.fstat(fh) if flags & 1 and fh in self.files else os.stat(node.fd)
        return ATTR_OUT.pack(0, 0, 0) + self.attr(st, request)

    def setattr(self, request: Request) -> bytes:
        (valid, _, fh, size, _owner, atime, mtime, _ctime, atime_ns, mtime_ns, _ctime_ns, mode, _, uid, gid,
         _) = SETATTR_IN.unpack_from(request.body)
        node = self.node(request.nodeid)
        fd = fh if valid & FATTR_FH and fh in self.files else None
        path = self.proc_path(node)
        if valid & FATTR_MODE:
            if fd is not None:
                os.fchmod(fd, stat.S_IMODE(mode))
            else:
                os.chmod(path, stat.S_IMODE(mode), dir_fd=self.proc)
        if valid & (FATTR_UID | FATTR_GID):
            _check(_libc.fchownat(node.fd, b"", uid if valid & FATTR_UID else 0xFFFFFFFF,
                                  gid if valid & FATTR_GID else 0xFFFFFFFF, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW))
        if valid & FATTR_SIZE:
            if fd is not None:
                os.ftruncate(fd, size)
            else:
                writable = os.open(path, os.O_WRONLY | os.O_CLOEXEC, dir_fd=self.proc)
                try:
                    os.ftruncate(writable, size)
                finally:
                    os.close(writable)
        if valid & (FATTR_ATIME | FATTR_MTIME | FATTR_ATIME_NOW | FATTR_MTIME_NOW):
            times = (Timespec * 2)()
            for slot, (given, now, sec, nsec) in enumerate(((FATTR_ATIME, FATTR_ATIME_NOW, atime, atime_ns),
                                                            (FATTR_MTIME, FATTR_MTIME_NOW, mtime, mtime_ns))):
                times[slot] = (Timespec(0, UTIME_NOW) if valid & now else Timespec(sec, nsec) if valid & given
                               else Timespec(0, UTIME_OMIT))
            _check(_libc.utimensat(self.proc, path.encode(), times, 0), "utimensat")
        return ATTR_OUT.pack(0, 0, 0) + self.attr(os.stat(node.fd), request)

    def readlink(self, request: Request) -> bytes:
        return os.readlink(b"", dir_fd=self.node(request.nodeid).fd)

    def mknod(self, request: Request) -> bytes:
        mode, rdev, _umask, _ = MKNOD_IN.unpack_from(request.body)
        parent, name = self.node(request.nodeid), _name(request.body[16:])
        os.mknod(name, mode, decode_dev(rdev), dir_fd=parent.fd)
        self.own(request, parent, name)
        return self.entry(request, parent, name)

    def mkdir(self, request: Request) -> bytes:
        mode, _umask = PAIR32.unpack_from(request.body)
        parent, name = self.node(request.nodeid), _name(request.body[8:])
        os.mkdir(name, mode, dir_fd=parent.fd)
        self.own(request, parent, name)
        return self.entry(request, parent, name)

    def symlink(self, request: Request) -> bytes:
        name, target = request.body.split(b"\0")[:2]
        parent = self.node(request.nodeid)
        os.symlink(target, name, dir_fd=parent.fd)
        self.own(request, parent, name)
        return self.entry(request, parent, name)

    def unlink(self, request: Request) -> bytes:
        os.unlink(_name(request.body), dir_fd=self.node(request.nodeid).fd)
        return b""

    def rmdir(self, request: Request) -> bytes:
        os.rmdir(_name(request.body), dir_fd=self.node(request.nodeid).fd)
        return b""

    def rename(self, request: Request) -> bytes:
        if request.opcode == RENAME2:
            newdir, flags, _ = RENAME2_IN.unpack_from(request.body)
            names = request.body[16:]
        else:
            newdir, flags, names = U64.unpack_from(request.body)[0], 0, request.body[8:]
        old, new = names.split(b"\0")[:2]
        parent, target = self.node(request.nodeid), self.node(newdir)
        if flags:
            _check(_libc.renameat2(parent.fd, old, target.fd, new, flags), "renameat2")
        else:
            os.rename(old, new, src_dir_fd=parent.fd, dst_dir_fd=target.fd)
        self.repath(target, new)
        if flags & RENAME_EXCHANGE:
            self.repath(parent, old)
        return b""

    def link(self, request: Request) -> bytes:
        source = self.node(U64.unpack_from(request.body)[0])
        parent, name = self.node(request.nodeid), _name(request.body[8:])
        _check(_libc.linkat(source.fd, b"", parent.fd, name, AT_EMPTY_PATH), "linkat")
        return self.entry(request, parent, name)

    def open(self, request: Request) -> bytes:
        flags = OPEN_IN.unpack_from(request.body)[0]
        node = self.node(request.nodeid)
        fd = os.open(self.proc_path(node), (flags & ~STRIP) | os.O_CLOEXEC, dir_fd=self.proc)
        self.files.add(fd)
        return OPEN_OUT.pack(fd, self.open_flags(node.path), 0)

    def create(self, request: Request) -> bytes:
        flags, mode, _umask, _ = CREATE_IN.unpack_from(request.body)
        parent, name = self.node(request.nodeid), _name(request.body[16:])
        flags = (flags & ~STRIP) | os.O_CLOEXEC
        try:
            fd, created = os.open(name, flags | os.O_CREAT | os.O_EXCL, stat.S_IMODE(mode), dir_fd=parent.fd), True
        except FileExistsError:
            if OPEN_IN.unpack_from(request.body)[0] & os.O_EXCL:
                raise
            fd, created = os.open(name, flags, dir_fd=parent.fd), False
        try:
            if created:
                self.own(request, parent, name)
            answer = self.entry(request, parent, name)
        except OSError:
            os.close(fd)
            raise
        self.files.add(fd)
        return answer + OPEN_OUT.pack(fd, self.open_flags(self.child_path(request.nodeid, name)), 0)

    def read(self, request: Request) -> bytes:
        fh, offset, size = READ_IN.unpack_from(request.body)[:3]
        if fh not in self.files:
            raise OSError(errno.EBADF, "unknown handle")
        data = os.pread(fh, size, offset)
        return self.corrupt(data) if request.hit and self.action == "mistake" else data

    def write(self, request: Request) -> bytes:
        fh, offset, size = READ_IN.unpack_from(request.body)[:3]
        if fh not in self.files:
            raise OSError(errno.EBADF, "unknown handle")
        data = request.body[READ_IN.size:READ_IN.size + size]
        if request.hit and self.action == "mistake":
            data = self.corrupt(data)
        return WRITE_OUT.pack(os.pwrite(fh, data, offset), 0)

    def statfs(self, request: Request) -> bytes:
        st = os.statvfs(self.node(request.nodeid).fd)
        return KSTATFS.pack(st.f_blocks, st.f_bfree, st.f_bavail, st.f_files, st.f_ffree, st.f_bsize, st.f_namemax,
                            st.f_frsize, 0)

    def release(self, request: Request) -> bytes:
        fh = RELEASE_IN.unpack_from(request.body)[0]
        if fh in self.files:
            self.files.discard(fh)
            os.close(fh)
        return b""

    def fsync(self, request: Request) -> bytes:
        fh, flags, _ = FSYNC_IN.unpack_from(request.body)
        if fh not in self.files and fh not in self.dirs:
            raise OSError(errno.EBADF, "unknown handle")
        (os.fdatasync if flags & 1 else os.fsync)(fh)
        return b""

    fsyncdir = fsync

    def flush(self, request: Request) -> bytes:
        fh = U64.unpack_from(request.body)[0]
        if fh in self.files:
            os.close(os.dup(fh))  # what close() of the real file would report
        return b""

    def opendir(self, request: Request) -> bytes:
        node = self.node(request.nodeid)
        fd = os.open(self.proc_path(node), os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC, dir_fd=self.proc)
        self.dirs[fd] = None
        return OPEN_OUT.pack(fd, 0, 0)

    def readdir(self, request: Request) -> bytes:
        fh, offset, size = READ_IN.unpack_from(request.body)[:3]
        if fh not in self.dirs:
            raise OSError(errno.EBADF, "unknown handle")
        entries = self.dirs[fh]
        if entries is None or offset == 0:
            entries = self.dirs[fh] = self.listing(fh)
        out = bytearray()
        for index in range(offset, len(entries)):
            ino, kind, name = entries[index]
            record = DIRENT.pack(ino, index + 1, len(name), kind) + name
            record += b"\0" * (-len(record) % 8)
            if len(out) + len(record) > size:
                break
            out += record
        return bytes(out)

    @staticmethod
    def listing(fd: int) -> list[tuple[int, int, bytes]]:
        here = os.fstat(fd).st_ino
        entries = [(here, 4, b"."), (1, 4, b"..")]
        os.lseek(fd, 0, os.SEEK_SET)
        with os.scandir(fd) as found:
            for item in found:
                kind = (4 if item.is_dir(follow_symlinks=False) else 10 if item.is_symlink()
                        else 8 if item.is_file(follow_symlinks=False) else 0)
                entries.append((item.inode(), kind, os.fsencode(item.name)))
        return entries

    def releasedir(self, request: Request) -> bytes:
        fh = RELEASE_IN.unpack_from(request.body)[0]
        if self.dirs.pop(fh, False) is not False:
            os.close(fh)
        return b""

    def xattr_fd(self, nodeid: int) -> int:
        node = self.node(nodeid)
        mode = os.stat(node.fd).st_mode
        if not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
            raise OSError(errno.EOPNOTSUPP, "extended attributes of regular files and directories only")
        return os.open(self.proc_path(node), os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC, dir_fd=self.proc)

    @staticmethod
    def sized(value: bytes, size: int) -> bytes:
        if size == 0:
            return PAIR32.pack(len(value), 0)
        if len(value) > size:
            raise OSError(errno.ERANGE, "buffer too small")
        return value

    def getxattr(self, request: Request) -> bytes:
        size = PAIR32.unpack_from(request.body)[0]
        fd = self.xattr_fd(request.nodeid)
        try:
            return self.sized(os.getxattr(fd, _name(request.body[8:])), size)
        finally:
            os.close(fd)

    def listxattr(self, request: Request) -> bytes:
        size = PAIR32.unpack_from(request.body)[0]
        fd = self.xattr_fd(request.nodeid)
        try:
            return self.sized(b"".join(os.fsencode(name) + b"\0" for name in os.listxattr(fd)), size)
        finally:
            os.close(fd)

    def setxattr(self, request: Request) -> bytes:
        size, flags = PAIR32.unpack_from(request.body)
        name, _, value = request.body[8:].partition(b"\0")
        fd = self.xattr_fd(request.nodeid)
        try:
            os.setxattr(fd, name, value[:size], flags)
        finally:
            os.close(fd)
        return b""

    def removexattr(self, request: Request) -> bytes:
        fd = self.xattr_fd(request.nodeid)
        try:
            os.removexattr(fd, _name(request.body))
        finally:
            os.close(fd)
        return b""

    def access(self, request: Request) -> bytes:
        return b""  # default_permissions: the kernel checks, and does not even ask

    def fallocate(self, request: Request) -> bytes:
        fh, offset, length, mode, _ = FALLOCATE_IN.unpack_from(request.body)
        if fh not in self.files:
            raise OSError(errno.EBADF, "unknown handle")
        if mode:
            raise OSError(errno.EOPNOTSUPP, "only plain allocation")
        os.posix_fallocate(fh, offset, length)
        return b""


# --- the processes -----------------------------------------------------------------------------------------------

class Refusal(Exception):
    """The order cannot be done here; the message goes back to the agent."""


def _overlaps(a: str, b: str) -> bool:
    return a == b or a.startswith(b.rstrip("/") + "/") or b.startswith(a.rstrip("/") + "/")


def serve(cfg: dict[str, Any], status: Any) -> None:
    """Mount over the volume in the target's mount namespace and serve it; never returns."""
    os.umask(0)
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    proc = os.open("/proc", os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)  # the host's /proc, kept after setns
    try:
        dev = os.open("/dev/fuse", os.O_RDWR | os.O_CLOEXEC)
    except OSError as error:
        raise Refusal(f"cannot open /dev/fuse: {error.strerror}") from None
    null = os.open("/dev/null", os.O_RDWR | os.O_CLOEXEC)
    if cfg.get("pid"):
        try:
            enter_mount_ns(int(cfg["pid"]), cfg.get("ns"))
        except OSError as error:
            raise Refusal(f"cannot enter the mount namespace of process {cfg['pid']}: {error}") from None
    volume = cfg["volume"]
    resolved = os.path.realpath(volume)
    why = refusal(resolved)
    if why:
        raise Refusal(f"volumePath {volume} resolves to {resolved}: {why}" if resolved != volume else why)
    try:
        if not stat.S_ISDIR(os.lstat(resolved).st_mode):
            raise Refusal(f"volumePath {volume} is not a directory")
    except FileNotFoundError:
        raise Refusal(f"volumePath {volume} does not exist in the target") from None
    for other in read_mountinfo("thread-self/mountinfo", proc):
        if other.fstype == FSTYPE and _overlaps(other.mountpoint, resolved):
            raise Refusal(f"another IO fault ({other.source}) is already on {other.mountpoint}")
    root_fd = os.open(resolved, os.O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    fs = Filesystem(cfg, dev, proc, root_fd)
    flags = os.statvfs(root_fd).f_flag & _MS_FROM_ST
    os.fchdir(root_fd)  # mount on "." = on the directory already opened: no path race
    try:
        mount_fuse(dev, b".", SOURCE_PREFIX + cfg["short"], flags)
    except OSError as error:
        raise Refusal(f"cannot mount FUSE on {resolved}: {error.strerror}") from None
    finally:
        os.chdir("/")
    for n in range(WORKERS):
        threading.Thread(target=fs.worker, name=f"fuse-{n}", daemon=True).start()
    if not fs.ready.wait(10):
        umount_detach(resolved)
        raise Refusal("the kernel did not start the FUSE session")
    status.write(f"ready {resolved}\n")
    status.flush()
    os.dup2(null, 1)  # the agent may go away; nothing more is written
    threading.Event().wait()


def unmount(cfg: dict[str, Any], status: Any) -> None:
    proc = os.open("/proc", os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    if cfg.get("pid"):
        enter_mount_ns(int(cfg["pid"]), cfg.get("ns"))
    done, problems = unmount_ours(cfg["short"], proc)
    status.write(f"unmounted {done}\n" if not problems else f"refused {'; '.join(problems)}\n")


def main(argv: list[str]) -> int:
    cfg = json.loads(sys.stdin.read())
    sys.stdin.close()
    status = sys.stdout
    try:
        if argv[1:] == ["serve"]:
            serve(cfg, status)
        elif argv[1:] == ["unmount"]:
            unmount(cfg, status)
        else:
            status.write("refused usage: iofault_fs.py serve|unmount\n")
            return 2
    except Refusal as refused:
        status.write(f"refused {refused}\n")
        return 3
    except Exception as error:  # noqa: BLE001 - reported to the agent, which raises it
        status.write(f"refused {type(error).__name__}: {error}\n")
        return 4
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))

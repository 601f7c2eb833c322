"""IOChaos: delay file operations, make them fail, lie about file attributes, or corrupt the data
read or written, on one volume of the selected containers (through a FUSE layer mounted over it)."""
from __future__ import annotations

from .common import CONTAINER_NAMES, REMOTE_CLUSTER
from .model import Action, Capability, Kind, Target
from .params import DurationType, Enum, Field, Int, ListOf, Obj, Str, one_of_required

METHODS = (
    "lookup", "forget", "getattr", "setattr", "readlink", "mknod", "mkdir", "unlink", "rmdir", "symlink",
    "rename", "link", "open", "read", "write", "statfs", "release", "fsync", "setxattr", "getxattr",
    "listxattr", "removexattr", "flush", "opendir", "readdir", "releasedir", "fsyncdir", "access", "create",
    "getlk", "setlk", "bmap",
)

ABSOLUTE = Str(min_length=1, pattern=r"/\S*", pattern_help="an absolute path, starting with /")

COMMON = (
    Field("volumePath", ABSOLUTE, required=True, label="Volume",
          help="Where the volume is mounted in the container, e.g. /var/lib/mysql."),
    Field("path", ABSOLUTE, label="Files",
          help="Only files matching this glob, e.g. /var/lib/mysql/**/*.ibd (default: the whole volume)."),
    Field("methods", ListOf(Enum(METHODS), min_items=1, unique=True), label="Operations",
          help="Only these file operations, e.g. read, write (default: all of them)."),
    Field("percent", Int(minimum=0, maximum=100), default=100, label="Probability", unit="%",
          help="Share of the matching operations affected."),
    CONTAINER_NAMES,
    REMOTE_CLUSTER,
)

UINT32 = Int(minimum=0, maximum=2**32 - 1)
UINT64 = Int(minimum=0, maximum=2**64 - 1)

TIMESPEC = Obj(
    (
        Field("sec", Int(minimum=-(2**63), maximum=2**63 - 1), required=True, label="Seconds", unit="s",
              help="Seconds since 1970-01-01 UTC."),
        Field("nsec", Int(minimum=0, maximum=999_999_999), label="Nanoseconds", unit="ns",
              help="Nanoseconds within the second (0 when not given)."),
    )
)

ATTR = Obj(
    (
        Field("ino", UINT64, label="Inode", help="Inode number."),
        Field("size", UINT64, label="Size", unit="bytes", help="File size."),
        Field("blocks", UINT64, label="Blocks", help="Number of 512-byte blocks."),
        Field("atime", TIMESPEC, label="Access time", help="Last access time."),
        Field("mtime", TIMESPEC, label="Modification time", help="Last modification time."),
        Field("ctime", TIMESPEC, label="Change time", help="Last status change time."),
        Field("kind", Enum(("namedPipe", "charDevice", "blockDevice", "directory", "regularFile", "symlink", "socket")),
              label="File type", help="The type the file appears to have."),
        # Permission bits only (with setuid, setgid, sticky); the type is `kind`. Manifests write them in
        # decimal: 72 is 0o110 (--x--x---).
        Field("perm", Int(minimum=0, maximum=0o7777), label="Permissions",
              help="Permission bits as a decimal number, e.g. 72 for octal 110."),
        Field("nlink", UINT32, label="Links", help="Number of hard links."),
        Field("uid", UINT32, label="Owner", help="Owner user id."),
        Field("gid", UINT32, label="Group", help="Owner group id."),
        Field("rdev", UINT32, label="Device", help="Device number (device files)."),
    ),
    validators=(one_of_required("ino", "size", "blocks", "atime", "mtime", "ctime", "kind", "perm", "nlink", "uid",
                                "gid", "rdev"),),
)

MISTAKE = Obj(
    (
        Field("filling", Enum(("zero", "random")), required=True, label="Filling",
              help="zero: overwrite with zero bytes; random: with random bytes."),
        Field("maxOccurrences", Int(minimum=1), required=True, label="Max occurrences",
              help="Most wrong segments per operation (from 1 to this many)."),
        Field("maxLength", Int(minimum=1), required=True, label="Max length", unit="bytes",
              help="Longest wrong segment."),
    )
)

IO = frozenset({Target.CONTAINER})


def _action(name: str, label: str, help: str, field: Field) -> Action:
    return Action(name=name, label=label, help=help, fields=(field,), targets=IO, capability=Capability.FUSE)


KIND = Kind(
    name="IOChaos",
    label="File I/O fault",
    help="Delay or fail file operations, fake file attributes, or corrupt data on a volume of the containers.",
    common_fields=COMMON,
    actions=(
        _action("latency", "Latency", "Delay matching file operations.",
                Field("delay", DurationType(), required=True, label="Delay", help="Time added to each operation, "
                      "e.g. 100ms.")),
        _action("fault", "Fault", "Make matching file operations fail with an error number.",
                # Linux error numbers are 1 to 4095 (MAX_ERRNO); 0 would be success, which Chaos Mesh refuses too.
                Field("errno", Int(minimum=1, maximum=4095), required=True, label="Error number",
                      help="The errno returned, e.g. 5 (EIO) or 28 (ENOSPC).")),
        _action("attrOverride", "Fake attributes", "Report other attributes (size, times, permissions...) for files.",
                Field("attr", ATTR, required=True, label="Attributes", help="The attributes to report instead.")),
        _action("mistake", "Corrupt data", "Overwrite parts of the data read or written with wrong bytes.",
                Field("mistake", MISTAKE, required=True, label="Mistake", help="What to write and how much.")),
    ),
)

"""IOChaos for real: a FUSE passthrough mounted over a temporary directory of files, read and written
through by this process (or, for a process target, from inside that process's own mount namespace).

The `volume` fixture FAILS the test when anything is left after it: a chaosplane FUSE mount (here or in
a target's namespace), a FUSE server process, or a file underneath that does not read back byte-identical.
"""
from __future__ import annotations

import errno
import os
import re
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from nodeagent.executors import inject, iofault, iofault_fs, recover, validate
from nodeagent.orders import FaultOrder, Refused, Target
from tests.nodeagent.netns import fault_id

pytestmark = pytest.mark.skipif(
    not hasattr(os, "geteuid") or os.geteuid() != 0 or not os.path.exists("/dev/fuse"),
    reason="needs root and /dev/fuse (CI runs as root)",
)

REPO = str(Path(__file__).resolve().parents[2])
FILES = {
    "data.bin": os.urandom(65536),
    "other.txt": b"a file no fault matches\n",
    "sub/nested.bin": os.urandom(5000),
    "ones.bin": b"\xff" * 8192,
}


@dataclass
class Volume:
    """A directory of files to put faults on; `expected` is what must be underneath after recovery."""

    path: str
    expected: dict[str, bytes] = field(default_factory=lambda: dict(FILES))
    orders: list[FaultOrder] = field(default_factory=list)
    namespaces: list[int] = field(default_factory=list)  # processes whose mountinfo is checked too

    def order(self, action: str, target: Target | None = None, **params: Any) -> FaultOrder:
        order = FaultOrder(fault_id(), "IOChaos", action, {"volumePath": self.path, **params}, target or Target())
        self.orders.append(order)
        return order

    def inject(self, action: str, target: Target | None = None, **params: Any) -> FaultOrder:
        order = self.order(action, target, **params)
        print(inject(order))
        return order

    def p(self, name: str) -> str:
        return os.path.join(self.path, name)


def _ours(mounts: list[iofault_fs.Mount], vol: Volume) -> list[str]:
    shorts = {iofault_fs.SOURCE_PREFIX + validate.short_id(o.fault_id) for o in vol.orders}
    return [f"{m.source} on {m.mountpoint}" for m in mounts
            if m.source in shorts or (m.fstype == iofault_fs.FSTYPE and m.mountpoint.startswith(vol.path))]


def _leftovers(vol: Volume) -> list[str]:
    problems = [f"mount left here: {m}" for m in _ours(iofault_fs.read_mountinfo("/proc/self/mountinfo"), vol)]
    for pid in vol.namespaces:
        try:
            problems += [f"mount left in process {pid}: {m}"
                         for m in _ours(iofault_fs.read_mountinfo(f"/proc/{pid}/mountinfo"), vol)]
        except OSError:
            continue
    for order in vol.orders:
        problems += [f"FUSE server {pid} left" for pid in iofault._servers(validate.short_id(order.fault_id))]
    return problems


def _contents(root: str) -> dict[str, bytes]:
    found = {}
    for directory, _, names in os.walk(root):
        for name in names:
            path = os.path.join(directory, name)
            if os.path.isfile(path) and not os.path.islink(path):
                found[os.path.relpath(path, root)] = Path(path).read_bytes()
    return found


@pytest.fixture
def volume() -> Iterator[Volume]:
    vol = Volume(tempfile.mkdtemp(prefix="cp-io-", dir="/tmp"))
    for name, data in FILES.items():
        os.makedirs(os.path.dirname(vol.p(name)), exist_ok=True)
        Path(vol.p(name)).write_bytes(data)
    try:
        yield vol
    finally:
        problems = _leftovers(vol)
        for order in vol.orders:  # then take it all down, whatever the test did
            try:
                iofault.recover(order)
            except Exception as error:  # noqa: BLE001 - reported below
                problems.append(f"recover failed: {error}")
        if not problems:
            found = _contents(vol.path)
            problems += [f"{name} differs underneath" for name in vol.expected if found.get(name) != vol.expected[name]]
            problems += [f"{name} unexpected underneath" for name in found if name not in vol.expected]
        shutil.rmtree(vol.path, ignore_errors=True)
        if problems:
            pytest.fail("left behind:\n" + "\n".join(problems))


def _timed_read(path: str, size: int = 4096) -> tuple[float, bytes]:
    fd = os.open(path, os.O_RDONLY)
    try:
        start = time.monotonic()
        data = os.pread(fd, size, 0)
        return time.monotonic() - start, data
    finally:
        os.close(fd)


def _read_errno(path: str) -> int:
    try:
        _timed_read(path)
    except OSError as error:
        return error.errno
    return 0


def _ms(times: list[float]) -> str:
    return ", ".join(f"{t * 1000:.1f}" for t in times)


def test_latency_on_matching_reads_only(volume: Volume) -> None:
    order = volume.inject("latency", delay="200ms", path=f"{volume.path}/**/*.bin", methods=["read"])
    # Three of each: the delay is added to every read, and a loaded machine can only add to it.
    slow = [_timed_read(volume.p("data.bin")) for _ in range(3)]
    nested = [_timed_read(volume.p("sub/nested.bin"))[0] for _ in range(3)]
    fast = [_timed_read(volume.p("other.txt")) for _ in range(3)]
    statted = []
    for _ in range(3):
        start = time.monotonic()
        os.stat(volume.p("data.bin"))  # not a read: not delayed
        statted.append(time.monotonic() - start)
    recover(order)
    after = [_timed_read(volume.p("data.bin"))[0] for _ in range(3)]
    print(f"ms: data.bin {_ms([t for t, _ in slow])}; sub/nested.bin {_ms(nested)}; "
          f"other.txt {_ms([t for t, _ in fast])}; stat {_ms(statted)}; after recovery {_ms(after)}")
    for times in ([t for t, _ in slow], nested):
        assert min(times) >= 0.16 and min(times) <= 0.24
    assert min(t for t, _ in fast) < 0.05 and min(statted) < 0.05 and min(after) < 0.05
    assert all(data == FILES["data.bin"][:4096] for _, data in slow)
    assert all(data == FILES["other.txt"] for _, data in fast)


def test_errno_at_100_percent_for_matching_paths_only(volume: Volume) -> None:
    order = volume.inject("fault", errno=errno.EIO, path=volume.p("data.bin"))  # every method
    assert _read_errno(volume.p("data.bin")) == errno.EIO
    assert _read_errno(volume.p("other.txt")) == 0
    assert _read_errno(volume.p("sub/nested.bin")) == 0
    recover(order)
    assert _read_errno(volume.p("data.bin")) == 0


def test_errno_at_50_percent_hits_about_half(volume: Volume) -> None:
    order = volume.inject("fault", errno=errno.ENOSPC, percent=50, methods=["read"], path=volume.p("data.bin"))
    fd = os.open(volume.p("data.bin"), os.O_RDONLY)  # open is not among the methods: it works
    failed = 0
    try:
        for _ in range(200):
            try:
                os.pread(fd, 512, 0)
            except OSError as error:
                assert error.errno == errno.ENOSPC
                failed += 1
    finally:
        os.close(fd)
    recover(order)
    print(f"{failed} of 200 reads failed at 50%")
    assert 50 <= failed <= 150  # mean 100, standard deviation 7: this never flakes


def test_attr_override_shows_in_stat(volume: Volume) -> None:
    other_before = os.stat(volume.p("other.txt"))
    attr = {"perm": 72, "size": 12345, "uid": 4242, "gid": 4343, "nlink": 7, "ino": 99,
            "mtime": {"sec": 1_000_000_000, "nsec": 5}, "kind": "namedPipe"}
    order = volume.inject("attrOverride", attr=attr, path=volume.p("data.bin"))
    faked, other = os.stat(volume.p("data.bin")), os.stat(volume.p("other.txt"))
    recover(order)
    real = os.stat(volume.p("data.bin"))
    assert stat.S_IMODE(faked.st_mode) == 0o110 and stat.S_ISFIFO(faked.st_mode)
    assert (faked.st_size, faked.st_uid, faked.st_gid, faked.st_nlink, faked.st_ino) == (12345, 4242, 4343, 7, 99)
    assert faked.st_mtime_ns == 1_000_000_000 * 10**9 + 5
    assert (other.st_size, other.st_mode, other.st_uid, other.st_ino) == (
        other_before.st_size, other_before.st_mode, other_before.st_uid, other_before.st_ino)
    assert stat.S_ISREG(real.st_mode) and real.st_size == len(FILES["data.bin"]) and real.st_uid == 0


def _zero_runs(data: bytes) -> list[int]:
    runs, length = [], 0
    for byte in data + b"\xff":
        if byte == 0:
            length += 1
        elif length:
            runs.append(length)
            length = 0
    return runs


def test_mistake_corrupts_at_most_max_length_max_occurrences_times(volume: Volume) -> None:
    order = volume.inject("mistake", mistake={"filling": "zero", "maxOccurrences": 3, "maxLength": 10},
                          methods=["read"], path=volume.p("ones.bin"))
    fd = os.open(volume.p("ones.bin"), os.O_RDONLY)
    try:
        reads = [os.pread(fd, 8192, 0) for _ in range(30)]
    finally:
        os.close(fd)
    clean = _timed_read(volume.p("other.txt"))[1]
    recover(order)
    runs = [_zero_runs(data) for data in reads]
    print(f"zeroed runs per read: {runs[:10]} ...")
    assert all(len(data) == 8192 and set(data) <= {0, 0xFF} for data in reads)
    assert all(1 <= len(r) <= 3 and sum(r) <= 30 for r in runs)  # every read hit (100%), within the bounds
    assert max(max(r) for r in runs) <= 30 and clean == FILES["other.txt"]

    order = volume.inject("mistake", mistake={"filling": "random", "maxOccurrences": 2, "maxLength": 4},
                          methods=["read"], path=volume.p("ones.bin"))
    fd = os.open(volume.p("ones.bin"), os.O_RDONLY)
    try:
        changed = [sum(1 for b in os.pread(fd, 8192, 0) if b != 0xFF) for _ in range(30)]
    finally:
        os.close(fd)
    recover(order)
    assert all(n <= 8 for n in changed) and any(changed)

    order = volume.inject("mistake", mistake={"filling": "zero", "maxOccurrences": 2, "maxLength": 5},
                          methods=["write"], path=volume.p("written.bin"))
    Path(volume.p("written.bin")).write_bytes(b"\xff" * 8192)  # one write of it all
    recover(order)
    stored = Path(volume.p("written.bin")).read_bytes()
    runs = _zero_runs(stored)
    assert len(stored) == 8192 and 1 <= len(runs) <= 2 and sum(runs) <= 10, runs
    volume.expected["written.bin"] = stored


def test_writes_through_the_mount_land_in_the_real_files(volume: Volume) -> None:
    order = volume.inject("fault", errno=errno.ENOSPC, methods=["write"], path=f"{volume.path}/*.bin")
    with open(volume.p("other.txt"), "ab") as f:
        f.write(b"appended through FUSE\n")
    with pytest.raises(OSError) as refused:
        with open(volume.p("data.bin"), "r+b") as f:
            f.write(b"never lands")
    assert refused.value.errno == errno.ENOSPC
    os.mkdir(volume.p("made"))
    Path(volume.p("made/new.txt")).write_bytes(b"created through FUSE")
    os.rename(volume.p("made/new.txt"), volume.p("made/renamed.txt"))
    os.truncate(volume.p("sub/nested.bin"), 100)
    os.chmod(volume.p("made/renamed.txt"), 0o640)
    os.symlink("renamed.txt", volume.p("made/link"))
    os.unlink(volume.p("ones.bin"))
    listed = sorted(os.listdir(volume.path))
    through = _contents(volume.path)
    recover(order)
    volume.expected["other.txt"] = FILES["other.txt"] + b"appended through FUSE\n"
    volume.expected["made/renamed.txt"] = b"created through FUSE"
    volume.expected["sub/nested.bin"] = FILES["sub/nested.bin"][:100]
    del volume.expected["ones.bin"]
    assert listed == sorted(os.listdir(volume.path)) == ["data.bin", "made", "other.txt", "sub"]
    assert through == _contents(volume.path) == volume.expected
    assert stat.S_IMODE(os.stat(volume.p("made/renamed.txt")).st_mode) == 0o640
    assert os.readlink(volume.p("made/link")) == "renamed.txt"


def test_files_opened_before_keep_the_real_file(volume: Volume) -> None:
    early = os.open(volume.p("data.bin"), os.O_RDONLY)
    try:
        order = volume.inject("fault", errno=errno.EIO, path=volume.p("data.bin"))
        assert os.pread(early, 100, 0) == FILES["data.bin"][:100]
        assert _read_errno(volume.p("data.bin")) == errno.EIO
        recover(order)
    finally:
        os.close(early)


def test_process_target_mounts_in_its_own_mount_namespace(volume: Volume) -> None:
    target = subprocess.Popen(["unshare", "--mount", "--propagation", "private", "sleep", "60"])
    try:
        own = os.stat("/proc/self/ns/mnt").st_ino
        deadline = time.monotonic() + 5
        while os.stat(f"/proc/{target.pid}/ns/mnt").st_ino == own and time.monotonic() < deadline:
            time.sleep(0.01)
        volume.namespaces.append(target.pid)
        order = volume.inject("fault", Target(kind="process", pid=target.pid), errno=errno.EIO,
                              path=volume.p("data.bin"), methods=["read"])
        short = iofault_fs.SOURCE_PREFIX + validate.short_id(order.fault_id)
        inside = [m.source for m in iofault_fs.read_mountinfo(f"/proc/{target.pid}/mountinfo")]
        here = [m.source for m in iofault_fs.read_mountinfo("/proc/self/mountinfo")]
        read = ["nsenter", "-t", str(target.pid), "-m", sys.executable, "-I", "-S", "-c",
                "import os, sys\nfd = os.open(sys.argv[1], os.O_RDONLY)\ntry:\n    os.pread(fd, 100, 0)\n"
                "except OSError as e:\n    sys.exit(e.errno)", volume.p("data.bin")]
        in_target = subprocess.run(read, timeout=30).returncode
        assert short in inside and short not in here
        assert in_target == errno.EIO and _read_errno(volume.p("data.bin")) == 0
        recover(order)
        assert short not in [m.source for m in iofault_fs.read_mountinfo(f"/proc/{target.pid}/mountinfo")]
        assert subprocess.run(read, timeout=30).returncode == 0
        assert not _leftovers(volume)
    finally:
        target.kill()
        target.wait(5)


AGENT = (
    "import sys, time\nfrom nodeagent.executors import iofault\nfrom nodeagent.orders import FaultOrder\n"
    "print(iofault.inject(FaultOrder.from_json(sys.argv[1])), flush=True)\ntime.sleep(60)\n"
)


def test_agent_killed_mid_fault_is_recovered_from_a_fresh_process(volume: Volume) -> None:
    order = volume.order("fault", errno=errno.EIO, path=volume.p("data.bin"))
    agent = subprocess.Popen([sys.executable, "-c", AGENT, order.to_json()], cwd=REPO, stdout=subprocess.PIPE,
                             start_new_session=True)
    try:
        assert agent.stdout is not None
        said = agent.stdout.readline().decode()
        assert "FUSE server pid" in said, said
        assert _read_errno(volume.p("data.bin")) == errno.EIO
    finally:
        os.kill(agent.pid, signal.SIGKILL)
        agent.wait(5)
    short = validate.short_id(order.fault_id)
    assert iofault._servers(short), "the fault outlives the agent: its server keeps serving"
    assert _read_errno(volume.p("data.bin")) == errno.EIO
    recover(FaultOrder.from_json(order.to_json()))  # all a restarted agent has
    assert not _leftovers(volume)
    assert _read_errno(volume.p("data.bin")) == 0


def test_a_crashed_server_leaves_a_dead_mount_that_recovery_removes(volume: Volume) -> None:
    order = volume.inject("latency", delay="10ms", path=volume.p("data.bin"))
    for pid in iofault._servers(validate.short_id(order.fault_id)):
        os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 5
    while iofault._servers(validate.short_id(order.fault_id)) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert _read_errno(volume.p("other.txt")) in (errno.ENOTCONN, errno.ECONNABORTED)
    recover(order)
    assert not _leftovers(volume)
    assert _read_errno(volume.p("other.txt")) == 0


def test_recovery_is_idempotent_and_a_second_inject_changes_nothing(volume: Volume) -> None:
    order = volume.order("latency", delay="1ms")
    recover(order)  # never injected
    print(inject(order))
    again = inject(order)
    assert "already" in again
    assert len(iofault._servers(validate.short_id(order.fault_id))) == 1
    recover(order)
    recover(order)
    assert not _leftovers(volume)


def test_a_second_fault_on_the_same_volume_is_refused(volume: Volume) -> None:
    volume.inject("latency", delay="1ms")
    with pytest.raises(Refused, match="another IO fault"):
        volume.inject("fault", errno=errno.EIO)
    for order in volume.orders:
        recover(order)


@pytest.mark.parametrize(("params", "reason"), [
    ({"volumePath": "/"}, "system directory"),
    ({"volumePath": "/etc"}, "system directory"),
    ({"volumePath": "/proc/1"}, "system directory /proc"),
    ({"volumePath": "/tmp"}, "system directory"),
    ({"volumePath": "relative/dir"}, "normalised absolute path"),
    ({"volumePath": "/tmp/a/../b"}, "normalised absolute path"),
    ({"path": "/elsewhere/*.db"}, "not under volumePath"),
    ({"methods": ["getlk", "bmap"]}, "never fire"),
    ({"methods": ["read", "read"]}, "named twice"),
    ({"percent": 101}, "percent"),
    ({"errno": 0}, "errno"),
    ({"errno": 512}, "errno"),  # the kernel refuses such an answer, and the caller would hang
])
def test_refused_before_anything_runs(volume: Volume, params: dict[str, Any], reason: str) -> None:
    order = volume.order("fault", errno=params.pop("errno", errno.EIO), **params)
    with pytest.raises(Refused, match=reason):
        inject(order)


@pytest.mark.parametrize(("action", "params", "reason"), [
    ("mistake", {"mistake": {"filling": "zero", "maxOccurrences": 1, "maxLength": 1}, "methods": ["open"]},
     "must include read or write"),
    ("mistake", {"mistake": {"filling": "ones", "maxOccurrences": 1, "maxLength": 1}}, "filling"),
    ("attrOverride", {"attr": {}}, "at least one"),
    ("attrOverride", {"attr": {"colour": 1}}, "not an attribute"),
    ("attrOverride", {"attr": {"perm": 0o10000}}, "attr.perm"),
    ("latency", {"delay": "soon"}, "not a duration"),
])
def test_action_values_are_checked(volume: Volume, action: str, params: dict[str, Any], reason: str) -> None:
    with pytest.raises(Refused, match=reason):
        inject(volume.order(action, **params))


def test_refused_by_the_server_in_the_target_leaves_nothing(volume: Volume) -> None:
    with pytest.raises(Refused, match="does not exist"):
        inject(volume.order("fault", errno=errno.EIO, volumePath=volume.p("missing")))
    with pytest.raises(Refused, match="not a directory"):
        inject(volume.order("fault", errno=errno.EIO, volumePath=volume.p("other.txt")))
    agent_dir = os.path.dirname(os.path.realpath(sys.prefix))
    with pytest.raises(Refused, match="agent's own files"):
        inject(volume.order("fault", errno=errno.EIO, volumePath=agent_dir))
    with pytest.raises(Refused, match="network namespace"):
        inject(volume.order("fault", Target(kind="netns", name="x"), errno=errno.EIO))
    assert not _leftovers(volume)


@pytest.mark.parametrize(("pattern", "matches", "misses"), [
    ("/v/**/*.db", ["/v/a.db", "/v/x/y/a.db"], ["/v/a.dbx", "/w/a.db", "/v/a/db"]),
    ("/v/*.db", ["/v/a.db"], ["/v/x/a.db"]),
    ("/v/data", ["/v/data", "/v/data/x/y"], ["/v/database", "/v"]),
    ("/v/f?le[0-9]", ["/v/file1", "/v/fyle9"], ["/v/file", "/v/fi/e1", "/v/filea"]),
    ("/v/[!a]*", ["/v/b"], ["/v/a", "/v/b/c"]),
])
def test_path_globs(pattern: str, matches: list[str], misses: list[str]) -> None:
    regex = re.compile(iofault_fs.glob_regex(pattern))
    assert [p for p in matches if regex.fullmatch(p)] == matches
    assert [p for p in misses if regex.fullmatch(p)] == []


def test_capability_mounts_and_unmounts_a_probe() -> None:
    before = [m for m in iofault_fs.read_mountinfo("/proc/self/mountinfo") if m.fstype == iofault_fs.FSTYPE]
    name, ok, detail = iofault.capability()
    after = [m for m in iofault_fs.read_mountinfo("/proc/self/mountinfo") if m.fstype == iofault_fs.FSTYPE]
    assert (name, ok) == ("fuse", True), detail
    assert not [m for m in after if m not in before and m.source.endswith("probe")]
    assert not [p for p in os.listdir(tempfile.gettempdir()) if p.startswith("chaosplane-fuse-probe-")]

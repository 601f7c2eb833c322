"""PhysicalMachineChaos file-* for real, in temporary directories: each effect observed, then undone
byte for byte (content, inode, mode), with nothing of the fault left (hidden files, state files);
refusals name the field and change nothing; an agent killed mid-fault is undone by a fresh process;
a process target in its own mount namespace is acted on in that namespace."""
from __future__ import annotations

import hashlib
import os
import signal
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from nodeagent.executors import files, inject, recover
from nodeagent.executors import files_paths as fp
from nodeagent.journal import Journal
from nodeagent.orders import FaultOrder, Refused, Target
from nodeagent.runtime import Runtime
from tests.nodeagent.netns import fault_id, needs_root

REPO = Path(__file__).resolve().parents[2]
_CHILD = (
    "import sys\n"
    "from nodeagent.executors import inject\n"
    "from nodeagent.orders import FaultOrder\n"
    "print(inject(FaultOrder.from_json(sys.argv[1])), flush=True)\n"
    "sys.stdin.read()\n"  # hold the fault until killed
)
_CHILD_RUNTIME = (  # the agent's own fault table: journal first, then the executor
    "import sys\n"
    "from nodeagent.journal import Journal\n"
    "from nodeagent.orders import FaultOrder\n"
    "from nodeagent.runtime import Runtime\n"
    "print(Runtime(Journal(sys.argv[2])).inject(FaultOrder.from_json(sys.argv[1])), flush=True)\n"
    "sys.stdin.read()\n"
)


def inject_in_child_then_kill(order: FaultOrder, journal: Path | None = None) -> str:
    """Inject in a separate agent-like process (the executor alone, or the agent's runtime with a journal),
    then SIGKILL it: no chance to clean up."""
    argv = [sys.executable, "-c", _CHILD, order.to_json()]
    if journal is not None:
        argv = [sys.executable, "-c", _CHILD_RUNTIME, order.to_json(), str(journal)]
    child = subprocess.Popen(argv, cwd=REPO, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        line = child.stdout.readline().decode().strip() if child.stdout else ""
        assert line, f"the child did not inject: {child.stderr.read().decode() if child.stderr else ''}"
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(5)
        for stream in (child.stdin, child.stdout, child.stderr):
            if stream:
                stream.close()
    assert child.returncode == -signal.SIGKILL
    return line


@pytest.fixture
def state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """The agent's state directory for the test; no state file may be left at the end."""
    root = tmp_path / "state"
    monkeypatch.setenv(fp.STATE_ENV, str(root))
    yield root
    assert fp.state_files(files.FAMILY) == [], "state files left"


@pytest.fixture
def work(tmp_path: Path, state: Path) -> Iterator[Path]:
    """A directory to act in; nothing of a fault (hidden or named files) may be left in it."""
    directory = tmp_path / "work"
    directory.mkdir()
    yield directory
    left = [str(p) for p in directory.rglob("*") if "chaosplane" in p.name]
    assert not left, f"left behind: {left}"


def order(action: str, target: Target | None = None, **fields: object) -> FaultOrder:
    return FaultOrder(fault_id(), "PhysicalMachineChaos", action, {action: fields}, target or Target())


def snapshot(path: Path) -> tuple[bytes, int, int, int]:
    st = os.lstat(path)
    return path.read_bytes(), st.st_ino, stat.S_IMODE(st.st_mode), st.st_mtime_ns


def tree(path: Path) -> str:
    digest = hashlib.sha256()
    for p in sorted(path.rglob("*")):
        digest.update(str(p.relative_to(path)).encode())
        digest.update(p.read_bytes() if p.is_file() else b"dir")
    return digest.hexdigest()


def refused(o: FaultOrder, field: str) -> str:
    try:
        with pytest.raises(Refused) as info:
            inject(o)
    finally:
        recover(o)  # the runtime does this after a refusal (it must change nothing), and it undoes a wrong success
    message = str(info.value)
    assert message.startswith(f"{field}:"), message
    return message


# file-create --------------------------------------------------------------------------------------------


def test_create_file_then_removed(work: Path, state: Path) -> None:
    path = work / "new.conf"
    o = order("file-create", **{"file-name": str(path)})
    print(inject(o))
    assert path.is_file() and path.stat().st_size == 0
    assert stat.S_IMODE(os.stat(state / "files").st_mode) == 0o700
    recover(o)
    assert not path.exists()
    recover(o)  # idempotent


def test_create_directory_then_removed_with_what_was_put_in_it(work: Path) -> None:
    path = work / "cache"
    o = order("file-create", **{"dir-name": str(path)})
    print(inject(o))
    assert path.is_dir()
    (path / "written-by-the-app").write_text("x")
    recover(o)
    assert not path.exists()


def test_create_refuses_an_existing_path_and_recovery_leaves_it(work: Path) -> None:
    path = work / "precious"
    path.write_text("keep me")
    print(refused(order("file-create", **{"file-name": str(path)}), "file-name"))
    assert path.read_text() == "keep me"
    print(refused(order("file-create", **{"file-name": str(work / "missing" / "x")}), "file-name"))
    assert not (work / "missing").exists()


# file-modify --------------------------------------------------------------------------------------------


def test_modify_changes_the_mode_and_puts_it_back(work: Path) -> None:
    path = work / "app.key"
    path.write_text("secret")
    os.chmod(path, 0o640)
    o = order("file-modify", **{"file-name": str(path), "privilege": 4777})
    print(inject(o))
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o4777
    recover(o)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o640
    print(refused(order("file-modify", **{"file-name": str(path), "privilege": 800}), "privilege"))
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o640


# file-delete --------------------------------------------------------------------------------------------


def test_delete_moves_the_file_aside_and_back_byte_identical(work: Path) -> None:
    path = work / "data.bin"
    path.write_bytes(os.urandom(200_000))
    os.chmod(path, 0o604)
    before = snapshot(path)
    o = order("file-delete", **{"file-name": str(path)})
    print(inject(o))
    assert not path.exists()
    hidden = [p.name for p in work.iterdir()]
    assert len(hidden) == 1 and hidden[0].startswith(".chaosplane-"), hidden
    recover(o)
    assert snapshot(path) == before
    recover(o)
    assert snapshot(path) == before


def test_delete_a_directory_and_back(work: Path) -> None:
    path = work / "conf.d"
    (path / "sub").mkdir(parents=True)
    (path / "a.conf").write_text("a = 1\n")
    (path / "sub" / "b.bin").write_bytes(os.urandom(5000))
    before, ino = tree(path), path.stat().st_ino
    o = order("file-delete", **{"dir-name": str(path)})
    print(inject(o))
    assert not path.exists()
    recover(o)
    assert tree(path) == before and path.stat().st_ino == ino
    print(refused(order("file-delete", **{"file-name": str(path)}), "file-name"))  # a directory as file-name
    print(refused(order("file-delete", **{"dir-name": str(path / "a.conf")}), "dir-name"))
    assert tree(path) == before


def test_delete_keeps_what_a_program_recreated_meanwhile(work: Path) -> None:
    path = work / "settings.json"
    path.write_text('{"original": true}')
    before = snapshot(path)
    o = order("file-delete", **{"file-name": str(path)})
    inject(o)
    path.write_text('{"default": true}')  # the program writes a fresh default
    recover(o)
    assert snapshot(path) == before
    kept = [p for p in work.iterdir() if p.name.endswith(".recreated")]
    assert [p.read_text() for p in kept] == ['{"default": true}']
    for p in kept:
        p.unlink()


# file-rename --------------------------------------------------------------------------------------------


def test_rename_and_back(work: Path) -> None:
    source, dest = work / "current.log", work / "current.log.1"
    source.write_bytes(os.urandom(10_000))
    before = snapshot(source)
    o = order("file-rename", **{"source-file": str(source), "dest-file": str(dest)})
    print(inject(o))
    assert not source.exists() and dest.read_bytes() == before[0]
    recover(o)
    assert snapshot(source) == before and not dest.exists()


def test_rename_refuses_an_existing_destination(work: Path) -> None:
    source, dest = work / "a", work / "b"
    source.write_text("a")
    dest.write_text("b")
    print(refused(order("file-rename", **{"source-file": str(source), "dest-file": str(dest)}), "dest-file"))
    assert source.read_text() == "a" and dest.read_text() == "b"
    print(refused(order("file-rename", **{"source-file": str(work / "nope"), "dest-file": str(work / "c")}),
                  "source-file"))


# file-append --------------------------------------------------------------------------------------------


def test_append_then_truncated_back(work: Path, state: Path) -> None:
    path = work / "app.log"
    path.write_bytes(b"line 1\nline 2\n")
    before = snapshot(path)
    o = order("file-append", **{"file-name": str(path), "data": "garbage\n", "count": 1000})
    print(inject(o))
    assert path.stat().st_size == len(before[0]) + 8000
    assert path.read_bytes().endswith(b"garbage\n" * 1000)
    assert os.listdir(state / "files") == [f"{o.fault_id}.json"]
    recover(o)
    assert path.read_bytes() == before[0] and path.stat().st_ino == before[1]


# file-replace (one-shot) -------------------------------------------------------------------------------


def test_replace_on_one_line_is_not_put_back(work: Path) -> None:
    path = work / "hosts"
    path.write_text("db=primary\ncache=primary\nqueue=primary\n")
    ino = path.stat().st_ino
    o = order("file-replace", **{"file-name": str(path), "origin-string": "primary", "dest-string": "nowhere",
                                 "line": 2})
    print(inject(o))
    assert path.read_text() == "db=primary\ncache=nowhere\nqueue=primary\n"
    recover(o)
    assert path.read_text() == "db=primary\ncache=nowhere\nqueue=primary\n"
    assert path.stat().st_ino == ino
    everywhere = order("file-replace", **{"file-name": str(path), "origin-string": "primary", "dest-string": "b"})
    inject(everywhere)
    assert path.read_text() == "db=b\ncache=nowhere\nqueue=b\n"
    print(refused(order("file-replace", **{"file-name": str(path), "origin-string": "zzz", "dest-string": "y"}),
                  "origin-string"))
    print(refused(order("file-replace", **{"file-name": str(path), "origin-string": "b", "dest-string": "y",
                                           "line": 4}), "line"))
    assert path.read_text() == "db=b\ncache=nowhere\nqueue=b\n"


# Refusals -----------------------------------------------------------------------------------------------
# Faults are only injected at paths where nothing would happen even if a check were broken (names that do
# not exist under the denied trees, malformed values): a regression must fail the test, never damage the
# machine running it. The real sensitive paths are checked against the path logic, which acts on nothing.


@pytest.mark.parametrize(("action", "fields", "field", "why"), [
    ("file-create", {"file-name": "relative/path"}, "file-name", "not an absolute path"),
    ("file-create", {"file-name": "/tmp/../tmp/x"}, "file-name", "not a normalised path"),
    ("file-create", {"file-name": "/tmp//x"}, "file-name", "not a normalised path"),
    ("file-create", {"file-name": "/tmp/x/"}, "file-name", "not a normalised path"),
    ("file-create", {"file-name": "/tmp/a\x00b"}, "file-name", "NUL"),
    ("file-create", {"file-name": "/tmp/x", "dir-name": "/tmp/y"}, "file-name", "one of them"),
    ("file-create", {"dir-name": "/proc/chaosplane-missing/x"}, "dir-name", "never touches"),
    ("file-create", {"file-name": "/sys/chaosplane-missing/x"}, "file-name", "never touches"),
    ("file-create", {"file-name": "/dev/chaosplane-missing/x"}, "file-name", "never touches"),
    ("file-append", {"file-name": "/dev/chaosplane-missing", "data": "x"}, "file-name", "never touches"),
    ("file-modify", {"file-name": "/boot/chaosplane-missing", "privilege": 777}, "file-name", "never touches"),
    ("file-modify", {"file-name": "/chaosplane-missing", "privilege": 700}, "file-name", "top-level"),
    ("file-delete", {"dir-name": "/chaosplane-missing"}, "dir-name", "top-level"),
    ("file-rename", {"source-file": "/chaosplane-missing", "dest-file": "/tmp/x"}, "source-file", "top-level"),
    ("file-append", {"file-name": "/tmp/chaosplane-missing", "data": ""}, "data", "1 to 65536"),
    ("file-append", {"file-name": "/tmp/chaosplane-missing", "data": "x", "count": 0}, "count", "whole number"),
])
def test_refusals_name_the_field_and_the_reason(state: Path, action: str, fields: dict[str, object], field: str,
                                                why: str) -> None:
    message = refused(order(action, **fields), field)
    print(message)
    assert why in message


HOST = fp.Root("", None, "the host")


@pytest.mark.parametrize(("path", "moves", "why"), [
    ("/", False, "root directory"),
    ("/etc/shadow", False, "account database"),
    ("/etc/gshadow", False, "account database"),
    ("/etc/passwd", False, "account database"),
    ("/etc/sudoers", False, "account database"),
    ("/dev/sda", False, "never touches"),
    ("/proc/sysrq-trigger", False, "never touches"),
    ("/sys/kernel/mm", False, "never touches"),
    ("/boot/vmlinuz", False, "never touches"),
    ("/etc", True, "top-level"),
    ("/usr", True, "top-level"),
    ("/var", True, "top-level"),
])
def test_sensitive_paths_are_refused_by_the_path_check(path: str, moves: bool, why: str) -> None:
    for follow in (True, False):
        with pytest.raises(Refused, match=why):
            fp.locate(HOST, path, "file-name", follow_final=follow, moves=moves)


def test_symbolic_links_are_resolved_before_the_deny_list(work: Path) -> None:
    link = work / "innocent"
    link.symlink_to("/etc/shadow")
    with pytest.raises(Refused, match="account database"):
        fp.locate(HOST, str(link), "file-name", follow_final=True)
    nested = work / "nested"
    nested.symlink_to("/proc")
    with pytest.raises(Refused, match="never touches"):
        fp.locate(HOST, f"{nested}/chaosplane-missing", "file-name", follow_final=False)
    link.unlink()
    link.symlink_to("/proc/chaosplane-missing")  # harmless if the check were broken: it does not exist
    message = refused(order("file-append", **{"file-name": str(link), "data": "x"}), "file-name")
    print(message)
    assert "never touches" in message
    link.unlink()
    nested.unlink()


def test_the_agent_state_directory_is_refused(state: Path) -> None:
    state.mkdir(exist_ok=True)
    print(refused(order("file-create", **{"file-name": str(state / "evil.json")}), "file-name"))


# An agent killed mid-fault --------------------------------------------------------------------------------


@pytest.mark.parametrize("action", ["file-create", "file-modify", "file-delete", "file-rename", "file-append"])
def test_killed_agent_then_a_fresh_process_recovers(work: Path, action: str) -> None:
    path = work / "victim"
    path.write_bytes(os.urandom(3000))
    os.chmod(path, 0o600)
    before = snapshot(path)
    fields: dict[str, object] = {
        "file-create": {"file-name": str(work / "created")},
        "file-modify": {"file-name": str(path), "privilege": 755},
        "file-delete": {"file-name": str(path)},
        "file-rename": {"source-file": str(path), "dest-file": str(work / "renamed")},
        "file-append": {"file-name": str(path), "data": "tail", "count": 50},
    }[action]
    applied = {
        "file-create": lambda: (work / "created").exists(),
        "file-modify": lambda: stat.S_IMODE(path.stat().st_mode) == 0o755,
        "file-delete": lambda: not path.exists(),
        "file-rename": lambda: (work / "renamed").exists() and not path.exists(),
        "file-append": lambda: path.stat().st_size == 3000 + 200,
    }[action]
    o = order(action, **fields)
    print(inject_in_child_then_kill(o))
    assert applied(), "the child did not apply the fault"
    recover(FaultOrder.from_json(o.to_json()))  # this process knows nothing but the order
    # Content, inode and mode as before; a truncation back is still a write, so the mtime moves.
    assert snapshot(path)[:3] == before[:3]
    if action != "file-append":
        assert snapshot(path) == before
    assert sorted(p.name for p in work.iterdir()) == ["victim"]


def test_killed_agent_runtime_then_the_restarted_one_recovers_from_its_journal(work: Path, tmp_path: Path) -> None:
    path = work / "victim"
    path.write_bytes(os.urandom(3000))
    before = snapshot(path)
    o = FaultOrder(fault_id(), "PhysicalMachineChaos", "file-delete", {"file-delete": {"file-name": str(path)}},
                   expires_at=time.time() + 300)
    journal = tmp_path / "journal.sqlite3"
    print(inject_in_child_then_kill(o, journal))
    assert not path.exists()
    runtime = Runtime(Journal(journal))
    try:
        assert runtime.start() == [o.fault_id]
    finally:
        runtime.close()
    assert snapshot(path) == before


# A process in its own mount namespace -------------------------------------------------------------------


@pytest.fixture
def private_mount(tmp_path: Path) -> Iterator[tuple[int, Path]]:
    """A process in a mount namespace of its own where `mnt` is a tmpfs the host does not see."""
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    proc = subprocess.Popen(["unshare", "--mount", "--propagation", "private", "sleep", "60"],
                            stdin=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.monotonic() + 5
        while Path(f"/proc/{proc.pid}/comm").read_text().strip() != "sleep":  # unshare has exec'd into it
            assert time.monotonic() < deadline, "unshare did not start its process"
            time.sleep(0.01)
        subprocess.run(["nsenter", "-t", str(proc.pid), "-m", "mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs",
                        str(mnt)], check=True)
        yield proc.pid, mnt
    finally:
        proc.kill()
        proc.wait(5)
    assert str(mnt) not in Path("/proc/self/mountinfo").read_text()


@needs_root
def test_a_process_target_is_acted_on_in_its_mount_namespace(private_mount: tuple[int, Path], state: Path) -> None:
    pid, mnt = private_mount
    inside = Path(f"/proc/{pid}/root{mnt}")
    target = Target(kind="process", pid=pid)
    created = order("file-create", target, **{"file-name": f"{mnt}/made-inside"})
    print(inject(created))
    assert (inside / "made-inside").exists() and not (mnt / "made-inside").exists()
    (inside / "real").write_bytes(b"inside the namespace\n")
    (inside / "link").symlink_to(f"{mnt}/real")  # absolute: means the target's path, not the host's
    appended = order("file-append", target, **{"file-name": f"{mnt}/link", "data": "more\n", "count": 3})
    print(inject(appended))
    assert (inside / "real").read_bytes() == b"inside the namespace\n" + b"more\n" * 3
    recover(appended)
    recover(created)
    assert (inside / "real").read_bytes() == b"inside the namespace\n"
    assert sorted(p.name for p in inside.iterdir()) == ["link", "real"]
    assert list(mnt.iterdir()) == []


@needs_root
def test_recovery_after_the_target_process_is_gone_succeeds(private_mount: tuple[int, Path], state: Path) -> None:
    """Its mount namespace went with it: nothing can be restored, and recovery must not fail forever."""
    pid, mnt = private_mount
    o = order("file-create", Target(kind="process", pid=pid), **{"file-name": f"{mnt}/made-inside"})
    print(inject(o))
    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 5
    while os.path.exists(f"/proc/{pid}/root{mnt}/made-inside"):
        assert time.monotonic() < deadline, "the process did not die"
        time.sleep(0.01)
    recover(o)
    assert fp.state_files(files.FAMILY) == []

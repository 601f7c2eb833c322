"""PhysicalMachineChaos disk-* for real: a fill measured with statvfs on a tmpfs of the test's own (the
space is taken, exactly as asked, then freed), dd payload workers seen running and then gone with their
files, refusals naming the field, and an agent killed mid-fault cleaned up by a fresh process."""
from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from nodeagent.executors import disk, inject, recover, validate
from nodeagent.executors import files_paths as fp
from nodeagent.orders import FaultOrder, Refused
from tests.nodeagent.netns import fault_id, needs_root
from tests.nodeagent.test_files import inject_in_child_then_kill

pytestmark = needs_root
MiB = 2**20


def order(action: str, **fields: object) -> FaultOrder:
    return FaultOrder(fault_id(), "PhysicalMachineChaos", action, {action: fields})


def used(path: Path) -> int:
    vfs = os.statvfs(path)
    return (vfs.f_blocks - vfs.f_bfree) * vfs.f_frsize


def workers(o: FaultOrder) -> list[int]:
    return disk.marked(validate.short_id(o.fault_id))


def ours(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if p.name.startswith("chaosplane-"))


@pytest.fixture
def tmpfs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A 64 MiB tmpfs of the test's own: its statvfs moves only with what the fault does."""
    monkeypatch.setenv(fp.STATE_ENV, str(tmp_path / "state"))
    mnt = tmp_path / "fs"
    mnt.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64m", "tmpfs", str(mnt)], check=True)
    try:
        yield mnt
        assert ours(mnt) == [], "fault files left"
    finally:
        subprocess.run(["umount", str(mnt)], check=True)
    assert f" {mnt} " not in Path("/proc/self/mountinfo").read_text()


@pytest.fixture
def scratch(tmp_path: Path) -> Iterator[Path]:
    """A directory on the disk (ext4 here): dd with O_DSYNC is slow enough there to be seen running."""
    directory = tmp_path / "disk"
    directory.mkdir()
    yield directory
    assert ours(directory) == [], "fault files left"


def test_fill_by_fallocate_takes_the_space_then_frees_it(tmpfs: Path) -> None:
    before = used(tmpfs)
    o = order("disk-fill", size="20MiB", path=str(tmpfs))
    print(inject(o))
    taken = used(tmpfs) - before
    print(f"tmpfs used +{taken / MiB:.2f} MiB (asked 20 MiB)")
    assert 20 * MiB <= taken <= 20 * MiB + 64 * 1024
    assert [p.stat().st_size for p in tmpfs.iterdir()] == [20 * MiB]
    recover(o)
    assert used(tmpfs) == before
    recover(o)


def test_fill_by_dd_writes_exactly_the_size(tmpfs: Path) -> None:
    before = used(tmpfs)
    o = order("disk-fill", size="20MB", path=str(tmpfs), **{"fill-by-fallocate": False})
    print(inject(o))
    deadline = time.monotonic() + 10
    while disk.running(o.fault_id) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert [p.stat().st_size for p in tmpfs.iterdir()] == [20_000_000]
    assert 20_000_000 <= used(tmpfs) - before <= 20_000_000 + 64 * 1024
    recover(o)
    assert used(tmpfs) == before and not workers(o)


def test_fill_a_share_of_the_filesystem(tmpfs: Path) -> None:
    o = order("disk-fill", size="25%", path=str(tmpfs))
    print(inject(o))
    assert [p.stat().st_size for p in tmpfs.iterdir()] == [16 * MiB]
    recover(o)


def test_fill_refusals_name_the_field_and_take_nothing(tmpfs: Path, tmp_path: Path) -> None:
    before = used(tmpfs)
    a_file = tmpfs / "a-file"
    a_file.write_text("x")
    cases = [
        (dict(size="100MiB", path=str(tmpfs)), "size", "more than the"),  # the tmpfs has 64 MiB
        (dict(size="10MiB", path=str(tmpfs / "missing")), "path", "does not exist"),
        (dict(size="10MiB", path=str(a_file)), "path", "is not a directory"),
        (dict(size="10MiB", path="/proc/chaosplane-missing"), "path", "never touches"),
        (dict(size="10MiB", path="/dev/chaosplane-missing"), "path", "never touches"),
        (dict(size="ten", path=str(tmpfs)), "size", "is not a size"),
        (dict(size="10MiB", path="var/tmp"), "path", "not an absolute path"),
        (dict(size="10MiB", path=str(tmpfs), **{"fill-by-fallocate": "yes"}), "fill-by-fallocate", "true or false"),
    ]
    for fields, field, why in cases:
        o = order("disk-fill", **fields)
        try:
            with pytest.raises(Refused) as info:
                inject(o)
        finally:
            recover(o)
        print(info.value)
        assert str(info.value).startswith(f"{field}:") and why in str(info.value), info.value
    a_file.unlink()
    assert used(tmpfs) == before and ours(tmpfs) == []


def test_fill_refuses_a_filesystem_that_stores_nothing(tmp_path: Path) -> None:
    pseudo = tmp_path / "proc"
    pseudo.mkdir()
    subprocess.run(["mount", "-t", "proc", "proc", str(pseudo)], check=True)
    try:
        with pytest.raises(Refused, match=r"^path: .* is on a proc filesystem"):
            inject(order("disk-fill", size="10MiB", path=str(pseudo)))
    finally:
        subprocess.run(["umount", str(pseudo)], check=True)


def test_write_payload_workers_run_then_are_gone_with_their_files(scratch: Path) -> None:
    # 4 GiB with O_DSYNC takes far longer than the test: the workers are still writing when recovered.
    o = order("disk-write-payload", size="4GiB", path=str(scratch), **{"payload-process-num": 3})
    print(inject(o))
    try:
        running = workers(o)
        assert len(running) == 3, running
        assert ours(scratch) == [f"chaosplane-write-{validate.short_id(o.fault_id)}-{i}" for i in range(3)]
        first = sum(p.stat().st_size for p in scratch.iterdir())
        time.sleep(0.3)
        assert sum(p.stat().st_size for p in scratch.iterdir()) > first, "the workers are not writing"
        assert all(not disk._gone(pid) for pid in running), "the workers ended before recovery"
    finally:
        start = time.monotonic()
        recover(o)
    assert time.monotonic() - start < 2, "recovery waited for the workers to end by themselves"
    assert not workers(o) and all(disk._gone(pid) for pid in running)


def test_write_payload_until_done(tmpfs: Path) -> None:
    o = order("disk-write-payload", size="8MiB", path=str(tmpfs), **{"payload-process-num": 2})
    print(inject(o))
    deadline = time.monotonic() + 10
    while workers(o) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert not workers(o), "the workers did not finish by themselves"
    assert sum(p.stat().st_size for p in tmpfs.iterdir()) == 8 * MiB
    recover(o)


def test_read_payload_of_the_root_device(tmp_path: Path) -> None:
    """The default source is the root device; where this host forbids opening it (a device cgroup, as in
    this sandbox), the fault is refused naming path."""
    device = disk._root_device()
    try:
        os.close(os.open(device, os.O_RDONLY))
        readable = True
    except PermissionError:
        readable = False
    o = order("disk-read-payload", size="4GiB", **{"payload-process-num": 2})
    if not readable:
        with pytest.raises(Refused, match=rf"^path: the root device {device}: Operation not permitted"):
            inject(o)
        recover(o)
        return
    print(line := inject(o))
    try:
        assert f"the root device {device}" in line
        assert len(workers(o)) == 2
    finally:
        recover(o)
    assert not workers(o)


def test_read_payload_of_a_file_until_done(tmpfs: Path) -> None:
    source = tmpfs / "input"
    source.write_bytes(os.urandom(4 * MiB))
    o = order("disk-read-payload", size="4MiB", path=str(source), **{"payload-process-num": 4})
    print(inject(o))
    deadline = time.monotonic() + 10
    while workers(o) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert not workers(o)
    recover(o)
    source.unlink()
    for path, why in (("/dev/zero", "neither a regular file nor a block device"),
                      ("/proc/kcore", "kernel interface"), (str(tmpfs), "neither a regular file")):
        o = order("disk-read-payload", size="4MiB", path=path, **{"payload-process-num": 1})
        try:
            with pytest.raises(Refused, match=rf"^path: .*{why}"):
                inject(o)
        finally:
            recover(o)


def test_killed_agent_write_payload_cleaned_by_a_fresh_process(scratch: Path) -> None:
    o = order("disk-write-payload", size="4GiB", path=str(scratch), **{"payload-process-num": 2})
    print(inject_in_child_then_kill(o))
    try:
        assert len(workers(o)) == 2, "the workers should outlive the killed agent"
    finally:
        start = time.monotonic()
        recover(FaultOrder.from_json(o.to_json()))
    assert time.monotonic() - start < 2, "recovery waited for the workers to end by themselves"
    assert not workers(o)


def test_killed_agent_fill_cleaned_by_a_fresh_process(tmpfs: Path) -> None:
    before = used(tmpfs)
    o = order("disk-fill", size="30MiB", path=str(tmpfs))
    print(inject_in_child_then_kill(o))
    assert used(tmpfs) - before >= 30 * MiB
    recover(FaultOrder.from_json(o.to_json()))
    assert used(tmpfs) == before


def test_capability_is_found_by_trying() -> None:
    name, available, detail = disk.capability()
    print(detail)
    assert (name, available) == ("filesystem", True) and "dd at " in detail
    assert not [p for p in os.listdir("/var/tmp") if p.startswith(".chaosplane-probe-")]

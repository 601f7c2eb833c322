"""Process faults for real: kill and pause (SIGSTOP until recovery, then SIGCONT), by PID and by name."""
from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path

import pytest

from nodeagent.executors import inject, recover
from nodeagent.orders import FaultOrder, Refused
from tests.nodeagent.netns import Lab, fault_id, needs_root

pytestmark = needs_root

# Writes a growing counter to a file every 10 ms: progress that a paused process stops making. The
# write is atomic (a rename), so a process stopped mid-write never leaves an empty file behind.
COUNTER = (
    "import os, sys, time\nn = 0\nwhile True:\n    n += 1\n"
    "    open(sys.argv[1] + '.tmp', 'w').write(str(n))\n    os.replace(sys.argv[1] + '.tmp', sys.argv[1])\n"
    "    time.sleep(0.01)\n"
)


def _order(process: str | int, sig: int) -> FaultOrder:
    return FaultOrder(fault_id(), "PhysicalMachineChaos", "process", {"process": {"process": process, "signal": sig}})


def _progress(path: Path, timeout: float = 10.0) -> int:
    """The counter's value, waiting for its first write (a loaded machine starts Python slowly)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            return int(path.read_text())
        except (FileNotFoundError, ValueError):
            time.sleep(0.01)
    raise AssertionError(f"no progress written to {path} within {timeout} s")


def test_kill_by_pid(lab: Lab) -> None:
    child = lab.spawn(["sleep", "60"])
    print(inject(_order(child.pid, signal.SIGKILL)))
    assert child.wait(5) == -signal.SIGKILL


def test_kill_by_name_with_a_signal_of_choice(lab: Lab, tmp_path: Path) -> None:
    name = f"cpt{os.getpid() % 100000}kill"
    os.symlink("/bin/sleep", tmp_path / name)  # comm is the name the program was started by
    children = [lab.spawn([str(tmp_path / name), "60"]) for _ in range(2)]
    time.sleep(0.1)
    order = _order(name, signal.SIGTERM)
    print(inject(order))
    assert [c.wait(5) for c in children] == [-signal.SIGTERM, -signal.SIGTERM]
    recover(order)  # nothing to undo for a kill
    with pytest.raises(Refused, match="no processes named"):
        inject(_order(name, signal.SIGTERM))


def test_pause_stops_progress_until_recovery(lab: Lab, tmp_path: Path) -> None:
    progress = tmp_path / "n"
    child = lab.spawn([sys.executable, "-c", COUNTER, str(progress)])
    _progress(progress)  # running before it is paused
    order = _order(child.pid, signal.SIGSTOP)
    print(inject(order))
    time.sleep(0.05)
    stopped_at = _progress(progress)
    time.sleep(0.5)
    assert _progress(progress) == stopped_at, "a paused process made progress"
    recover(order)
    time.sleep(0.3)
    resumed = _progress(progress)
    print(f"progress: {stopped_at} while paused for 0.5 s, {resumed} 0.3 s after recovery")
    assert resumed > stopped_at + 5
    recover(order)  # idempotent


def test_pause_mode_by_name_is_recovered_after_an_agent_restart(lab: Lab, tmp_path: Path) -> None:
    name = f"cpt{os.getpid() % 100000}paus"
    os.symlink("/bin/sleep", tmp_path / name)
    child = lab.spawn([str(tmp_path / name), "60"])
    time.sleep(0.1)
    order = FaultOrder(fault_id(), "PhysicalMachineChaos", "process",
                       {"process": {"process": name, "signal": 9, "mode": "pause"}})
    inject(order)
    time.sleep(0.05)
    assert Path(f"/proc/{child.pid}/stat").read_text().split(") ")[1][0] == "T"
    from nodeagent.executors import process

    process._paused.clear()  # what a restarted agent knows: only the order
    recover(order)
    time.sleep(0.05)
    assert Path(f"/proc/{child.pid}/stat").read_text().split(") ")[1][0] == "S"
    assert child.poll() is None
    recover(FaultOrder(fault_id(), "PhysicalMachineChaos", "process", {"process": {"process": 99999, "signal": 19}}))

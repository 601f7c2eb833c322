"""KernelChaos and BlockChaos on this kernel, and what the agent writes where a kernel has them.

The CI kernel has neither fail_function nor the ioem scheduler: there the faults must be refused
naming what is missing (tested against the real /sys). Where fail_function exists, the fault is a
handful of writes to debugfs and /proc; those are checked against a stand-in tree laid out as the
kernel's (debugfs `fail_function/` and `/proc/PID/task/TID/make-it-fail`), because no kernel here can
show them. Verified this way, not on a kernel with CONFIG_FAIL_FUNCTION.
"""
from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from nodeagent import executors
from nodeagent.executors import kernel
from nodeagent.orders import FaultOrder, Refused, Target

from .netns import fault_id


@pytest.fixture
def sleeper() -> Iterator[subprocess.Popen[bytes]]:
    process = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    yield process
    process.kill()
    process.wait()


def order(pid: int, **request: object) -> FaultOrder:
    failure = {"failtype": 0, "probability": 50, "times": 3} | request
    return FaultOrder(fault_id(), "KernelChaos", "fail-kern-request", {"failKernRequest": failure},
                      Target(kind="process", pid=pid), 0)


def test_this_kernel_refuses_kernel_and_block_faults_naming_what_is_missing(sleeper: subprocess.Popen) -> None:
    if kernel.fail_function_dir()[0] is not None:
        pytest.skip("this kernel has fail_function")  # then the stand-in test below is the real thing's twin
    with pytest.raises(Refused, match="fail_function|debugfs"):
        executors.inject(order(sleeper.pid))
    executors.recover(order(sleeper.pid))  # idempotent: nothing was applied
    block = FaultOrder(fault_id(), "BlockChaos", "delay", {"volumeName": "data", "delay": {"latency": "10ms"}},
                       Target(), 0)
    with pytest.raises(Refused, match="chaos-driver|ioem"):
        executors.inject(block)
    executors.recover(block)
    found = dict((name, ok) for name, ok, _ in kernel.capabilities())
    assert found == {"fail-function": False, "device-mapper": False}


@pytest.fixture
def stand_in(tmp_path: Path, sleeper: subprocess.Popen, monkeypatch: pytest.MonkeyPatch) -> Path:
    """debugfs and /proc laid out as the kernel lays them out, for the sleeper's tasks."""
    root = tmp_path / "debug" / "fail_function"
    for function in kernel.FAIL_FUNCTIONS.values():
        (root / function).mkdir(parents=True)
        (root / function / "retval").write_text("0\n")
    for knob in ("inject", "probability", "times", "interval", "task-filter"):
        (root / knob).write_text("")
    procfs = tmp_path / "proc"
    for task in os.listdir(f"/proc/{sleeper.pid}/task"):
        (procfs / str(sleeper.pid) / "task" / task).mkdir(parents=True)
        (procfs / str(sleeper.pid) / "task" / task / "make-it-fail").write_text("0")
    monkeypatch.setenv("CHAOSPLANE_AGENT_DEBUGFS", str(tmp_path / "debug"))
    monkeypatch.setenv("CHAOSPLANE_AGENT_PROC", str(procfs))
    return tmp_path


def test_fail_function_is_armed_for_the_targets_tasks_and_disarmed(stand_in: Path, sleeper: subprocess.Popen):
    fault = order(sleeper.pid, failtype=2)
    detail = executors.inject(fault)
    root = stand_in / "debug" / "fail_function"
    assert "should_fail_bio" in detail
    assert (root / "inject").read_text() == "should_fail_bio"
    assert (root / "should_fail_bio" / "retval").read_text() == "1"
    assert ((root / "probability").read_text(), (root / "times").read_text()) == ("50", "3")
    assert (root / "task-filter").read_text() == "Y"
    marks = list((stand_in / "proc" / str(sleeper.pid) / "task").glob("*/make-it-fail"))
    assert marks and all(m.read_text() == "1" for m in marks)

    with pytest.raises(Refused, match="one at a time"):
        executors.inject(order(sleeper.pid))

    (root / "inject").write_text("should_fail_bio\n")  # as the kernel lists it
    executors.recover(fault)
    assert (root / "inject").read_text() == "!should_fail_bio"  # the kernel's syntax for removing one
    assert all(m.read_text() == "0" for m in marks)


@pytest.mark.parametrize(
    ("request_fields", "message"),
    [
        ({"callchain": [{"funcname": "ext4_mount"}]}, "callchain needs BPF"),
        ({"failtype": 7}, "failtype must be"),
        ({"probability": 101}, "probability"),
    ],
)
def test_bad_or_unsupported_requests_are_refused_and_change_nothing(
    stand_in: Path, sleeper: subprocess.Popen, request_fields: dict, message: str
) -> None:
    with pytest.raises(Refused, match=message):
        executors.inject(order(sleeper.pid, **request_fields))
    assert (stand_in / "debug" / "fail_function" / "inject").read_text() == ""


def test_a_host_target_is_refused(stand_in: Path) -> None:
    host = FaultOrder(fault_id(), "KernelChaos", "fail-kern-request", {"failKernRequest": {"failtype": 0}},
                      Target(), 0)
    with pytest.raises(Refused, match="process or container target"):
        executors.inject(host)

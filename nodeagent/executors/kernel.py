"""KernelChaos (fail-kern-request) and BlockChaos (delay): faults that need kernel features most hosts
lack, so they are gated on what this host has, and refused naming the missing feature otherwise.

KernelChaos, without a call chain, is done through the kernel's fault-injection framework:
`fail_function` in debugfs (CONFIG_FUNCTION_ERROR_INJECTION + CONFIG_FAIL_FUNCTION) makes
should_failslab (failtype 0), should_fail_alloc_page (1) or should_fail_bio (2) return an error,
`probability` percent of the time, at most `times` times, only for tasks marked with
/proc/PID/make-it-fail (task-filter), i.e. the target's processes. Recovery takes the function out
of `inject` and unmarks the tasks. The framework's knobs are host-wide, so one KernelChaos at a time
per host: a second is refused while the first holds. A call chain (Chaos Mesh's bpfki predicates,
compiled to BPF on kprobes) is refused: this agent does not compile C predicates.

BlockChaos delay needs Chaos Mesh's chaos-driver (the ioem I/O scheduler and /dev/chaos); a
device-mapper delay target cannot be slid under a mounted volume. It is refused with what is missing.

CHAOSPLANE_AGENT_DEBUGFS moves the debugfs root (default /sys/kernel/debug): the tests use it to
check what is written where, since the CI kernel has no fail_function.
"""
from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from nodeagent.orders import FaultOrder, Refused

from . import validate
from .namespaces import resolve

FAIL_FUNCTIONS = {0: "should_failslab", 1: "should_fail_alloc_page", 2: "should_fail_bio"}
ERRNO_ENOMEM = -12


def debugfs() -> Path:
    return Path(os.environ.get("CHAOSPLANE_AGENT_DEBUGFS") or "/sys/kernel/debug")


def proc() -> Path:
    return Path(os.environ.get("CHAOSPLANE_AGENT_PROC") or "/proc")


def fail_function_dir() -> tuple[Path | None, str]:
    root = debugfs()
    directory = root / "fail_function"
    if directory.is_dir() and (directory / "inject").exists():
        return directory, f"fail_function at {directory}"
    if not root.is_dir() or not any(root.iterdir()):
        return None, f"debugfs is not mounted at {root}"
    return None, "the kernel has no fail_function (CONFIG_FAIL_FUNCTION)"


def capabilities() -> list[tuple[str, bool, str]]:
    directory, detail = fail_function_dir()
    block_ok, block_detail = _ioem()
    return [("fail-function", directory is not None, detail), ("device-mapper", block_ok, block_detail)]


def _ioem() -> tuple[bool, str]:
    schedulers: set[str] = set()
    for path in Path("/sys/block").glob("*/queue/scheduler"):
        try:
            schedulers.update(path.read_text().replace("[", "").replace("]", "").split())
        except OSError:
            continue
    if "ioem" in schedulers or "ioem-mq" in schedulers:
        return False, "the ioem scheduler is loaded, but this agent does not drive chaos-driver's /dev/chaos"
    shown = ", ".join(sorted(schedulers)) or "none found"
    return False, f"needs Chaos Mesh's chaos-driver (the ioem I/O scheduler); this kernel has: {shown}"


def _request(order: FaultOrder) -> dict:
    request = (order.params or {}).get("failKernRequest")
    if not isinstance(request, dict):
        raise Refused("failKernRequest is required")
    return request


def _plan(order: FaultOrder) -> tuple[str, int, int, list[int]]:
    """(function, probability, times, pids), every value checked."""
    request = _request(order)
    if request.get("callchain"):
        raise Refused("failKernRequest.callchain needs BPF kprobe predicates (bpfki), which this agent does not "
                      "compile; leave the call chain out to fail every matching allocation of the target")
    failtype = request.get("failtype")
    if failtype not in FAIL_FUNCTIONS:
        raise Refused("failKernRequest.failtype must be 0 (slab), 1 (page) or 2 (bio)")
    probability = validate.integer(request.get("probability", 100), "failKernRequest.probability", 0, 100)
    times = validate.integer(request.get("times", 0), "failKernRequest.times", 0, 2**32 - 1)
    resolved = resolve(order.target)
    pid = getattr(resolved, "pid", None)
    if not pid:
        raise Refused("KernelChaos needs a process or container target: the kernel marks tasks, not hosts")
    return FAIL_FUNCTIONS[failtype], probability, times, _tasks(validate.pid(pid))


def _tasks(pid: int) -> list[int]:
    try:
        return sorted(int(t) for t in os.listdir(proc() / str(pid) / "task"))
    except OSError as error:
        raise Refused(f"process {pid} is gone: {error.strerror}") from None


def _write(path: Path, value: str) -> None:
    with open(path, "w") as f:
        f.write(value)


def inject_kernel(order: FaultOrder) -> str:
    validate.fault_id(order.fault_id)
    directory, detail = fail_function_dir()
    if directory is None:
        raise Refused(f"KernelChaos needs the kernel's fail_function: {detail}")
    function, probability, times, tasks = _plan(order)
    held = (directory / "inject").read_text().split()
    if held:
        raise Refused(f"another kernel fault holds fail_function ({', '.join(held)}); one at a time per host")
    _write(directory / "inject", function)
    try:
        _write(directory / function / "retval", str(ERRNO_ENOMEM if function != "should_fail_bio" else 1))
        _write(directory / "probability", str(probability))
        _write(directory / "times", str(times or -1))
        _write(directory / "interval", "1")
        _write(directory / "task-filter", "Y")
        for task in tasks:
            _write(proc() / str(tasks[0]) / "task" / str(task) / "make-it-fail", "1")
    except OSError:
        recover_kernel(order)
        raise
    return f"{function} fails {probability}% of the time for {len(tasks)} tasks of process {tasks[0]}"


def recover_kernel(order: FaultOrder) -> None:
    validate.fault_id(order.fault_id)
    directory, _ = fail_function_dir()
    if directory is None:
        return  # never injected here
    request = (order.params or {}).get("failKernRequest") or {}
    function = FAIL_FUNCTIONS.get(request.get("failtype"))
    if function and function in (directory / "inject").read_text().split():
        _write(directory / "inject", f"!{function}")
    resolved = None
    try:
        resolved = resolve(order.target)
    except Refused:
        pass  # the process is gone, and its marks with it
    pid = getattr(resolved, "pid", None)
    if pid:
        for task in _tasks_or_none(int(pid)):
            try:
                _write(proc() / str(pid) / "task" / str(task) / "make-it-fail", "0")
            except OSError:
                continue


def _tasks_or_none(pid: int) -> list[int]:
    try:
        return _tasks(pid)
    except Refused:
        return []


def inject_block(order: FaultOrder) -> str:
    validate.fault_id(order.fault_id)
    _, detail = _ioem()
    raise Refused(f"BlockChaos delay {detail}")


def recover_block(order: FaultOrder) -> None:
    validate.fault_id(order.fault_id)  # nothing was ever applied


EXECUTORS: dict[tuple[str, str], tuple[Callable[[FaultOrder], str], Callable[[FaultOrder], None]]] = {
    ("KernelChaos", "fail-kern-request"): (inject_kernel, recover_kernel),
    ("BlockChaos", "delay"): (inject_block, recover_block),
}

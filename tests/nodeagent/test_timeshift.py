"""Time faults for real: a running process's vDSO is patched through ptrace so that its clock_gettime,
gettimeofday and time read a shifted clock, and recovery puts the vDSO back and unmaps the page.

The targets are small Python programs that print their clocks when asked through a pipe. Every test
checks afterwards that no process holds a page of ours and that the targets' vDSOs are pristine again.
"""
from __future__ import annotations

import ctypes
import mmap
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from nodeagent import executors
from nodeagent.executors import timeshift
from nodeagent.executors import timeshift_code as code
from nodeagent.executors.timeshift_ptrace import Memory, in_tracer_thread
from nodeagent.orders import FaultOrder, Refused, Target
from tests.nodeagent.netns import fault_id as new_fault_id
from tests.nodeagent.test_targets import CID, docker  # noqa: F401 - the stand-in dockerd fixture

REPO = Path(__file__).resolve().parents[2]
needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="needs root to trace other processes (CI runs as root)")
HOUR = 3600.0

# Prints time.time(), CLOCK_MONOTONIC, gettimeofday(), time() and the SIGALRMs handled so far for every
# line it reads. Options: threads=N runs N threads reading the clocks in a tight loop (so threads are in
# the vDSO when the fault stops them), churn keeps starting and ending threads, alarm takes a SIGALRM
# every millisecond (signals arrive while its threads are stopped), child starts a `sleep` below it,
# mdwe forbids itself memory that is written and executed (as systemd's MemoryDenyWriteExecute). The
# line "hold ADDRESS SECONDS register|stack" starts a thread that waits SECONDS with ADDRESS there;
# "fork" forks a child that sleeps.
CLOCKS = r"""
import ctypes, os, signal, subprocess, sys, threading, time
libc = ctypes.CDLL(None)
libc.time.restype = ctypes.c_long
alarms = 0
def spin():
    while True:
        time.time(); time.monotonic(); libc.time(None)
def churn():
    while True:
        t = threading.Thread(target=time.time); t.start(); t.join()
def alarm(*_):
    global alarms
    alarms += 1
for opt in sys.argv[1:]:
    if opt.startswith("threads="):
        for _ in range(int(opt[8:])):
            threading.Thread(target=spin, daemon=True).start()
    elif opt == "churn":
        threading.Thread(target=churn, daemon=True).start()
    elif opt == "alarm":
        signal.signal(signal.SIGALRM, alarm)
        signal.setitimer(signal.ITIMER_REAL, 0.001, 0.001)
    elif opt == "child":  # PR_SET_PDEATHSIG: SIGKILL when we end
        subprocess.Popen(["sleep", "60"], preexec_fn=lambda: libc.prctl(1, 9))
    elif opt == "mdwe":  # PR_SET_MDWE, PR_MDWE_REFUSE_EXEC_GAIN: no mprotect to exec, no W+X
        assert libc.prctl(65, 1, 0, 0, 0) == 0 and libc.prctl(66, 0, 0, 0, 0) == 1  # set, and PR_GET_MDWE says so
def hold(address, seconds, where):
    # FUTEX_WAIT with a timeout; its unused uaddr2 (in r8) holds `address`, or an 8th argument to
    # syscall(), which the C calling convention passes on the stack (and syscall() ignores).
    word, timeout = ctypes.c_int(0), (ctypes.c_long * 2)(int(seconds), int(seconds % 1 * 1e9))
    if where == "register":
        libc.syscall(202, ctypes.byref(word), 0, 0, timeout, ctypes.c_void_p(address), 0)
    else:
        libc.syscall(202, ctypes.byref(word), 0, 0, timeout, None, 0, ctypes.c_void_p(address))
for line in sys.stdin:
    if line.startswith("hold "):
        _, address, seconds, where = line.split()
        threading.Thread(target=hold, args=(int(address, 16), float(seconds), where)).start()
    if line.startswith("fork") and os.fork() == 0:  # a child with a copy of our memory, vDSO included
        libc.prctl(1, 9)
        time.sleep(60)
        os._exit(0)
    tv = (ctypes.c_long * 2)()
    libc.gettimeofday(tv, None)
    print(time.time(), time.clock_gettime(time.CLOCK_MONOTONIC), tv[0] + tv[1] / 1e6, libc.time(None), alarms,
          flush=True)
"""


class Clocks:
    """A running target: `read()` returns its clocks minus ours (realtime, monotonic, gettimeofday, time)."""

    def __init__(self, argv0: str | None = None, options: tuple[str, ...] = ()) -> None:
        argv = [sys.executable, "-c", CLOCKS, *options]
        self.proc = subprocess.Popen(argv, executable=argv0, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        self.pid = self.proc.pid
        self.alarms = 0
        self.read()  # started and answering

    def read(self, command: str = "") -> tuple[float, float, float, float]:
        """Its clocks minus ours, after it did `command` (see CLOCKS)."""
        assert self.proc.stdin and self.proc.stdout
        before = time.time()
        self.proc.stdin.write(command + "\n")
        self.proc.stdin.flush()
        answer = self.proc.stdout.readline()
        assert answer, f"target {self.pid} ended (exit {self.proc.poll()})"
        real, mono, tod, secs, alarms = (float(x) for x in answer.split())
        self.alarms = int(alarms)
        now, mono_now = time.time(), time.monotonic()
        assert now - before < 1.0, "the target took over a second to answer"
        return real - now, mono - mono_now, tod - now, secs - now


def assert_near(got: float, want: float, slack: float = 0.5) -> None:
    assert abs(got - want) < slack, f"{got:.3f} is not {want:.3f} (+- {slack})"


def pristine(pid: int) -> bool:
    image, _ = timeshift.pristine()
    span = timeshift._vdso_range(pid)
    assert span is not None
    with Memory(pid) as mem:
        return mem.read(span[0], span[1] - span[0]) == image


def mapped(pid: int, low: int, high: int) -> list[str]:
    """Protections of the mappings of `pid` that overlap [low, high)."""
    out = []
    for line in Path(f"/proc/{pid}/maps").read_text().splitlines():
        first, second = (int(x, 16) for x in line.split()[0].split("-"))
        if first < high and second > low:
            out.append(line.split()[1])
    return out


def state_becomes(pid: int, state: str, within: float = 2.0, stays: bool = False) -> bool:
    """Whether the process's state (R, S, T, ...) is `state` within `within` s (or all along, with `stays`)."""
    deadline = time.monotonic() + within
    while True:
        now = Path(f"/proc/{pid}/stat").read_text().rsplit(") ", 1)[1][0]
        if stays and now != state:
            return False
        if not stays and now == state:
            return True
        if time.monotonic() > deadline:
            return stays
        time.sleep(0.005)


_issued: set[str] = set()  # short ids of the faults this test made (others may run these tests meanwhile)


def fault_id() -> str:
    issued = new_fault_id()
    _issued.add(timeshift.validate.short_id(issued))
    return issued


def pages_anywhere() -> list[tuple[int, str]]:
    """(pid, short id) of every page of the faults this test made, in any process."""
    return [(pid, head.short_id) for pid in timeshift._all_pids() for _, head in timeshift._our_pages(pid, None)
            if head.short_id in _issued]


@pytest.fixture
def targets() -> Iterator[list[Clocks]]:
    """Targets to start; afterwards: those still running have pristine vDSOs, and no process anywhere
    holds a page of ours (the test FAILS otherwise); then they are stopped."""
    started: list[Clocks] = []
    _issued.clear()
    yield started
    try:
        left = [t.pid for t in started if t.proc.poll() is None and not pristine(t.pid)]
        pages = pages_anywhere()
        assert not left, f"vDSO still patched in {left}"
        assert not pages, f"pages of time faults left: {pages}"
    finally:
        for target in started:
            target.proc.kill()
            target.proc.wait()


def start(targets: list[Clocks], **kw: object) -> Clocks:
    target = Clocks(**kw)  # type: ignore[arg-type]
    targets.append(target)
    return target


def time_order(pid: int, offset: str, clocks: list[str] | None = None) -> FaultOrder:
    params: dict[str, object] = {"timeOffset": offset}
    if clocks is not None:
        params["clockIds"] = clocks
    return FaultOrder(fault_id(), "TimeChaos", "time-offset", params, Target("process", pid=pid))


def clock_order(pid: object, offset: str, clocks: str | None = None) -> FaultOrder:
    params: dict[str, object] = {"pid": pid, "time-offset": offset}
    if clocks is not None:
        params["clock-ids-slice"] = clocks
    return FaultOrder(fault_id(), "PhysicalMachineChaos", "clock", {"clock": params})


def fresh_reading() -> float:
    """A NEW process's realtime minus ours."""
    out = subprocess.run([sys.executable, "-c", "import time; print(time.time())"], capture_output=True, text=True,
                         check=True)
    return float(out.stdout) - time.time()


# -- the machine code, run in this process ------------------------------------------------------------------
class Page:
    """The fake routines mapped executable here, callable through ctypes."""

    def __init__(self, mask: int, offset_ns: int) -> None:
        self.map = mmap.mmap(-1, code.PAGE, prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC)
        self.map.write(code.page("0123456789ab", mask, offset_ns, []))
        base = ctypes.addressof(ctypes.c_char.from_buffer(self.map))
        self.clock_gettime = ctypes.CFUNCTYPE(ctypes.c_long, ctypes.c_int, ctypes.c_void_p)(
            base + code.ROUTINES["clock_gettime"])
        self.gettimeofday = ctypes.CFUNCTYPE(ctypes.c_long, ctypes.c_void_p, ctypes.c_void_p)(
            base + code.ROUTINES["gettimeofday"])
        self.time = ctypes.CFUNCTYPE(ctypes.c_long, ctypes.c_void_p)(base + code.ROUTINES["time"])

    def ns(self, clock: int) -> int:
        ts = (ctypes.c_long * 2)()
        assert self.clock_gettime(clock, ts) == 0
        assert 0 <= ts[1] < 10**9
        return ts[0] * 10**9 + ts[1]


@pytest.mark.parametrize("offset_ns", [3600 * 10**9, -3600 * 10**9, 10**9 - 1, -(10**9 - 1), -1500 * 10**6,
                                       7 * 10**8, 1, -1, 3653 * 86400 * 10**9])
def test_the_routines_add_the_offset_to_the_chosen_clocks(offset_ns: int) -> None:
    page = Page(mask=1 << 0, offset_ns=offset_ns)  # CLOCK_REALTIME only
    before = time.time_ns()
    got = page.ns(time.CLOCK_REALTIME)
    after = time.time_ns()
    assert before + offset_ns <= got <= after + offset_ns
    mono = time.monotonic_ns()
    assert 0 <= page.ns(time.CLOCK_MONOTONIC) - mono < 10**8, "a clock outside the mask was shifted"

    tv = (ctypes.c_long * 2)()
    before_us = time.time_ns() // 1000
    assert page.gettimeofday(tv, None) == 0
    after_us = time.time_ns() // 1000
    assert 0 <= tv[1] < 10**6
    assert before_us + offset_ns // 1000 - 1 <= tv[0] * 10**6 + tv[1] <= after_us + offset_ns // 1000 + 1

    stored = ctypes.c_long()
    before_s = (time.time_ns() + offset_ns) // 10**9
    secs = page.time(ctypes.byref(stored))
    assert before_s <= secs <= (time.time_ns() + offset_ns) // 10**9
    assert stored.value == secs
    assert page.time(None) >= secs


def test_the_routines_pass_errors_through_and_leave_other_clocks() -> None:
    page = Page(mask=(1 << 1) | (1 << 7), offset_ns=-5 * 10**9)  # MONOTONIC and BOOTTIME
    assert page.clock_gettime(99, (ctypes.c_long * 2)()) == -22  # -EINVAL, as the vDSO returns it
    assert page.clock_gettime(0, None) == -14  # -EFAULT
    assert abs(page.ns(time.CLOCK_REALTIME) - time.time_ns()) < 10**8
    assert_near((page.ns(time.CLOCK_MONOTONIC) - time.monotonic_ns()) / 1e9, -5, 0.1)
    assert_near((page.ns(time.CLOCK_BOOTTIME) - time.clock_gettime_ns(time.CLOCK_BOOTTIME)) / 1e9, -5, 0.1)
    thread_cpu = (~0 << 3) | 6  # a negative id: a CPU clock, here the calling thread's (tid 0, CPUCLOCK_SCHED)
    assert abs(page.ns(thread_cpu) - time.thread_time_ns()) < 10**8
    tz = (ctypes.c_int * 2)()
    assert page.gettimeofday(None, tz) == 0  # only the time zone


# -- real processes ---------------------------------------------------------------------------------------
@needs_root
def test_capability_is_detected_by_trying() -> None:
    name, available, detail = timeshift.capability()
    print(detail)
    assert (name, available) == ("ptrace-vdso", True)
    assert ("TimeChaos", "time-offset") in executors.REGISTRY
    assert ("PhysicalMachineChaos", "clock") in executors.REGISTRY


@needs_root
@pytest.mark.parametrize("offset,hours", [("1h0m0s", 1.0), ("-1h0m0s", -1.0), ("-26h30m0s", -26.5)])
def test_realtime_of_a_running_process_is_shifted_until_recovery(targets: list[Clocks], offset: str,
                                                                 hours: float) -> None:
    target = start(targets)
    neighbour = start(targets)
    order = time_order(target.pid, offset)
    print(executors.inject(order))
    real, mono, tod, secs = target.read()
    assert_near(real, hours * HOUR)
    assert_near(tod, hours * HOUR)
    assert_near(secs, hours * HOUR, 1.5)  # time() has whole seconds
    assert_near(mono, 0.0), "CLOCK_MONOTONIC was not asked for"
    assert_near(fresh_reading(), 0.0), "a new process was affected"
    assert_near(neighbour.read()[0], 0.0), "another running process was affected"
    assert not pristine(target.pid) and pristine(neighbour.pid)
    [(page, head)] = timeshift._our_pages(target.pid, None)
    assert head.short_id == timeshift.validate.short_id(order.fault_id)
    assert mapped(target.pid, page - code.PAGE, page + 2 * code.PAGE) == ["---p", "r-xp", "---p"]

    executors.recover(order)
    assert [round(x) for x in target.read()[:3]] == [0, 0, 0]
    assert target.proc.poll() is None and pristine(target.pid)
    assert mapped(target.pid, page - code.PAGE, page + 2 * code.PAGE) == [], "the page or its guards are left"
    executors.recover(order)  # idempotent
    assert_near(target.read()[0], 0.0)


@needs_root
def test_a_child_forked_during_the_fault_inherits_it_and_is_recovered_too(targets: list[Clocks]) -> None:
    target = start(targets)
    order = time_order(target.pid, "-2h")
    executors.inject(order)
    target.read("fork")
    deadline = time.monotonic() + 5
    while not (children := timeshift._descendants(target.pid)[1:]) and time.monotonic() < deadline:
        time.sleep(0.01)
    [child] = children
    assert [head.short_id for _, head in timeshift._our_pages(child, None)] == [
        timeshift.validate.short_id(order.fault_id)]
    executors.recover(order)
    assert pristine(child) and timeshift._our_pages(child, None) == []
    assert pristine(target.pid)
    os.kill(child, signal.SIGKILL)


@needs_root
def test_a_process_that_denies_itself_write_and_execute(targets: list[Clocks]) -> None:
    target = start(targets, options=("mdwe",))
    order = time_order(target.pid, "45m")
    executors.inject(order)
    assert_near(target.read()[0], 2700.0)
    executors.recover(order)
    assert_near(target.read()[0], 0.0)


@needs_root
def test_monotonic_only_through_the_host_action(targets: list[Clocks]) -> None:
    target = start(targets)
    order = clock_order(target.pid, "-10m0s", "CLOCK_MONOTONIC")
    print(executors.inject(order))
    real, mono, tod, _ = target.read()
    assert_near(mono, -600.0)
    assert_near(real, 0.0)
    assert_near(tod, 0.0)
    executors.recover(order)
    assert_near(target.read()[1], 0.0)


@needs_root
def test_realtime_and_monotonic_together_with_a_subsecond_offset(targets: list[Clocks]) -> None:
    target = start(targets)
    order = clock_order(str(target.pid), "1m30.25s", "CLOCK_REALTIME,CLOCK_MONOTONIC")
    executors.inject(order)
    real, mono, tod, _ = target.read()
    assert_near(real, 90.25, 0.2)
    assert_near(mono, 90.25, 0.2)
    assert_near(tod, 90.25, 0.2)
    executors.recover(order)
    assert_near(target.read()[0], 0.0, 0.2)


@needs_root
def test_threads_busy_in_the_vdso_new_threads_and_signals_survive_repeated_injection(targets: list[Clocks]) -> None:
    target = start(targets, options=("threads=3", "churn", "alarm"))
    assert len(os.listdir(f"/proc/{target.pid}/task")) >= 4
    alarms = target.alarms
    for i in range(8):
        order = time_order(target.pid, f"{i + 1}h", ["CLOCK_REALTIME", "CLOCK_MONOTONIC"])
        executors.inject(order)
        real, mono, _, _ = target.read()
        assert_near(real, (i + 1) * HOUR)
        assert_near(mono, (i + 1) * HOUR)
        executors.recover(order)
        assert_near(target.read()[0], 0.0)
    time.sleep(0.05)
    target.read()
    assert target.proc.poll() is None
    assert target.alarms > alarms + 20, "SIGALRMs stopped arriving"


@needs_root
@pytest.mark.parametrize("where", ["register", "stack"])
def test_a_page_a_thread_still_points_into_stays_until_a_later_recover(targets: list[Clocks], where: str) -> None:
    target = start(targets)
    order = time_order(target.pid, "1h")
    executors.inject(order)
    [(page, _)] = timeshift._our_pages(target.pid, None)
    target.read(f"hold {page + 0x123:x} 1.0 {where}")  # as a signal frame of an interrupted routine would
    time.sleep(0.05)
    started = time.monotonic()
    executors.recover(order)
    assert time.monotonic() - started < 0.8, "recover waited for the thread"
    assert_near(target.read()[0], 0.0)  # the clock is restored at once
    assert pristine(target.pid)
    assert [low for low, _ in timeshift._our_pages(target.pid, None)] == [page], "unmapped under a thread"
    time.sleep(1.1)  # the thread is done with it
    executors.recover(order)
    assert timeshift._our_pages(target.pid, None) == []
    assert mapped(target.pid, page - code.PAGE, page + 2 * code.PAGE) == []
    assert_near(target.read()[0], 0.0)


@needs_root
def test_a_container_means_its_main_process_and_those_below_it(targets: list[Clocks],
                                                               docker: dict[str, int]) -> None:  # noqa: F811
    main = start(targets, options=("child",))
    deadline = time.monotonic() + 5
    while not (children := timeshift._descendants(main.pid)[1:]) and time.monotonic() < deadline:
        time.sleep(0.01)
    [child] = children
    docker[CID] = main.pid
    order = FaultOrder(fault_id(), "TimeChaos", "time-offset", {"timeOffset": "-30m", "containerNames": ["web"]},
                       Target("container", container_id=CID, runtime="docker"))
    print(executors.inject(order))
    assert_near(main.read()[0], -1800.0)
    assert [head.short_id for _, head in timeshift._our_pages(child, None)] == [
        timeshift.validate.short_id(order.fault_id)]
    executors.recover(order)
    assert_near(main.read()[0], 0.0)
    assert pristine(child)


@needs_root
def test_every_process_of_a_name_and_a_stopped_one(targets: list[Clocks], tmp_path: Path) -> None:
    name = f"cpt{os.getpid() % 100000}clk"
    link = tmp_path / name
    os.symlink(sys.executable, link)
    first, second = start(targets, argv0=str(link)), start(targets, argv0=str(link))
    os.kill(second.pid, signal.SIGSTOP)  # paused by another fault: shifted all the same, and stays paused
    assert state_becomes(second.pid, "T")
    order = FaultOrder(fault_id(), "TimeChaos", "time-offset", {"timeOffset": "2h"}, Target("process", name=name))
    print(executors.inject(order))
    assert state_becomes(second.pid, "T") and state_becomes(second.pid, "T", 0.2, stays=True)
    os.kill(second.pid, signal.SIGCONT)
    assert_near(first.read()[0], 2 * HOUR)
    assert_near(second.read()[0], 2 * HOUR)
    executors.recover(order)
    assert_near(first.read()[0], 0.0)
    assert_near(second.read()[0], 0.0)


@needs_root
def test_a_second_fault_on_the_same_process_is_refused(targets: list[Clocks]) -> None:
    target = start(targets)
    first = time_order(target.pid, "1h")
    executors.inject(first)
    assert "already shifted" in executors.inject(first)
    second = time_order(target.pid, "-1h")
    with pytest.raises(Refused, match="already has another time fault"):
        executors.inject(second)
    executors.recover(second)  # nothing of the second: the first stays
    assert_near(target.read()[0], HOUR)
    executors.recover(first)
    assert_near(target.read()[0], 0.0)


@needs_root
def test_a_process_traced_by_another_debugger_is_refused(targets: list[Clocks]) -> None:
    target = start(targets)
    tracer = subprocess.Popen(  # PTRACE_SEIZE (0x4206), then hold on
        [sys.executable, "-c", "import ctypes, sys, time\nlibc = ctypes.CDLL(None)\n"
         "print(libc.ptrace(0x4206, int(sys.argv[1]), None, None), flush=True)\ntime.sleep(60)\n", str(target.pid)],
        stdout=subprocess.PIPE, text=True)
    try:
        assert tracer.stdout is not None and tracer.stdout.readline().strip() == "0"
        with pytest.raises(Refused, match=f"already traced by process {tracer.pid}"):
            executors.inject(time_order(target.pid, "1h"))
        assert_near(target.read()[0], 0.0)
    finally:
        tracer.kill()
        tracer.wait()
    assert pristine(target.pid)


@needs_root
def test_a_process_that_exits_during_the_fault(targets: list[Clocks]) -> None:
    target = start(targets)
    order = time_order(target.pid, "-5m")
    executors.inject(order)
    target.proc.kill()
    target.proc.wait()
    executors.recover(order)  # nothing to restore: fine
    executors.recover(order)


@needs_root
def test_agent_killed_mid_fault_is_recovered_by_a_fresh_process(targets: list[Clocks]) -> None:
    target = start(targets)
    order = time_order(target.pid, "3h", ["CLOCK_REALTIME", "CLOCK_MONOTONIC"])
    agent = subprocess.Popen(
        [sys.executable, "-c", "import sys, time\nfrom nodeagent.executors import inject\n"
         "from nodeagent.orders import FaultOrder\nprint(inject(FaultOrder.from_json(sys.argv[1])), flush=True)\n"
         "time.sleep(60)\n", order.to_json()],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert agent.stdout is not None and agent.stderr is not None
        line = agent.stdout.readline()
        assert "patched" in line, agent.stderr.read()
    finally:
        agent.kill()
        agent.wait()
    real, mono, _, _ = target.read()
    assert_near(real, 3 * HOUR)
    assert_near(mono, 3 * HOUR)
    executors.recover(FaultOrder.from_json(order.to_json()))  # what the restarted agent has: the journaled order
    assert [round(x) for x in target.read()[:3]] == [0, 0, 0]
    assert pristine(target.pid)


# Drives one injected system call (getpid) in the target to a stage, then waits to be killed: "regs"
# (registers set, not resumed), "entry" and "exit" (its syscall-stops), "event" (back in an interrupt
# stop, registers not yet put back).
HALFWAY = r"""
import sys, time
from nodeagent.executors import timeshift, timeshift_code as code
from nodeagent.executors.timeshift_ptrace import PTRACE_CONT, PTRACE_INTERRUPT, PTRACE_SYSCALL, Memory, Session, ptrace
pid, stage = int(sys.argv[1]), sys.argv[2]
span = timeshift._vdso_range(pid)
scratch = span[0] + timeshift._scratch()
session, mem = Session(pid), Memory(pid)
session.stop_all()
tid = session._pick_thread()
saved = session.regs(tid)
mem.write(scratch, code.trampoline(saved.as_dict()))
regs = saved.copy()
regs.rax, regs.orig_rax, regs.rip = 39, 2**64 - 1, scratch
session.set_regs(tid, regs)
deadline = time.monotonic() + 5
if stage in ("entry", "exit", "event"):
    session._resume_until(tid, PTRACE_SYSCALL, deadline)
if stage in ("exit", "event"):
    session._resume_until(tid, PTRACE_SYSCALL, deadline)
if stage == "event":
    ptrace(PTRACE_INTERRUPT, tid)
    session._resume_until(tid, PTRACE_CONT, deadline, want_event=True)
print(tid, saved.rax - 2**64 if saved.rax >= 2**63 else saved.rax, flush=True)
time.sleep(60)
"""


@needs_root
@pytest.mark.parametrize("stage", ["regs", "entry", "exit", "event"])
def test_an_agent_killed_in_the_middle_of_a_system_call_leaves_the_target_well(targets: list[Clocks],
                                                                              stage: str) -> None:
    target = start(targets, options=("threads=1",))
    agent = subprocess.Popen([sys.executable, "-c", HALFWAY, str(target.pid), stage], cwd=REPO,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert agent.stdout is not None and agent.stderr is not None
        line = agent.stdout.readline()
        assert line, agent.stderr.read()
        tid, rax = (int(x) for x in line.split())
    finally:
        agent.kill()
        agent.wait()
    # the main thread was blocked in read(): the way home restarts it, as the kernel would have
    assert (tid, rax) == (target.pid, -512), "expected the main thread, stopped in read() (-ERESTARTSYS)"
    assert_near(target.read()[0], 0.0)
    assert target.proc.poll() is None
    # its trampoline may stay in the vDSO's spare room: any time fault's recovery clears it (again, if
    # another agent's recovery, such as a concurrent run of these tests, held the process just then)
    for _ in range(20):
        executors.recover(time_order(target.pid, "1h"))
        if pristine(target.pid):
            break
        time.sleep(0.05)
    assert pristine(target.pid)
    assert_near(target.read()[0], 0.0)


@needs_root
def test_a_page_mapped_before_the_agent_died_is_removed(targets: list[Clocks]) -> None:
    """Killed between mmap and the patch: the page holds our header but nothing jumps to it."""
    target = start(targets)
    order = time_order(target.pid, "1h")
    span = timeshift._vdso_range(target.pid)
    assert span is not None

    def half() -> int:
        session = timeshift._stopped(target.pid, [span])
        try:
            with Memory(target.pid) as mem:
                page = timeshift.map_page(session, mem, span[0] + timeshift._scratch())
                mem.write(page, code.page(timeshift.validate.short_id(order.fault_id), 1, 10**9, []))
            return page  # and the trampoline left in the vDSO's spare room, as a killed agent leaves it
        finally:
            session.release()

    page = in_tracer_thread(half)
    assert [low for low, _ in timeshift._our_pages(target.pid, None)] == [page]
    assert not pristine(target.pid)  # the trampoline
    assert_near(target.read()[0], 0.0)
    executors.recover(order)
    assert timeshift._our_pages(target.pid, None) == []
    assert pristine(target.pid)
    assert_near(target.read()[0], 0.0)


@needs_root
@pytest.mark.parametrize("params,message", [
    ({"timeOffset": "87700h"}, "timeOffset: '87700h' is more than ten years"),
    ({"timeOffset": "-87700h"}, "timeOffset: '-87700h' is more than ten years"),
    ({"timeOffset": "0s"}, "timeOffset: must not be zero"),
    ({"timeOffset": "1 hour"}, "timeOffset: '1 hour' is not a duration"),
    ({"timeOffset": 3600}, "timeOffset: 3600 is not text"),
    ({}, "timeOffset: None is not text"),
    ({"timeOffset": "1h", "clockIds": ["CLOCK_TAI"]}, "clockIds: 'CLOCK_TAI' is not a clock id"),
    ({"timeOffset": "1h", "clockIds": []}, "clockIds: must be a list of 1 to 10"),
    ({"timeOffset": "1h", "clockIds": [{"id": 0}]}, "clockIds: {'id': 0} is not a clock id"),
    ({"timeOffset": "--1h"}, "timeOffset: '--1h' is not a duration"),
    ({"timeOffset": "1h", "clockIds": "CLOCK_REALTIME"}, None),  # a list is expected, but a single name is fine
])
def test_bad_time_chaos_input_is_refused_with_the_field(targets: list[Clocks], params: dict[str, object],
                                                        message: str | None) -> None:
    target = start(targets)
    order = FaultOrder(fault_id(), "TimeChaos", "time-offset", params, Target("process", pid=target.pid))
    if message is None:
        executors.inject(order)
        executors.recover(order)
        return
    with pytest.raises(Refused, match=message.replace("(", r"\(")):
        executors.inject(order)
    assert pristine(target.pid)


@needs_root
def test_bad_targets_are_refused(targets: list[Clocks]) -> None:
    target = start(targets)
    cases = [
        (clock_order(1, "1h"), "pid: 1 is not a process id"),
        (clock_order(os.getpid(), "1h"), f"pid: {os.getpid()} is this agent"),
        (clock_order(4194000, "1h"), "pid: there is no process 4194000"),
        (clock_order("12; rm", "1h"), "pid: '12; rm' is not a process id"),
        (clock_order(target.pid, "1h", "CLOCK_REALTIME,CLOCK_NOPE"), "clock-ids-slice: 'CLOCK_NOPE' is not a clock"),
        (clock_order(target.pid, "-99999h"), "time-offset: '-99999h' is more than ten years"),
        (FaultOrder(fault_id(), "PhysicalMachineChaos", "clock", {"clock": {"time-offset": "1h"}}), "pid: is required"),
        (FaultOrder(fault_id(), "TimeChaos", "time-offset", {"timeOffset": "1h"}), "needs a process or container"),
        (FaultOrder(fault_id(), "TimeChaos", "time-offset", {"timeOffset": "1h"}, Target("process", name="no-such-x")),
         "no process named no-such-x"),
        (FaultOrder(fault_id(), "TimeChaos", "time-offset", {"timeOffset": "1h"}, Target("process", pid=1)),
         "target pid: 1 is not a process id"),
    ]
    kthread = next((int(p) for p in os.listdir("/proc") if p.isdigit() and int(p) > 2
                    and Path(f"/proc/{p}/maps").exists() and not Path(f"/proc/{p}/maps").read_text()
                    and Path(f"/proc/{p}/stat").read_text().split()[3] == "2"), None)
    if kthread is not None:  # a kernel thread (child of kthreadd) has no memory, so no vDSO
        cases.append((clock_order(kthread, "1h"), f"process {kthread} has no vDSO"))
    for order, message in cases:
        with pytest.raises(Refused, match=message.replace("(", r"\(")):
            executors.inject(order)
        executors.recover(order)  # never injected: fine
    assert pristine(target.pid)

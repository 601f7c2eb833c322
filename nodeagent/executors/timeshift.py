"""TimeChaos `time-offset` and PhysicalMachineChaos `clock`: shift the clocks an already running process
reads, as Chaos Mesh does, by patching the process's vDSO; processes started later are not affected.

Injecting, with every thread of the process stopped (PTRACE_SEIZE + PTRACE_INTERRUPT on each task):
1. one thread runs mmap for us, twice (from a trampoline in the vDSO's spare room; see
   timeshift_ptrace): a 4 KiB r-x page between two PROT_NONE guard pages, which keep the kernel from
   merging it with a neighbouring mapping (so it is always a mapping of its own, found by its size);
2. the page gets a header naming the fault and keeping the original bytes, and the fake routines
   (timeshift_code): each asks the kernel for the real time with the `syscall` instruction and adds
   the offset when the clock id is one of the fault's;
3. the first 12 bytes of __vdso_clock_gettime (and of __vdso_gettimeofday and __vdso_time when
   CLOCK_REALTIME is shifted) become `movabs rax, routine; jmp rax`. The vDSO page is copied on write,
   so only this process (and children it forks later) sees the change.
Patching waits until no thread executes in the vDSO and none is in a signal handler that would
return into the 12 bytes (a thread in the way is let run on alone for a moment, see _stopped).

Recovering, likewise: the original bytes go back from the page's header; then one thread runs munmap
on the page and its guards once no thread executes in the page or holds an address in it (a register,
or its stack above the stack pointer: a signal handler that interrupted a routine returns into it).
A page still held after ~0.2 s of trying stays mapped (harmless and unreachable: nothing jumps to it
any more) and is logged; a later recover of the same fault unmaps it.

Recovery needs nothing but the order: it looks in every process for a page with this fault's short id
(the header says which functions were patched and what they held), so it works after an agent restart,
after the target's name changed or its container went, for children the target forked meanwhile,
and does nothing when the process died. Nothing is kept on the agent's side (no state file).
An agent killed at any instant leaves the target running correctly (timeshift_ptrace): at worst a
trampoline in the vDSO's unused padding (cleared by the next recover of any time fault) or, killed
between mmap and writing the header, an unnamed 12 KiB mapping nothing refers to.

x86_64 only (refused elsewhere, by architecture). Not covered: programs that read the time without
the vDSO (raw clock_gettime syscalls, the legacy vsyscall page of very old static binaries, rdtsc)
and 32-bit processes (refused). TimeChaos's containerNames is the control plane's business (it picks
the container); a container target here means its main process and every process below it.
"""
from __future__ import annotations

import errno
import logging
import os
import platform
import shutil
import subprocess
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from nodeagent.orders import FaultOrder, Refused

from . import timeshift_code as code
from . import validate
from .timeshift_ptrace import Busy, Gone, Memory, Session, in_tracer_thread

log = logging.getLogger(__name__)
CAPABILITY = "ptrace-vdso"
CLOCK_IDS = {
    "CLOCK_REALTIME": 0, "CLOCK_MONOTONIC": 1, "CLOCK_PROCESS_CPUTIME_ID": 2, "CLOCK_THREAD_CPUTIME_ID": 3,
    "CLOCK_MONOTONIC_RAW": 4, "CLOCK_REALTIME_COARSE": 5, "CLOCK_MONOTONIC_COARSE": 6, "CLOCK_BOOTTIME": 7,
    "CLOCK_REALTIME_ALARM": 8, "CLOCK_BOOTTIME_ALARM": 9,
}
MAX_OFFSET_NS = 3653 * 86400 * 10**9  # ten years
PROT_NONE, PROT_READ, PROT_EXEC, MAP_PRIVATE, MAP_FIXED, MAP_ANONYMOUS = 0, 1, 4, 0x02, 0x10, 0x20
STACK_SCAN = 1 << 20  # bytes above a thread's stack pointer searched for addresses in the page
NUDGES = 200  # times a thread in the way is let run on a little (~0.2 s in all)
_lock = threading.Lock()  # one time fault at a time: two tracers on one process would collide


@dataclass(frozen=True)
class Plan:
    offset_ns: int
    clocks: tuple[str, ...]
    mask: int
    pids: tuple[int, ...]
    what: str

    @property
    def routines(self) -> list[str]:
        """clock_gettime always; gettimeofday and time read CLOCK_REALTIME, so with it only."""
        return ["clock_gettime"] + (["gettimeofday", "time"] if self.mask & 1 else [])


# -- what the order asks ---------------------------------------------------------------------------------
def _params(order: FaultOrder) -> dict[str, Any]:
    """PhysicalMachineChaos nests the action's fields under its name; TimeChaos does not."""
    p = order.params
    if not isinstance(p, dict):
        raise Refused("params must be an object")
    if order.kind == "PhysicalMachineChaos":
        inner = p.get(order.action)
        return inner if isinstance(inner, dict) else p
    return p


def offset_ns(value: Any, what: str) -> int:
    """A signed Go duration ("-1h0m0s", "90s", "+2m"), not zero, at most ten years either way."""
    raw = validate.text(value, what, 32).strip()
    sign = -1 if raw.startswith("-") else 1
    body = raw[1:] if raw[:1] in "+-" else raw
    if not body:
        raise Refused(f"{what}: {raw!r} is not a duration (e.g. -10m or 1h30m)")
    try:
        total = sign * validate.duration_ns(body, what, maximum_s=10**12)
    except Refused:
        raise Refused(f"{what}: {raw!r} is not a duration (e.g. -10m or 1h30m)") from None
    if total == 0:
        raise Refused(f"{what}: must not be zero (nothing to shift)")
    if abs(total) > MAX_OFFSET_NS:
        raise Refused(f"{what}: {raw!r} is more than ten years")
    return total


def clocks(value: Any, what: str) -> tuple[str, ...]:
    """Clock names: a list (TimeChaos clockIds) or comma-separated text (the host action's clock-ids-slice)."""
    items = validate.comma_list(value, what) if isinstance(value, str) else value
    if not isinstance(items, list) or not 1 <= len(items) <= len(CLOCK_IDS):
        raise Refused(f"{what}: must be a list of 1 to {len(CLOCK_IDS)} clock ids")
    for item in items:
        if not isinstance(item, str) or item not in CLOCK_IDS:
            shown = repr(item) if len(repr(item)) <= 60 else repr(item)[:57] + "..."
            raise Refused(f"{what}: {shown} is not a clock id (one of {', '.join(CLOCK_IDS)})")
    return tuple(dict.fromkeys(items))


def _pid(value: Any, what: str = "pid") -> int:
    """A process to shift: an existing one, not pid 1 and not this agent."""
    try:
        pid = validate.pid(value)
    except Refused as refused:
        raise Refused(f"{what}: {str(refused).removeprefix('pid: ')}") from None
    if pid == os.getpid():
        raise Refused(f"{what}: {pid} is this agent, whose clock is not shifted")
    if not os.path.exists(f"/proc/{pid}"):
        raise Refused(f"{what}: there is no process {pid}")
    return pid


def _descendants(root: int) -> list[int]:
    """`root` and every process below it (Chaos Mesh shifts a container's main process and its children)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                data = f.read()
            children.setdefault(int(data[data.rindex(")") + 2:].split()[1]), []).append(int(entry))
        except (OSError, ValueError, IndexError):
            continue
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo.extend(children.get(pid, []))
    return sorted(p for p in out if p not in (1, os.getpid()))


def _targets(order: FaultOrder, p: dict[str, Any]) -> tuple[list[int], str]:
    if order.kind == "PhysicalMachineChaos":
        if "pid" not in p and order.target.kind == "process" and order.target.pid is not None:
            return [_pid(order.target.pid)], f"process {order.target.pid}"
        if "pid" not in p:
            raise Refused("pid: is required (the process whose clock to shift)")
        pid = _pid(p["pid"])
        return [pid], f"process {pid}"
    target = order.target
    if target.kind == "process" and target.pid is not None:
        pid = _pid(target.pid, "target pid")
        return [pid], f"process {pid}"
    if target.kind == "process" and target.name is not None:
        from .process import pids_by_name

        name = validate.process_name(target.name)
        pids = [pid for pid in pids_by_name(name) if pid != 1]
        if not pids:
            raise Refused(f"no process named {name}")
        return pids, f"processes named {name}"
    if target.kind == "container":
        from .namespaces import resolve

        main = resolve(target).pid
        if main is None:
            raise Refused("the container's main process could not be found")
        pids = _descendants(main)
        if not pids:
            raise Refused(f"container {str(target.container_id)[:12]}: its main process is pid 1 of the host")
        return pids, f"container {str(target.container_id)[:12]} (pid {main} and {len(pids) - 1} processes below it)"
    raise Refused(f"{order.kind} needs a process or container target, not {target.kind!r}")


def plan(order: FaultOrder) -> Plan:
    """Everything checked, before anything is touched."""
    p = _params(order)
    if order.kind == "PhysicalMachineChaos":
        offset = offset_ns(p.get("time-offset"), "time-offset")
        chosen = clocks(p.get("clock-ids-slice", "CLOCK_REALTIME"), "clock-ids-slice")
    else:
        offset = offset_ns(p.get("timeOffset"), "timeOffset")
        chosen = clocks(p.get("clockIds", ["CLOCK_REALTIME"]), "clockIds")
    pids, what = _targets(order, p)
    mask = 0
    for name in chosen:
        mask |= 1 << CLOCK_IDS[name]
    return Plan(offset, chosen, mask, tuple(pids), what)


# -- the vDSO ---------------------------------------------------------------------------------------------
_pristine_cache: tuple[bytes, dict[str, tuple[int, int]], int] | None = None


def _vdso_range(pid: int | str) -> tuple[int, int] | None:
    try:
        with open(f"/proc/{pid}/maps") as f:
            for line in f:
                if line.rstrip().endswith("[vdso]"):
                    low, high = line.split()[0].split("-")
                    return int(low, 16), int(high, 16)
    except (FileNotFoundError, ProcessLookupError):
        raise Gone(f"process {pid} ended") from None
    return None


def pristine() -> tuple[bytes, dict[str, tuple[int, int]]]:
    """This agent's own vDSO image and its functions. The kernel maps the same image into every 64-bit
    process, so it is what a target's vDSO holds before it is patched."""
    global _pristine_cache
    if _pristine_cache is None:
        if platform.machine() != "x86_64":
            raise Refused(f"time faults patch x86_64 machine code; this host is {platform.machine()}")
        span = _vdso_range("self")
        if span is None:
            raise Refused("this agent has no vDSO to copy from")
        fd = os.open("/proc/self/mem", os.O_RDONLY | os.O_CLOEXEC)
        try:
            image = os.pread(fd, span[1] - span[0], span[0])
        finally:
            os.close(fd)
        try:
            found = code.symbols(image)
        except code.NotAVdso as error:
            raise Refused(f"this agent's vDSO: {error}") from None
        entry = found.get(code.SYMBOLS["clock_gettime"])
        if entry is None or entry[1] < code.JUMP_SIZE:
            raise Refused("this kernel's vDSO has no __vdso_clock_gettime to patch")
        try:
            room = code.scratch(image)
        except code.NotAVdso as error:
            raise Refused(f"this kernel's vDSO: {error}") from None
        _pristine_cache = image, found, room
    return _pristine_cache[0], _pristine_cache[1]


def _scratch() -> int:
    """Offset in the vDSO of the spare room our system calls' trampolines are written to."""
    pristine()
    assert _pristine_cache is not None
    return _pristine_cache[2]


def _same_vdso(current: bytes, image: bytes) -> bool:
    """Whether a process's vDSO is this kernel's, leaving out the trampoline's room (a dead agent may
    have left one there; it is unreachable)."""
    room = _scratch()
    return len(current) == len(image) and current[:room] == image[:room] and \
        current[room + code.TRAMPOLINE_ROOM:] == image[room + code.TRAMPOLINE_ROOM:]


def _clear_scratch(mem: Memory, base: int) -> None:
    """The trampoline's room back to the kernel's bytes (zeros)."""
    image, _ = pristine()
    room = _scratch()
    mem.write(base + room, image[room:room + code.TRAMPOLINE_ROOM])


def _entries(routines: list[str]) -> list[tuple[str, int]]:
    """(routine, offset in the vDSO) of those the vDSO has with room for the 12-byte jump."""
    _, found = pristine()
    out = []
    for name in routines:
        entry = found.get(code.SYMBOLS[name])
        if entry is not None and entry[1] >= code.JUMP_SIZE:
            out.append((name, entry[0]))
    return out


def _our_pages(pid: int, short_id: str | None) -> list[tuple[int, code.Header]]:
    """Pages of ours in process `pid` (of the fault `short_id`, or of any fault): anonymous r-x 4 KiB
    mappings that start with our header."""
    found = []
    try:
        with open(f"/proc/{pid}/maps") as f:
            candidates = []
            for line in f:
                fields = line.split()
                if len(fields) != 5 or fields[1] != "r-xp" or fields[4] != "0":
                    continue
                low, high = (int(x, 16) for x in fields[0].split("-"))
                if high - low == code.PAGE:
                    candidates.append(low)
        if not candidates:
            return []
        with Memory(pid) as mem:
            for low in candidates:
                try:
                    head = code.header(mem.read(low, code.HEADER_SIZE))
                except OSError:
                    continue
                if head is not None and (short_id is None or head.short_id == short_id):
                    found.append((low, head))
    except (OSError, Gone):
        return []
    return found


Ranges = list[tuple[int, int]]


def _stopped(pid: int, busy: Ranges, hazards: Ranges | None = None) -> Session:
    """All threads of `pid` stopped, none of them executing in `busy`, and none holding an address in
    `hazards` (code about to change) in a register or on its stack above its stack pointer: the frame of
    a signal handler that interrupted that code would return into it. A thread that is either is let
    run alone for a moment and stopped again (threads it started meanwhile are stopped too), until
    none is; Busy says which thread and why if that does not happen."""
    session = Session(pid)
    hot: dict[int, str] = {}
    try:
        session.stop_all()
        for attempt in range(NUDGES):
            hot = _hot(session, pid, busy, hazards or [])
            if not hot:
                return session
            for tid in hot:
                session.nudge(tid, 0.00005 * (attempt % 8 + 1))  # a varying slice of its run
            session.stop_all()
    except BaseException:
        session.release()
        raise
    session.release()
    raise Busy(f"process {pid}: {next(iter(hot.values()))}")


def _hot(session: Session, pid: int, busy: Ranges, hazards: Ranges) -> dict[int, str]:
    """The stopped threads in the way (see _stopped), with why."""
    hot, regs_of = {}, session.all_regs()
    for tid, regs in regs_of.items():
        if any(lo <= regs.rip < hi for lo, hi in busy):
            hot[tid] = f"thread {tid} is executing at {regs.rip:#x}, in the code to change"
            continue
        for name, _ in regs._fields_:
            if any(lo <= getattr(regs, name) < hi for lo, hi in hazards):
                hot[tid] = f"register {name} of thread {tid} points into the code to change"
                break
    if not hazards or len(hot) == len(regs_of):
        return hot
    with open(f"/proc/{pid}/maps") as f:
        spans = [tuple(int(x, 16) for x in line.split()[0].split("-")) for line in f]
    # bits 16..63 of the addresses in the ranges: found with bytes.find, then checked whole
    needles = {(a >> 16).to_bytes(6, "little") for lo, hi in hazards for a in (lo, hi - 1)}
    with Memory(pid) as mem:
        for tid, regs in regs_of.items():
            end = next((hi for lo, hi in spans if lo <= regs.rsp < hi), None)
            if tid in hot or end is None:
                continue
            try:
                stack = os.pread(mem.fd, min(end - regs.rsp, STACK_SCAN), regs.rsp)
            except OSError:
                continue
            for needle in needles:
                at = stack.find(needle)
                while at >= 0 and tid not in hot:
                    start = at - 2
                    value = int.from_bytes(stack[start:start + 8], "little") if start >= 0 else -1
                    if start % 8 == 0 and any(lo <= value < hi for lo, hi in hazards):
                        hot[tid] = f"the stack of thread {tid} at {regs.rsp + start:#x} points into the code to change"
                    at = stack.find(needle, at + 1)
    return hot


# -- inject -------------------------------------------------------------------------------------------------
def _patched_bytes(base: int, offsets: list[int]) -> Ranges:
    """Inside the 12 bytes a jump takes at each entry (the entry itself is fine: a call starts there,
    with the old bytes or the new)."""
    return [(base + off + 1, base + off + code.JUMP_SIZE) for off in offsets]


def map_page(session: Session, mem: Memory, scratch: int) -> int:
    """A 4 KiB r-x page in the stopped process, between two PROT_NONE guard pages of ours: the kernel
    merges adjacent anonymous mappings with the same protection, and the guards keep ours a mapping
    of its own (so it is found by its size), whatever the process maps next to it. The r-x page is
    mapped anew over the middle of the reservation rather than mprotect-ed to exec, which processes
    under MemoryDenyWriteExecute (seccomp) or PR_SET_MDWE may not do."""
    base = session.syscall(mem, scratch, code.SYS_MMAP, 0, 3 * code.PAGE, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS,
                           -1, 0)
    if -4096 < base < 0:
        raise Refused(f"process {session.pid}: mmap of a page for the fake clock failed: {os.strerror(-base)}")
    page = session.syscall(mem, scratch, code.SYS_MMAP, base + code.PAGE, code.PAGE, PROT_READ | PROT_EXEC,
                           MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0)
    if page != base + code.PAGE:
        session.syscall(mem, scratch, code.SYS_MUNMAP, base, 3 * code.PAGE)
        reason = os.strerror(-page) if -4096 < page < 0 else f"it came at {page:#x}"
        raise Refused(f"process {session.pid}: mmap of the fake clock's page failed: {reason}")
    return page


def _shift(pid: int, short_id: str, plan_: Plan) -> str:
    """Patch one process (in the calling tracer thread); the line to report, or raises with nothing left."""
    image, _ = pristine()
    entries = _entries(plan_.routines)
    span = _vdso_range(pid)
    if span is None:
        raise Refused(f"process {pid} has no vDSO (a kernel thread?)")
    if span[1] - span[0] != len(image):
        raise Refused(f"process {pid}'s vDSO is not this kernel's 64-bit one (a 32-bit process?)")
    with Memory(pid) as mem:
        current = mem.read(span[0], len(image))
        if not _same_vdso(current, image):
            for low, head in _our_pages(pid, None):
                if head.short_id == short_id:
                    return f"process {pid}: already shifted (page {low:#x})"
                raise Refused(f"process {pid} already has another time fault (id {head.short_id}); recover it first")
            raise Refused(f"process {pid}'s vDSO differs from this kernel's (patched by another tool?)")
        scratch = span[0] + _scratch()
        session = _stopped(pid, [span], _patched_bytes(span[0], [off for _, off in entries]))
        try:
            patches = []
            for name, off in entries:
                original = mem.read(span[0] + off, code.JUMP_SIZE)
                if original != image[off:off + code.JUMP_SIZE]:
                    raise Refused(f"process {pid}'s vDSO changed while we looked at it")
                patches.append(code.Patch(name, off, original))
            page = map_page(session, mem, scratch)
            written: list[code.Patch] = []
            try:
                mem.write(page, code.page(short_id, plan_.mask, plan_.offset_ns, patches))
                for patch in patches:
                    mem.write(span[0] + patch.vdso_offset, code.jump(page + code.ROUTINES[patch.routine]))
                    written.append(patch)
            except BaseException:
                for patch in written:
                    mem.write(span[0] + patch.vdso_offset, patch.original)
                session.syscall(mem, scratch, code.SYS_MUNMAP, page - code.PAGE, 3 * code.PAGE)
                raise
            finally:
                _clear_scratch(mem, span[0])
        finally:
            session.release()
    return f"process {pid}: {', '.join(p.routine for p in patches)} patched (page {page:#x})"


def inject(order: FaultOrder) -> str:
    """Shift the clocks of every process the order means, or of none: a failure undoes those done and
    refuses with the reason. A process that ends meanwhile is skipped (refused if it was the only one)."""
    short_id = validate.short_id(order.fault_id)
    plan_ = plan(order)
    pristine()
    done: list[int] = []
    lines: list[str] = []
    with _lock:
        for pid in plan_.pids:
            try:
                lines.append(in_tracer_thread(lambda pid=pid: _shift(pid, short_id, plan_)))  # type: ignore[misc]
                done.append(pid)
            except Gone:
                if len(plan_.pids) == 1:
                    raise Refused(f"process {pid} ended before its clock could be shifted") from None
            except (Refused, Busy, OSError) as error:
                for earlier in done:
                    _unshift_quietly(earlier, short_id)
                if isinstance(error, OSError) and error.errno == errno.EPERM:
                    raise Refused(f"process {pid}: not allowed to trace it ({error.strerror})") from None
                raise Refused(str(error) if not isinstance(error, OSError) else f"process {pid}: {error}") from None
        if not done:
            raise Refused(f"{plan_.what}: every process ended before its clock could be shifted")
    sign = "+" if plan_.offset_ns > 0 else "-"
    return (f"shifted {', '.join(plan_.clocks)} by {sign}{_show_ns(abs(plan_.offset_ns))} in {plan_.what} "
            f"through the vDSO: {'; '.join(lines)}")


def _show_ns(ns: int) -> str:
    seconds, rest = divmod(ns, 10**9)
    hours, seconds = divmod(seconds, 3600)
    minutes, seconds = divmod(seconds, 60)
    frac = f".{rest:09d}".rstrip("0") if rest else ""
    return f"{hours}h{minutes}m{seconds}{frac}s" if hours else f"{minutes}m{seconds}{frac}s" if minutes \
        else f"{seconds}{frac}s"


# -- recover ------------------------------------------------------------------------------------------------
def _unshift(pid: int, short_id: str) -> list[str]:
    """Undo fault `short_id` in process `pid` (in the calling tracer thread); what was done.

    First the vDSO's functions get their bytes back (no thread executing in the vDSO, or about to return
    into the bytes changed), then the page and its guards go once no thread executes in the page or
    holds an address in it. A page still held after NUDGES tries stays mapped (harmless: nothing jumps
    to it any more) and a later recover unmaps it."""
    pages = _our_pages(pid, short_id)
    if not pages:
        return []
    span = _vdso_range(pid)
    done = []
    with Memory(pid) as mem:
        if span is not None:
            offsets = [patch.vdso_offset for _, head in pages for patch in head.patches]
            session = _stopped(pid, [span], _patched_bytes(span[0], offsets))
            try:
                for low, head in pages:
                    for patch in head.patches:
                        entry = span[0] + patch.vdso_offset
                        if code.jump_target(mem.read(entry, code.JUMP_SIZE)) == low + code.ROUTINES[patch.routine]:
                            mem.write(entry, patch.original)
                            done.append(f"{patch.routine} restored")
                _clear_scratch(mem, span[0])  # in case an agent died with a trampoline there
            finally:
                session.release()
        for low, _ in pages:
            held = _jumps_into(mem, span, low) if span else "the process has no vDSO left to run munmap from"
            if held is None and span is not None:
                held = _unmap(pid, mem, span[0], low)
                if held is None:
                    done.append(f"page {low:#x} unmapped")
                    continue
            done.append(f"page {low:#x} left mapped: {held}")
            log.warning("time fault page %#x left mapped in process %d: %s", low, pid, held)
    return done


def _unmap(pid: int, mem: Memory, base: int, low: int) -> str | None:
    """munmap the page at `low` and its guards, once no thread executes in it or points into it;
    None when done, else why not."""
    room = base + _scratch()
    try:
        session = _stopped(pid, [(low, low + code.PAGE), (room, room + code.TRAMPOLINE_ROOM)], [(low, low + code.PAGE)])
    except Busy as busy:
        return str(busy).split(": ", 1)[-1]
    try:
        first, size = (low - code.PAGE, 3 * code.PAGE) if _guarded(pid, low) else (low, code.PAGE)
        try:
            result = session.syscall(mem, room, code.SYS_MUNMAP, first, size)
        finally:
            _clear_scratch(mem, base)
    finally:
        session.release()
    if result != 0:
        raise Busy(f"process {pid}: munmap of page {low:#x} failed: {os.strerror(-result)}")
    return None


def _guarded(pid: int, low: int) -> bool:
    """Whether the pages on either side of ours are still anonymous PROT_NONE (our guards), so that
    unmapping them too takes nothing of the process's."""
    below = above = False
    with open(f"/proc/{pid}/maps") as f:
        for line in f:
            fields = line.split()
            first, second = (int(x, 16) for x in fields[0].split("-"))
            none = fields[1] == "---p" and len(fields) == 5 and fields[4] == "0"
            below |= none and first <= low - code.PAGE and second >= low
            above |= none and first <= low + code.PAGE and second >= low + 2 * code.PAGE
    return below and above


def _jumps_into(mem: Memory, span: tuple[int, int] | None, low: int) -> str | None:
    """A vDSO function that still jumps into the page (a patch we did not record), if any."""
    if span is None:
        return None
    _, found = pristine()
    for name, (off, _) in found.items():
        target = code.jump_target(mem.read(span[0] + off, code.JUMP_SIZE))
        if target is not None and low <= target < low + code.PAGE:
            return f"the vDSO's {name}"
    return None


def _unshift_quietly(pid: int, short_id: str) -> None:
    try:
        in_tracer_thread(lambda: _unshift(pid, short_id))
    except (Gone, Busy, OSError):
        pass


def _clear_stale_trampoline(pid: int) -> None:
    """Best effort: zero the trampoline's room in the vDSO of a process where an agent died while one
    of its threads ran our system call (unreachable bytes, but the vDSO should be the kernel's again)."""
    image, _ = pristine()
    try:
        span = _vdso_range(pid)
        if span is None or span[1] - span[0] != len(image):
            return
        with Memory(pid) as mem:
            if not any(mem.read(span[0] + _scratch(), code.TRAMPOLINE_ROOM)):
                return
            if not _same_vdso(mem.read(span[0], len(image)), image):
                return
    except (Gone, OSError):
        return

    def clear() -> None:
        with Memory(pid) as mem:
            session = _stopped(pid, [span])
            try:
                _clear_scratch(mem, span[0])
            finally:
                session.release()

    try:
        in_tracer_thread(clear)
        log.info("process %d: cleared a trampoline a previous agent left in its vDSO", pid)
    except (Gone, Busy, OSError) as error:
        log.warning("process %d: a trampoline a previous agent left in its vDSO stays: %s", pid, error)


def _all_pids() -> list[int]:
    """Every process but pid 1 (never a target) and this agent."""
    me = os.getpid()
    return sorted(int(e) for e in os.listdir("/proc") if e.isdigit() and int(e) not in (1, me))


def recover(order: FaultOrder) -> None:
    """Every process holding a page of this fault is restored; nothing found is fine (never injected,
    already recovered, or the process is gone). Raises when a process could not be restored (retried)."""
    short_id = validate.short_id(order.fault_id)
    failed = []
    with _lock:
        for pid in _all_pids():
            if _our_pages(pid, short_id):
                try:
                    done = in_tracer_thread(lambda pid=pid: _unshift(pid, short_id))  # type: ignore[misc]
                    log.info("time fault %s: process %d: %s", order.fault_id, pid, ", ".join(done) or "nothing left")
                except Gone:
                    continue
                except (Busy, OSError) as error:
                    failed.append(f"process {pid}: {error}")
            _clear_stale_trampoline(pid)
    if failed:
        raise RuntimeError(f"time fault {order.fault_id}: could not restore {'; '.join(failed)}")


# -- capability ---------------------------------------------------------------------------------------------
def capability() -> tuple[str, bool, str]:
    """Tries it: x86_64, a vDSO with clock_gettime, and on a short-lived child of ours: attach and stop
    it, run a system call in it (getpid), and write its vDSO through /proc/PID/mem (the same bytes)."""
    try:
        _, found = pristine()
    except Refused as refused:
        return CAPABILITY, False, str(refused)
    sleep = shutil.which("sleep") or "/bin/sleep"
    try:
        child = subprocess.Popen([sleep, "30"], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                 stderr=subprocess.DEVNULL, start_new_session=True)
    except OSError as error:
        return CAPABILITY, False, f"could not start a process to try ptrace on: {error}"
    try:
        def attempt() -> int:
            span = _vdso_range(child.pid)
            if span is None:
                raise Refused("a new process has no vDSO")
            off = found[code.SYMBOLS["clock_gettime"]][0]
            session = _stopped(child.pid, [span])
            try:
                with Memory(child.pid) as mem:
                    mem.write(span[0] + off, mem.read(span[0] + off, code.JUMP_SIZE))
                    try:
                        return session.syscall(mem, span[0] + _scratch(), 39)  # getpid
                    finally:
                        _clear_scratch(mem, span[0])
            finally:
                session.release()

        got = in_tracer_thread(attempt)
        if got != child.pid:
            return CAPABILITY, False, f"a system call run through ptrace returned {got}, not the pid {child.pid}"
    except (OSError, Busy, Gone, Refused) as error:
        return CAPABILITY, False, f"ptrace or /proc/PID/mem writes are not allowed here: {error}"
    finally:
        child.kill()
        child.wait()
    return CAPABILITY, True, "ptrace, /proc/PID/mem writes and the x86_64 vDSO (clock_gettime, gettimeofday, time)"


Executor = tuple[Callable[[FaultOrder], str], Callable[[FaultOrder], None]]
#: (kind, action) -> (inject, recover), merged into nodeagent.executors.REGISTRY.
EXECUTORS: dict[tuple[str, str], Executor] = {
    ("TimeChaos", "time-offset"): (inject, recover),
    ("PhysicalMachineChaos", "clock"): (inject, recover),
}

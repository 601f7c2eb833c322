"""ptrace through ctypes, for the time fault: stop every thread of a running process, run a system call
inside it, and read and write its memory (/proc/PID/mem). x86_64 only: the register layout is the
kernel's `struct user_regs_struct` and the injected code is x86_64 machine code.

A system call is run by one stopped thread from a trampoline (timeshift_code.trampoline) written into
spare room of the process's vDSO: `syscall`, then every register the thread had put back and a jump
to where it was. The thread is driven with syscall-stops (PTRACE_SYSCALL: no trap flag, no SIGTRAP)
and, while we are alive, never runs the trampoline's way back: after the call's exit stop it goes to
an interrupt stop, and we restore its registers there. So if this agent dies at any instant, the
kernel lets the thread go and it either never left its place or finds its own way back: no process
is left stopped, stepping, holding a SIGTRAP, or astray.

A session is used from one thread only, because ptrace binds a tracee to the tracer *thread*. Every
session runs in a fresh thread (`in_tracer_thread`): if anything goes wrong while a tracee is attached
but not yet stopped (a thread in uninterruptible sleep), the session gives up and its thread ends,
and the kernel then detaches whatever that thread still traces.
"""
from __future__ import annotations

import ctypes
import errno
import os
import signal
import threading
import time
from collections.abc import Callable
from typing import TypeVar

from . import timeshift_code as code

T = TypeVar("T")

PTRACE_CONT = 7
PTRACE_GETREGS = 12
PTRACE_SETREGS = 13
PTRACE_DETACH = 17
PTRACE_SYSCALL = 24
PTRACE_SEIZE = 0x4206
PTRACE_INTERRUPT = 0x4207
PTRACE_O_TRACESYSGOOD = 1  # syscall-stops report SIGTRAP | 0x80, told apart from a real SIGTRAP
PTRACE_EVENT_STOP = 128
SYSCALL_STOP = signal.SIGTRAP | 0x80
WALL = 0x40000000  # __WALL: wait for clone (non-leader) threads too
SYS_TGKILL = 234
STOP_TIMEOUT = 3.0  # a thread that does not stop within this is in uninterruptible sleep: give up
CALL_TIMEOUT = 10.0  # an injected mmap/munmap returns in microseconds; this only guards against a hang

_libc = ctypes.CDLL(None, use_errno=True)
_ptrace = _libc.ptrace
_ptrace.argtypes = [ctypes.c_long, ctypes.c_long, ctypes.c_void_p, ctypes.c_void_p]
_ptrace.restype = ctypes.c_long
_syscall = _libc.syscall
_syscall.restype = ctypes.c_long


class Regs(ctypes.Structure):
    """x86_64 `struct user_regs_struct` (sys/user.h), what PTRACE_GETREGS fills."""

    _fields_ = [(name, ctypes.c_ulonglong) for name in (
        "r15", "r14", "r13", "r12", "rbp", "rbx", "r11", "r10", "r9", "r8", "rax", "rcx", "rdx", "rsi", "rdi",
        "orig_rax", "rip", "cs", "eflags", "rsp", "ss", "fs_base", "gs_base", "ds", "es", "fs", "gs")]

    def copy(self) -> Regs:
        twin = Regs()
        ctypes.memmove(ctypes.addressof(twin), ctypes.addressof(self), ctypes.sizeof(Regs))
        return twin

    def as_dict(self) -> dict[str, int]:
        return {name: int(getattr(self, name)) for name, _ in self._fields_}


class Gone(Exception):
    """The process (or all of its threads) ended while we worked on it."""


class Busy(Exception):
    """A thread could not be stopped, or kept running where we must not patch; the message says which."""


def ptrace(request: int, tid: int, addr: int = 0, data: int = 0) -> int:
    ctypes.set_errno(0)
    result = _ptrace(request, tid, addr, data)
    err = ctypes.get_errno()
    if result == -1 and err:
        raise OSError(err, f"ptrace({request:#x}, {tid}): {os.strerror(err)}")
    return int(result)


def in_tracer_thread(work: Callable[[], T]) -> T:
    """`work()` in a new thread that ends afterwards (see the module's docstring)."""
    box: dict[str, object] = {}

    def body() -> None:
        try:
            box["result"] = work()
        except BaseException as error:  # handed to the caller's thread
            box["error"] = error

    thread = threading.Thread(target=body, name="timeshift-tracer", daemon=True)
    thread.start()
    thread.join()
    if "error" in box:
        raise box["error"]  # type: ignore[misc]
    return box["result"]  # type: ignore[return-value]


def tasks(pid: int) -> set[int]:
    try:
        return {int(t) for t in os.listdir(f"/proc/{pid}/task") if t.isdigit()}
    except (FileNotFoundError, ProcessLookupError):
        return set()


def _state(pid: int, tid: int) -> str:
    try:
        with open(f"/proc/{pid}/task/{tid}/stat") as f:
            data = f.read()
        return data[data.rindex(")") + 2]
    except (OSError, ValueError, IndexError):
        return "X"


def _tracer_hint(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("TracerPid:") and line.split()[1] != "0":
                    return f" (it is already traced by process {line.split()[1]})"
    except OSError:
        pass
    return ""


class Memory:
    """/proc/PID/mem: reads, and writes that the kernel lets through even to read-only mappings
    (copy-on-write, private to this process), as for a debugger's breakpoints."""

    def __init__(self, pid: int) -> None:
        try:
            self.fd = os.open(f"/proc/{pid}/mem", os.O_RDWR | os.O_CLOEXEC)
        except FileNotFoundError:
            raise Gone(f"process {pid} ended") from None
        self.pid = pid

    def read(self, address: int, size: int) -> bytes:
        data = os.pread(self.fd, size, address)
        if len(data) != size:
            raise OSError(errno.EIO, f"short read at {address:#x} in process {self.pid}")
        return data

    def write(self, address: int, data: bytes) -> None:
        if os.pwrite(self.fd, data, address) != len(data) or self.read(address, len(data)) != data:
            raise OSError(errno.EIO, f"could not write {len(data)} bytes at {address:#x} in process {self.pid}")

    def close(self) -> None:
        os.close(self.fd)

    def __enter__(self) -> Memory:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


class Session:
    """Every thread of process `pid` attached (PTRACE_SEIZE) and stopped (PTRACE_INTERRUPT) until
    release(). A signal that arrives while a thread is stopped is handed back to it at release."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.stopped: dict[int, int] = {}  # tid -> the signal of its signal-delivery-stop, 0 for other stops
        self.swallowed: dict[int, list[int]] = {}  # signals cancelled while it ran our call, re-sent at release
        self._seized: set[int] = set()

    # -- attaching ----------------------------------------------------------------------------------
    def stop_all(self) -> None:
        """Attach and stop every thread, again and again until no new thread appeared meanwhile."""
        gone: set[int] = set()
        for _ in range(200):
            new = sorted(tasks(self.pid) - self._seized - gone)
            if not new:
                break
            for tid in new:
                try:
                    ptrace(PTRACE_SEIZE, tid, 0, PTRACE_O_TRACESYSGOOD)
                except OSError as error:
                    if error.errno == errno.ESRCH or _state(self.pid, tid) in "ZX":
                        gone.add(tid)
                        continue
                    raise Busy(f"cannot attach to thread {tid} of process {self.pid}: {error.strerror}"
                               f"{_tracer_hint(self.pid)}") from None
                self._seized.add(tid)
                try:
                    ptrace(PTRACE_INTERRUPT, tid)
                except OSError:
                    pass  # exited already: the wait below reports it
            for tid in new:
                if tid in self._seized:
                    self._wait_first_stop(tid, gone)
        else:
            raise Busy(f"process {self.pid} keeps starting threads")
        if not self.stopped:
            raise Gone(f"process {self.pid} ended")

    def _wait_first_stop(self, tid: int, gone: set[int]) -> None:
        status = self._wait(tid, time.monotonic() + STOP_TIMEOUT)
        if status is None:
            self._seized.discard(tid)
            gone.add(tid)
            return
        event, sig = status >> 16, os.WSTOPSIG(status)
        self.stopped[tid] = 0 if event == PTRACE_EVENT_STOP else sig

    def _wait(self, tid: int, deadline: float, spin: int = 0) -> int | None:
        """The next stop status of `tid`, or None when it has exited. The first `spin` polls do not sleep
        (a thread running our system call is back in microseconds)."""
        polls = 0
        while True:
            try:
                found, status = os.waitpid(tid, os.WNOHANG | WALL)
            except ChildProcessError:
                return None
            if found == tid:
                if os.WIFSTOPPED(status):
                    return status
                return None  # exited or killed
            if time.monotonic() > deadline:
                raise Busy(f"thread {tid} of process {self.pid} did not stop (state {_state(self.pid, tid)})")
            polls += 1
            if polls > spin:
                time.sleep(0.0005)

    def nudge(self, tid: int, seconds: float) -> None:
        """Let one thread run for about `seconds` while the others stay stopped, then stop it again (for a
        thread stopped where we must not patch). Its signals are passed straight through meanwhile:
        under a stream of signals (a timer) it would otherwise stop at each before running a thing."""
        request_sig, self.stopped[tid] = self.stopped[tid], 0
        deadline = time.monotonic() + seconds
        ptrace(PTRACE_CONT, tid, 0, request_sig)
        while True:
            try:
                found, status = os.waitpid(tid, os.WNOHANG | WALL)
            except ChildProcessError:
                found, status = tid, 0
            if found == tid:
                if not os.WIFSTOPPED(status):
                    del self.stopped[tid]
                    self._seized.discard(tid)
                    return
                event, sig = status >> 16, os.WSTOPSIG(status)
                ptrace(PTRACE_CONT, tid, 0, sig if event == 0 and sig != SYSCALL_STOP else 0)
                continue
            if time.monotonic() >= deadline:
                break
            time.sleep(0.00002)
        try:
            ptrace(PTRACE_INTERRUPT, tid)
        except OSError:
            pass  # exited: the wait says so
        status = self._wait(tid, time.monotonic() + STOP_TIMEOUT)
        if status is None:
            del self.stopped[tid]
            self._seized.discard(tid)
            return
        event, sig = status >> 16, os.WSTOPSIG(status)
        self.stopped[tid] = 0 if event == PTRACE_EVENT_STOP else sig

    # -- registers and system calls -----------------------------------------------------------------
    def regs(self, tid: int) -> Regs:
        regs = Regs()
        ptrace(PTRACE_GETREGS, tid, 0, ctypes.addressof(regs))
        return regs

    def set_regs(self, tid: int, regs: Regs) -> None:
        ptrace(PTRACE_SETREGS, tid, 0, ctypes.addressof(regs))

    def all_regs(self) -> dict[int, Regs]:
        out = {}
        for tid in list(self.stopped):
            try:
                out[tid] = self.regs(tid)
            except OSError as error:
                if error.errno != errno.ESRCH:
                    raise
                del self.stopped[tid]  # killed (SIGKILL ends even a stopped tracee)
                self._seized.discard(tid)
        return out

    def syscall(self, mem: Memory, scratch: int, number: int, *args: int) -> int:
        """System call `number` with `args`, run by one stopped thread from a trampoline written at
        `scratch` (spare room in its vDSO, which the caller puts back afterwards). Returns the raw
        result (a negative errno on failure).

        orig_rax = -1 in the thread's registers keeps the kernel from "restarting" the system call the
        thread was interrupted in with our registers. Its own registers, put back in the interrupt
        stop it ends in, still carry that system call, so it restarts normally once the thread runs."""
        tid = self._pick_thread()
        saved = self.regs(tid)
        mem.write(scratch, code.trampoline(saved.as_dict()))
        regs = saved.copy()
        regs.rax, regs.orig_rax, regs.rip = number, 2**64 - 1, scratch
        values = list(args) + [0] * (6 - len(args))
        regs.rdi, regs.rsi, regs.rdx, regs.r10, regs.r8, regs.r9 = (v & (2**64 - 1) for v in values)
        if self.stopped[tid]:  # resuming from its signal-delivery-stop cancels that signal: sent again later
            self.swallowed.setdefault(tid, []).append(self.stopped[tid])
            self.stopped[tid] = 0
        self.set_regs(tid, regs)
        deadline = time.monotonic() + CALL_TIMEOUT
        self._resume_until(tid, PTRACE_SYSCALL, deadline)  # its entry
        self._resume_until(tid, PTRACE_SYSCALL, deadline)  # its exit
        result = int(self.regs(tid).rax)
        ptrace(PTRACE_INTERRUPT, tid)  # back to an interrupt stop before it returns to user mode
        self._resume_until(tid, PTRACE_CONT, deadline, want_event=True)
        self.set_regs(tid, saved)
        return result - 2**64 if result >= 2**63 else result

    def _pick_thread(self) -> int:
        """A thread in a plain (interrupt or group) stop if there is one: resuming it loses nothing."""
        plain = [tid for tid, sig in self.stopped.items() if sig == 0]
        if plain:
            return self.pid if self.pid in plain else plain[0]
        if not self.stopped:
            raise Gone(f"process {self.pid} ended")
        return next(iter(self.stopped))

    def _resume_until(self, tid: int, request: int, deadline: float, want_event: bool = False) -> None:
        """Resume `tid` with `request` until its next syscall-stop (or, with `want_event`, its interrupt
        stop); a signal of its own that stops it on the way is cancelled and re-sent at release."""
        while True:
            ptrace(request, tid)
            status = self._wait(tid, deadline, spin=5000)
            if status is None:
                del self.stopped[tid]
                self._seized.discard(tid)
                raise Gone(f"thread {tid} of process {self.pid} ended during a system call we ran in it")
            event, sig = status >> 16, os.WSTOPSIG(status)
            if want_event and event == PTRACE_EVENT_STOP:
                return
            if not want_event and event == 0 and sig == SYSCALL_STOP:
                return
            if event == 0 and sig != SYSCALL_STOP:
                self.swallowed.setdefault(tid, []).append(sig)

    # -- letting go ---------------------------------------------------------------------------------
    def release(self) -> None:
        """Detach every thread (each continues where it was stopped) and hand back its signals."""
        for tid, sig in list(self.stopped.items()):
            try:
                ptrace(PTRACE_DETACH, tid, 0, sig)
            except OSError:
                pass  # gone
        for tid, sigs in self.swallowed.items():
            for sig in sigs:
                _syscall(SYS_TGKILL, self.pid, tid, sig)
        self.stopped.clear()
        self.swallowed.clear()
        self._seized.clear()

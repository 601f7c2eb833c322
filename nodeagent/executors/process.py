"""Signals to processes: PhysicalMachineChaos `process` (by name or PID, any signal; a stop signal is
a pause, continued at recovery) and PodChaos container-kill (SIGKILL to the container's main process).

A paused process is remembered with its start time, so recovery never continues a different process
that reused the PID; after an agent restart recovery finds the stopped processes again by name or PID.
"""
from __future__ import annotations

import os
import signal
import threading

from nodeagent.orders import FaultOrder, Refused

from . import containers, validate
from .network import params

STOP_SIGNALS = {signal.SIGSTOP, signal.SIGTSTP, signal.SIGTTIN, signal.SIGTTOU}
_paused: dict[str, list[tuple[int, str]]] = {}
_lock = threading.Lock()


def _stat(pid: int) -> tuple[str, str] | None:
    """(state, start time) of a process, or None when it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            data = f.read()
    except OSError:
        return None
    fields = data[data.rindex(")") + 2:].split()  # the name may hold spaces and parentheses
    return fields[0], fields[19]


def pids_by_name(name: str) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            with open(f"/proc/{entry}/comm") as f:
                if f.read().rstrip("\n") == name:
                    found.append(int(entry))
        except OSError:
            continue
    return sorted(found)


def _targets(order: FaultOrder) -> tuple[list[int], str, int]:
    """(PIDs, what they are, signal), everything checked."""
    p = params(order)
    sig = validate.signal_number(p.get("signal", signal.SIGKILL))
    if p.get("mode") is not None:
        if validate.choice(p["mode"], "mode", ("kill", "pause")) == "pause":
            sig = signal.SIGSTOP
    which = p.get("process")
    if which is None:
        which = order.target.pid if order.target.pid is not None else order.target.name
    if which is None:
        raise Refused("name a process (its name or PID)")
    if isinstance(which, int) or (isinstance(which, str) and which.isdigit()):
        pid = validate.pid(which)
        if pid == os.getpid():
            raise Refused("the agent does not signal itself")
        return ([pid] if _stat(pid) else []), f"process {pid}", sig
    name = validate.process_name(which)
    return pids_by_name(name), f"processes named {name}", sig


def inject(order: FaultOrder) -> str:
    validate.short_id(order.fault_id)
    if order.kind == "PodChaos":
        return _container_kill(order)
    pids, what, sig = _targets(order)
    if not pids:
        raise Refused(f"no {what}")
    if sig in STOP_SIGNALS:
        with _lock:
            _paused[order.fault_id] = [(pid, stat[1]) for pid in pids if (stat := _stat(pid))]
    sent = []
    for pid in pids:
        try:
            os.kill(pid, sig)
            sent.append(pid)
        except ProcessLookupError:
            continue
    if not sent:
        raise Refused(f"{what} ended before the signal")
    name = signal.Signals(sig).name if sig in signal.Signals.__members__.values() else f"signal {sig}"
    paused = " (paused until recovery)" if sig in STOP_SIGNALS else ""
    return f"sent {name} to {what}: {', '.join(map(str, sent))}{paused}"


def _container_kill(order: FaultOrder) -> str:
    target = order.target
    if target.kind != "container" or target.container_id is None:
        raise Refused("container-kill needs a container target")
    cid = validate.container_id(target.container_id)
    pid = containers.container_pid(cid, target.runtime)
    os.kill(validate.pid(pid), signal.SIGKILL)
    return f"sent SIGKILL to container {cid[:12]} (pid {pid})"


def recover(order: FaultOrder) -> None:
    """Continues what this fault paused; a killed process stays dead (nothing to undo)."""
    if order.kind == "PodChaos":
        return
    with _lock:
        remembered = _paused.pop(order.fault_id, None)
    if remembered is None:
        try:
            pids, _, sig = _targets(order)
        except Refused:
            return
        if sig not in STOP_SIGNALS:
            return
        remembered = [(pid, stat[1]) for pid in pids if (stat := _stat(pid)) and stat[0] in "Tt"]
    for pid, started in remembered:
        stat = _stat(pid)
        if stat is not None and stat[1] == started:
            try:
                os.kill(pid, signal.SIGCONT)
            except ProcessLookupError:
                pass

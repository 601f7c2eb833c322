"""StressChaos (cpu, memory) and PhysicalMachineChaos stress-cpu / stress-mem: stress-ng, started from an
argv list in its own process group, moved into the target's cgroups before it executes (so every
worker it forks is accounted there), and killed with its group at recovery.

Each stress-ng carries CHAOSPLANE_FAULT=<short id> in its environment, so recovery also finds it after
an agent restart, when the Popen object is gone.
"""
from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import threading
import time
from typing import Any

from nodeagent.orders import FaultOrder, Refused

from . import cgroups, validate
from .marked import MARKER
from .marked import marked as marked_processes
from .namespaces import resolve
from .network import params

MAX_WORKERS = 8192
# Extra options: only those of the stressor itself and a few harmless general ones. Options that name
# files (--log-file, --job, --yaml, --temp-path) or other stressors are refused.
_OPTION_NAME = re.compile(r"--(cpu|vm)(-[a-z0-9-]+)?")
_GENERAL = {"--aggressive", "--maximize", "--minimize", "--page-in", "--metrics-brief", "--backoff"}
_OPTION_VALUE = re.compile(r"[a-zA-Z0-9._%,:+-]{1,64}")

_running: dict[str, subprocess.Popen[bytes]] = {}
_lock = threading.Lock()


def _options(items: Any, stressor: str) -> list[str]:
    """Extra options, one per item ("--vm-hang 1"), as argv items; refused unless each is allowed."""
    if items is None:
        return []
    if isinstance(items, str):
        tokens = validate.text(items, "stress-ng options", 1024).split()
    elif isinstance(items, list) and len(items) <= 32:
        tokens = [t for item in items for t in validate.text(item, "stress-ng option", 256).replace("=", " ").split()]
    else:
        raise Refused("stress-ng options must be a list of at most 32 items")
    out: list[str] = []
    for token in tokens:
        if token.startswith("-"):
            match = _OPTION_NAME.fullmatch(token)
            if not (token in _GENERAL or (match and (stressor == "" or match.group(1) == stressor))):
                raise Refused(f"stress-ng option {token[:40]!r} is not allowed (only --{stressor or 'cpu/vm'}-* "
                              "options and a few general ones)")
        elif not _OPTION_VALUE.fullmatch(token) or not out:
            raise Refused(f"stress-ng option value {token[:40]!r} is not allowed")
        out.append(token)
    return out


def argv(order: FaultOrder) -> tuple[list[str], int | None, str]:
    """(stress-ng argv, oom_score_adj, description), everything checked."""
    p = params(order)
    if order.kind == "PhysicalMachineChaos":
        extra = _options(p.get("options"), "")
        if order.action == "stress-cpu":
            workers = validate.integer(p.get("workers"), "workers", 1, 1024)
            load = validate.integer(p.get("load"), "load", 1, 100)
            return (["--cpu", str(workers), "--cpu-load", str(load), *extra], None,
                    f"{workers} CPU worker(s) at {load}%")
        if order.action == "stress-mem":
            size = validate.size(p.get("size"))
            # --vm-keep: hold the memory, as Chaos Mesh's memStress does, instead of unmapping it every pass
            return ["--vm", "1", "--vm-bytes", size, "--vm-keep", *extra], None, f"1 memory worker of {size}"
        raise Refused(f"PhysicalMachineChaos {order.action} is not a stress action")
    if p.get("stressngStressors") is not None:
        raw = _options(p["stressngStressors"], "")
        return raw, None, f"stress-ng {' '.join(raw)}"
    stressors = p.get("stressors")
    if not isinstance(stressors, dict) or not ({"cpu", "memory"} & set(stressors)):
        raise Refused("stressors must name cpu or memory")
    out: list[str] = []
    what = []
    oom = None
    if stressors.get("cpu") is not None:
        cpu = stressors["cpu"]
        if not isinstance(cpu, dict):
            raise Refused("stressors.cpu must be an object")
        workers = validate.integer(cpu.get("workers"), "cpu workers", 1, MAX_WORKERS)
        load = validate.integer(cpu.get("load", 100), "cpu load", 0, 100)
        out += ["--cpu", str(workers), "--cpu-load", str(load), *_options(cpu.get("options"), "cpu")]
        what.append(f"{workers} CPU worker(s) at {load}%")
    if stressors.get("memory") is not None:
        mem = stressors["memory"]
        if not isinstance(mem, dict):
            raise Refused("stressors.memory must be an object")
        workers = validate.integer(mem.get("workers"), "memory workers", 1, MAX_WORKERS)
        out += ["--vm", str(workers), "--vm-keep"]  # held, not remapped every pass
        if mem.get("size") is not None:
            out += ["--vm-bytes", validate.size(mem["size"])]
        out += _options(mem.get("options"), "vm")
        if mem.get("oomScoreAdj") is not None:
            oom = validate.integer(mem["oomScoreAdj"], "oomScoreAdj", -1000, 1000)
        what.append(f"{workers} memory worker(s)" + (f" of {mem['size']}" if mem.get("size") else ""))
    return out, oom, ", ".join(what)


def inject(order: FaultOrder) -> str:
    short = validate.short_id(order.fault_id)
    args, oom, what = argv(order)
    binary = shutil.which("stress-ng")
    if binary is None:
        raise Refused("stress-ng is not installed on this host")
    where = resolve(order.target)
    places = cgroups.dirs_of(where.pid) if where.pid is not None else []
    with _lock:
        if order.fault_id in _running and _running[order.fault_id].poll() is None:
            return f"stress-ng already running: {what}"

        def prepare() -> None:  # in the child, before exec: its workers inherit all of this
            cgroups.enter(places)
            if oom is not None:
                with open("/proc/self/oom_score_adj", "w") as f:
                    f.write(str(oom))

        child = subprocess.Popen(  # an argv list of checked values, no shell
            [binary, "--quiet", *args], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL, start_new_session=True, preexec_fn=prepare, cwd="/",
            env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", MARKER: short},
        )
        _running[order.fault_id] = child
    time.sleep(0.1)
    if child.poll() is not None:
        recover(order)
        raise Refused(f"stress-ng exited at once with status {child.returncode} (options: {' '.join(args)})")
    where_text = f"in the cgroups of {where.description}" if places else "on the host"
    return f"stress-ng {what} (pid {child.pid}) {where_text}"


_marked = marked_processes  # nodeagent.executors.marked


def _kill_group(pgid: int) -> None:
    if pgid == os.getpgrp():
        return  # never the agent's own group
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def recover(order: FaultOrder) -> None:
    short = validate.short_id(order.fault_id)
    with _lock:
        child = _running.pop(order.fault_id, None)
    if child is not None and child.poll() is None:
        # SIGTERM first: stress-ng then stops and reaps its own workers, leaving no zombies for init.
        child.terminate()
        try:
            child.wait(3)
        except subprocess.TimeoutExpired:
            pass
        _kill_group(child.pid)
        child.wait(5)
    for pid in _marked(short):  # left by a previous agent, or workers that outlived their parent
        try:
            _kill_group(os.getpgid(pid))
        except ProcessLookupError:
            continue


def running() -> list[str]:
    with _lock:
        return [fid for fid, child in _running.items() if child.poll() is None]

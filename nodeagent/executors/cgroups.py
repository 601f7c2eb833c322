"""The cgroup directories of a process that account and limit its CPU and memory: the v1 cpu, cpuacct
and memory hierarchies where they are mounted, and the v2 (unified) one when it has those controllers.
Read from /proc/PID/cgroup and /proc/self/mountinfo, so any mount layout is understood.
"""
from __future__ import annotations

import os

CONTROLLERS = {"cpu", "cpuacct", "memory"}


def _mounts() -> tuple[dict[str, tuple[str, str]], tuple[str, str] | None]:
    """v1 controller -> (mount root, mount point); and the v2 (mount root, mount point)."""
    v1: dict[str, tuple[str, str]] = {}
    v2 = None
    with open("/proc/self/mountinfo") as f:
        for line in f:
            before, _, after = line.partition(" - ")
            fields, tail = before.split(), after.split()
            if len(fields) < 5 or len(tail) < 3:
                continue
            root, point = fields[3], fields[4]
            if tail[0] == "cgroup2":
                v2 = (root, point)
            elif tail[0] == "cgroup":
                for option in tail[2].split(","):
                    if option in CONTROLLERS:
                        v1[option] = (root, point)
    return v1, v2


def _join(mount: tuple[str, str], path: str) -> str:
    root, point = mount
    relative = path[len(root):] if root != "/" and path.startswith(root) else path
    return os.path.normpath(point + "/" + relative.lstrip("/"))


def dirs_of(pid: int) -> list[str]:
    """The directories to write a PID into (cgroup.procs) to account it like process `pid`."""
    v1, v2 = _mounts()
    out: list[str] = []
    with open(f"/proc/{pid}/cgroup") as f:
        lines = f.read().splitlines()
    for line in lines:
        hier, controllers, path = line.split(":", 2)
        if hier == "0" and v2 is not None:
            directory = _join(v2, path)
            try:
                with open(os.path.join(directory, "cgroup.controllers")) as cf:
                    usable = CONTROLLERS & set(cf.read().split())
            except OSError:
                usable = set()
            if usable:
                out.append(directory)
            continue
        for controller in set(controllers.split(",")) & CONTROLLERS:
            if controller in v1:
                out.append(_join(v1[controller], path))
    return sorted(set(out))


def enter(directories: list[str]) -> None:
    """Moves the calling process into each directory; run in the child before exec."""
    for directory in directories:
        with open(os.path.join(directory, "cgroup.procs"), "w") as f:
            f.write(str(os.getpid()))

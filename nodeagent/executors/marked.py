"""The processes an executor starts for a fault (stress-ng, a DNS responder, an HTTP proxy, dd
workers, a FUSE server) carry MARKER=<the fault's short id> in their environment: that is how
recovery finds them after an agent restart, when no Popen object is left."""
from __future__ import annotations

import os

MARKER = "CHAOSPLANE_FAULT"


def marked(short: str) -> list[int]:
    """Live processes carrying MARKER=<short> (zombies have no environment and are not listed)."""
    found = []
    needle = f"{MARKER}={short}".encode()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/environ", "rb") as f:
                if needle in f.read().split(b"\0"):
                    found.append(int(entry))
        except OSError:
            continue
    return found


def gone(pid: int) -> bool:
    """Whether `pid` has exited (no such process, or a zombie nobody reaped yet)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return f.read().rsplit(b")", 1)[1].split()[0] in (b"Z", b"X")
    except (OSError, IndexError):
        return True

"""Packet delay without sch_netem: iptables sends the packets to an NFQUEUE, and a thread of the agent,
bound to that queue inside the target's namespace, holds each one for latency +- jitter, then
accepts it. The rules use --queue-bypass, so packets flow undelayed (not dropped) whenever no delayer
is bound, e.g. if the agent dies before recovering; the journal then removes the rules.

One thread per fault; it owns the queue's netlink socket and gives every verdict itself
(libnetfilter_queue's handle is not shared between threads).
"""
from __future__ import annotations

import heapq
import itertools
import random
import select
import threading
import time
from typing import Any

from .namespaces import setns

QUEUE_MAX_LEN = 8192  # packets held at once; 100 ms at ~80k packets/s

_active: dict[str, Delayer] = {}
_lock = threading.Lock()


def available() -> tuple[bool, str]:
    try:
        import netfilterqueue  # noqa: F401
    except ImportError as error:
        return False, f"python NetfilterQueue is not installed ({error})"
    return True, "NetfilterQueue delayer"


def queue_number(short: str) -> int:
    return 1024 + int(short[4:8], 16) % 60000


class Delayer:
    def __init__(self, netns: str | None, queue: int, latency_s: float, jitter_s: float) -> None:
        self.netns, self.queue, self.latency, self.jitter = netns, queue, latency_s, jitter_s
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._held: list[tuple[float, int, Any]] = []
        self._order = itertools.count()
        self._thread = threading.Thread(target=self._main, name=f"delayer:{queue}", daemon=True)

    def start(self) -> None:
        self._thread.start()
        self._ready.wait(10)
        if self._error is not None:
            raise self._error

    def _hold(self, packet: Any) -> None:
        delay = self.latency + (random.uniform(-self.jitter, self.jitter) if self.jitter else 0.0)  # noqa: S311
        heapq.heappush(self._held, (time.monotonic() + max(delay, 0.0), next(self._order), packet))

    def _release(self, now: float) -> None:
        while self._held and self._held[0][0] <= now:
            heapq.heappop(self._held)[2].accept()

    def _main(self) -> None:
        from netfilterqueue import COPY_META, NetfilterQueue

        try:
            if self.netns is not None:
                setns(self.netns)
            nfq = NetfilterQueue()
            # Only metadata is copied to userspace: the verdict needs the packet id, not its bytes.
            nfq.bind(self.queue, self._hold, max_len=QUEUE_MAX_LEN, mode=COPY_META)
        except BaseException as error:
            self._error = error
            self._ready.set()
            return
        self._ready.set()
        fd = nfq.get_fd()
        try:
            while not self._stop.is_set():
                timeout = 0.05
                if self._held:
                    timeout = min(timeout, max(self._held[0][0] - time.monotonic(), 0.0))
                readable, _, _ = select.select([fd], [], [], timeout)
                if readable:
                    nfq.run(block=False)
                self._release(time.monotonic())
        finally:
            # Held packets go on at once rather than being dropped by the unbind.
            self._release(float("inf"))
            nfq.unbind()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)


def start(fault: str, netns: str | None, queue: int, latency_s: float, jitter_s: float) -> None:
    with _lock:
        if fault in _active:
            return
        delayer = Delayer(netns, queue, latency_s, jitter_s)
        delayer.start()
        _active[fault] = delayer


def stop(fault: str) -> None:
    with _lock:
        delayer = _active.pop(fault, None)
    if delayer is not None:
        delayer.stop()


def running() -> list[str]:
    with _lock:
        return list(_active)

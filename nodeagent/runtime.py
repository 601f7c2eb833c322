"""The fault table: what this agent holds, and the guards that remove it without anyone asking.

- inject: journal first (planned), then the executor, then the journal again (active);
- recover: idempotent; an unknown or already recovered fault succeeds and does nothing;
- a timer recovers each fault at its absolute expiry by itself;
- the lease: when the gateway has not been heard from for longer than the lease, recover everything;
- on start, recover whatever the journal says a previous process left (before connecting anywhere).

Executor calls and journal writes are serialised by one lock; list() and counts read a snapshot.
Imports nothing from the Django side.
"""
from __future__ import annotations

import importlib
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from nodeagent.journal import Journal
from nodeagent.orders import FaultOrder, Refused

log = logging.getLogger("nodeagent.runtime")

RETRY_SECONDS = 5.0  # a recover that failed is tried again after this
MAX_WAIT = 0.5  # the timer wakes at least this often (wall-clock jumps, lease checks)


@dataclass(frozen=True)
class Held:
    order: FaultOrder
    detail: str = ""
    retry_at: float = 0.0  # wall clock; set when a recover failed and must be retried

    @property
    def fault_id(self) -> str:
        return self.order.fault_id


def default_executor() -> Any:
    return importlib.import_module("nodeagent.executors")


class Runtime:
    """`executor` has inject(order) -> str (raises Refused), recover(order) (idempotent) and
    capabilities() -> [(name, available, detail)]; default: the module nodeagent.executors."""

    def __init__(
        self,
        journal: Journal,
        executor: Any = None,
        *,
        lease: float = 30.0,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
        retry_seconds: float = RETRY_SECONDS,
    ) -> None:
        if lease <= 0:
            raise ValueError("lease must be positive")
        self.journal = journal
        self.executor = executor if executor is not None else default_executor()
        self.lease = float(lease)
        self.retry_seconds = retry_seconds
        self._clock = clock
        self._mono = monotonic
        self._ops = threading.RLock()  # executor calls and journal writes
        self._wake = threading.Condition()
        self._table: dict[str, Held] = {}
        self._snapshot: tuple[Held, ...] = ()
        self._last_contact = monotonic()
        self._lease_lapsed = False
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    # Life -------------------------------------------------------------------------------------------

    def start(self) -> list[str]:
        """Recover what a previous process left (per the journal), then start the timer. Returns the
        ids of the faults recovered. Call before connecting to the gateway."""
        left = self.recover_leftovers()
        self._thread = threading.Thread(target=self._run, name="fault-timer", daemon=True)
        self._thread.start()
        return left

    def close(self, *, recover: bool = True) -> None:
        """Stop the timer; with `recover` (the default) remove every held fault first: a stopped agent
        cannot enforce expiries, so it does not leave faults behind."""
        if recover:
            try:
                self.recover_all("agent stopping")
            except Exception:  # logged; the journal keeps it for the next start
                log.exception("some faults could not be recovered on stop; the next start retries them")
        self._stopping.set()
        with self._wake:
            self._wake.notify_all()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def recover_leftovers(self) -> list[str]:
        done = []
        with self._ops:
            for entry in self.journal.held():
                if entry.fault_id in self._table:
                    continue
                log.warning("recovering fault %s left %s by a previous agent process", entry.fault_id, entry.state)
                self._put(Held(entry.order))
                if self._recover_locked(entry.fault_id, "left by a previous agent process"):
                    done.append(entry.fault_id)
        return done

    # Contact and lease ------------------------------------------------------------------------------

    def touch(self, at: float | None = None) -> None:
        """The gateway was heard from (at monotonic time `at`, default now). Never moves backwards."""
        at = self._mono() if at is None else at
        with self._wake:
            if at > self._last_contact:
                self._last_contact = at
                if self._lease_lapsed and at + self.lease > self._mono():
                    self._lease_lapsed = False

    def set_lease(self, seconds: float) -> None:
        if seconds <= 0:
            raise ValueError("lease must be positive")
        with self._wake:
            self.lease = float(seconds)
            self._wake.notify_all()

    def lease_remaining(self) -> float:
        return self._last_contact + self.lease - self._mono()

    # Faults -----------------------------------------------------------------------------------------

    def inject(self, order: FaultOrder) -> str:
        """Journal the fault, apply it, return what was done. Raises Refused (nothing is left applied)."""
        if not order.fault_id:
            raise Refused("a fault needs an id")
        if order.expires_at <= self._clock():
            raise Refused(f"fault {order.fault_id}: its expiry has already passed; not applied")
        with self._ops:
            held = self._table.get(order.fault_id)
            if held is not None:
                if held.order == order:
                    return held.detail  # the same command again (a retry): already held
                raise Refused(f"fault {order.fault_id} is already held with other parameters")
            previous = self.journal.get(order.fault_id)
            if previous is not None and previous.activated:
                raise Refused(f"fault {order.fault_id} was already applied and recovered; use a new fault id")
            self.journal.plan(order)  # on disk before the executor sees it
            self._put(Held(order))
            try:
                detail = self.executor.inject(order)
            except BaseException as exc:
                self._undo_failed_inject(order, exc)
                if isinstance(exc, Refused):
                    raise
                if isinstance(exc, Exception):
                    raise Refused(f"fault {order.fault_id} could not be applied: {exc}") from exc
                raise
            detail = str(detail or "")
            self.journal.activate(order.fault_id, detail)
            self._put(Held(order, detail))
        with self._wake:
            self._wake.notify_all()
        return detail

    def recover(self, fault_id: str, reason: str = "asked") -> bool:
        """Undo a fault. True if it was held and is now recovered; False if there was nothing to do
        (unknown or already recovered). Raises if the executor failed (it is retried later)."""
        with self._ops:
            if fault_id not in self._table:
                return False
            if not self._recover_locked(fault_id, reason):
                raise RuntimeError(f"fault {fault_id} could not be recovered; retrying in {self.retry_seconds:g} s")
            return True

    def recover_all(self, reason: str = "asked") -> list[str]:
        """Undo every held fault; returns the ids recovered. Tries them all, then raises if any failed."""
        done, failed = [], []
        with self._ops:
            for fault_id in list(self._table):
                (done if self._recover_locked(fault_id, reason) else failed).append(fault_id)
        if failed:
            raise RuntimeError(f"could not recover {', '.join(failed)}; retrying in {self.retry_seconds:g} s")
        return done

    def list(self) -> list[Held]:
        return list(self._snapshot)

    def count(self) -> int:
        return len(self._snapshot)

    def capabilities(self) -> list[tuple[str, bool, str]]:
        return [(str(n), bool(a), str(d)) for n, a, d in self.executor.capabilities()]

    # Internals --------------------------------------------------------------------------------------

    def _put(self, held: Held) -> None:
        self._table[held.fault_id] = held
        self._snapshot = tuple(self._table.values())

    def _drop(self, fault_id: str) -> None:
        self._table.pop(fault_id, None)
        self._snapshot = tuple(self._table.values())

    def _undo_failed_inject(self, order: FaultOrder, exc: BaseException) -> None:
        try:
            self.executor.recover(order)  # whatever part of it was applied
        except Exception:
            log.exception("fault %s: cleanup after a failed inject failed; retrying", order.fault_id)
            self._put(Held(order, retry_at=self._clock() + self.retry_seconds))
            return
        self.journal.mark_recovered(order.fault_id, f"not applied: {exc}")
        self._drop(order.fault_id)

    def _recover_locked(self, fault_id: str, reason: str) -> bool:
        held = self._table.get(fault_id)
        if held is None:
            return True
        try:
            self.executor.recover(held.order)
        except Exception:  # kept held and journaled; retried by the timer
            log.exception("fault %s: recover failed (%s); retrying in %g s", fault_id, reason, self.retry_seconds)
            self._put(replace(held, retry_at=self._clock() + self.retry_seconds))
            return False
        self.journal.mark_recovered(fault_id, reason)
        self._drop(fault_id)
        log.info("fault %s recovered (%s)", fault_id, reason)
        return True

    @staticmethod
    def _due_at(held: Held) -> float:
        """When the timer must recover it: at its expiry, or (a recover failed) at the retry."""
        return held.retry_at or held.order.expires_at

    def _due(self) -> list[Held]:
        now = self._clock()
        return [h for h in self._snapshot if self._due_at(h) <= now]

    def _next_wait(self) -> float:
        now = self._clock()
        wait = MAX_WAIT
        for h in self._snapshot:
            wait = min(wait, self._due_at(h) - now)
        if self._snapshot:
            wait = min(wait, self.lease_remaining())
        return max(wait, 0.01)

    def _run(self) -> None:
        while not self._stopping.is_set():
            with self._wake:
                self._wake.wait(self._next_wait())
            if self._stopping.is_set():
                return
            try:
                self._tick()
            except Exception:  # the timer must keep running
                log.exception("fault timer")

    def _tick(self) -> None:
        for held in self._due():
            with self._ops:
                current = self._table.get(held.fault_id)
                if current is None or self._due_at(current) > self._clock():
                    continue
                reason = "expired" if not current.retry_at else "retry"
                self._recover_locked(held.fault_id, reason)
        if self._snapshot and self.lease_remaining() < 0:
            with self._ops:
                if not self._table or self.lease_remaining() >= 0:
                    return
                if not self._lease_lapsed:
                    log.warning(
                        "no contact with the gateway for over %g s (the lease): recovering every fault", self.lease
                    )
                self._lease_lapsed = True
                for fault_id in list(self._table):
                    if self._table[fault_id].retry_at <= self._clock():
                        self._recover_locked(fault_id, "lease expired")

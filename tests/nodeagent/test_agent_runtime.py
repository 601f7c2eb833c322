"""The fault table, in process, with a real journal and an executor that writes marker files."""
from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path

import pytest

from nodeagent.journal import ACTIVE, PLANNED, RECOVERED, Journal
from nodeagent.orders import FaultOrder, Refused, Target
from nodeagent.runtime import Runtime
from tests.nodeagent.agent_harness import MarkerExecutor, wait_for


def order(fault_id: str, expires_in: float = 60.0, action: str = "loss") -> FaultOrder:
    return FaultOrder(
        fault_id=fault_id,
        kind="NetworkChaos",
        action=action,
        params={"loss": {"loss": "30"}, "direction": "to", "externalTargets": ["10.250.0.2"]},
        target=Target(kind="process", pid=1),
        expires_at=time.time() + expires_in,
    )


def state_on_disk(db: Path, fault_id: str) -> str | None:
    """The journal row's state, read through a separate connection (what a new process would see)."""
    with sqlite3.connect(db) as conn:
        row = conn.execute("SELECT state FROM faults WHERE fault_id = ?", (fault_id,)).fetchone()
    return row[0] if row else None


@pytest.fixture
def world(tmp_path: Path):
    runtimes: list[Runtime] = []
    journals: list[Journal] = []
    executor = MarkerExecutor(tmp_path / "markers")
    db = tmp_path / "state" / "journal.sqlite3"

    def make(lease: float = 30.0, start: bool = True) -> Runtime:
        journal = Journal(db)
        runtime = Runtime(journal, executor, lease=lease)
        journals.append(journal)
        runtimes.append(runtime)
        if start:
            runtime.start()
        return runtime

    yield make, executor, db
    for runtime in runtimes:
        runtime.close(recover=False)
    for journal in journals:
        journal.close()


def test_the_journal_has_the_fault_before_the_executor_sees_it(world) -> None:
    make, executor, db = world
    runtime = make()
    seen: dict[str, str | None] = {}
    executor.on_inject = lambda o: seen.setdefault(o.fault_id, state_on_disk(db, o.fault_id))

    assert runtime.inject(order("f1")) == "marker f1"

    assert seen == {"f1": PLANNED}  # durable, from another connection, before anything was applied
    assert state_on_disk(db, "f1") == ACTIVE
    assert executor.markers() == {"f1"}
    assert [h.fault_id for h in runtime.list()] == ["f1"]
    assert runtime.journal.pragma("journal_mode") == "wal"
    assert runtime.journal.pragma("synchronous") == 2  # FULL
    assert (db.stat().st_mode & 0o777) == 0o600

    assert runtime.recover("f1") is True
    assert executor.markers() == set()
    assert state_on_disk(db, "f1") == RECOVERED
    assert runtime.list() == []


def test_expiry_recovers_by_itself(world) -> None:
    make, executor, db = world
    runtime = make()
    runtime.inject(order("short", expires_in=0.4))
    runtime.inject(order("long", expires_in=60))
    assert executor.markers() == {"short", "long"}

    wait_for(lambda: executor.markers() == {"long"}, timeout=3, what="the expiry")

    assert state_on_disk(db, "short") == RECOVERED
    assert state_on_disk(db, "long") == ACTIVE
    assert [h.fault_id for h in runtime.list()] == ["long"]


def test_recover_of_unknown_or_recovered_succeeds_and_does_nothing(world) -> None:
    make, executor, db = world
    runtime = make()
    assert runtime.recover("never-seen") is False
    runtime.inject(order("f1"))
    assert runtime.recover("f1") is True
    calls = list(executor.calls)

    assert runtime.recover("f1") is False
    assert runtime.recover_all() == []
    assert executor.calls == calls  # the executor was not called again
    assert state_on_disk(db, "never-seen") is None


def test_a_fault_whose_expiry_has_passed_is_refused(world) -> None:
    make, executor, db = world
    runtime = make()
    with pytest.raises(Refused, match="expiry has already passed"):
        runtime.inject(order("late", expires_in=-1))
    assert executor.calls == []
    assert state_on_disk(db, "late") is None


def test_a_refused_fault_is_cleaned_up_and_journaled_as_recovered(world) -> None:
    make, executor, db = world
    runtime = make()
    with pytest.raises(Refused, match="cannot do 'refuse'"):
        runtime.inject(order("nope", action="refuse"))
    assert executor.calls == [("inject", "nope"), ("recover", "nope")]  # whatever part of it was applied
    assert state_on_disk(db, "nope") == RECOVERED
    assert runtime.list() == []


def test_the_same_inject_again_is_held_once_and_a_recovered_id_is_not_reapplied(world) -> None:
    make, executor, db = world
    runtime = make()
    first = order("f1")
    runtime.inject(first)
    assert runtime.inject(first) == "marker f1"  # a retried command: already held
    assert executor.calls == [("inject", "f1")]
    with pytest.raises(Refused, match="already held"):
        runtime.inject(order("f1", expires_in=120))
    runtime.recover("f1")
    with pytest.raises(Refused, match="already applied and recovered"):
        runtime.inject(first)
    assert executor.markers() == set()


def test_losing_the_lease_recovers_everything(world) -> None:
    make, executor, db = world
    runtime = make(lease=1.0)
    runtime.inject(order("a"))
    runtime.inject(order("b"))

    # Contact keeps the faults...
    until = time.monotonic() + 1.6
    while time.monotonic() < until:
        runtime.touch()
        time.sleep(0.1)
    assert executor.markers() == {"a", "b"}

    # ...and its absence removes them all once the lease has run out, not before.
    silent_since = time.monotonic()
    wait_for(lambda: executor.markers() == set(), timeout=3, what="the lease")
    assert time.monotonic() - silent_since >= 0.9
    # The journal is written just after each executor returns: wait for it, do not race it.
    wait_for(lambda: {state_on_disk(db, f) for f in ("a", "b")} == {RECOVERED}, timeout=3, what="the journal")
    assert runtime.list() == []


def test_on_start_whatever_a_previous_process_left_is_recovered(world) -> None:
    make, executor, db = world
    dead = make(start=False)  # a process that died holding faults: its journal says so
    dead.inject(order("a"))
    dead.inject(order("b"))
    dead.journal.plan(order("c"))  # died between journaling and applying
    assert executor.markers() == {"a", "b"}

    fresh = make(start=False)
    left = fresh.start()

    assert sorted(left) == ["a", "b", "c"]
    assert executor.markers() == set()
    assert {state_on_disk(db, f) for f in ("a", "b", "c")} == {RECOVERED}
    assert fresh.list() == []


def test_concurrent_injects_and_recovers_are_consistent(world) -> None:
    make, executor, db = world
    runtime = make()
    errors: list[BaseException] = []

    def work(n: int) -> None:
        try:
            for i in range(10):
                runtime.inject(order(f"t{n}-{i}"))
                if i % 2:
                    runtime.recover(f"t{n}-{i}")
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    assert errors == []
    expected = {f"t{n}-{i}" for n in range(6) for i in range(0, 10, 2)}
    assert {h.fault_id for h in runtime.list()} == expected
    assert executor.markers() == expected
    assert {e.fault_id for e in runtime.journal.held()} == expected


def test_a_recover_that_fails_is_kept_and_retried(tmp_path: Path) -> None:
    executor = MarkerExecutor(tmp_path / "markers")
    real_recover, failures = executor.recover, []

    def flaky(o: FaultOrder) -> None:
        if len(failures) < 1:
            failures.append(o.fault_id)
            raise OSError("tc: device busy")
        real_recover(o)

    executor.recover = flaky  # type: ignore[method-assign]
    journal = Journal(tmp_path / "journal.sqlite3")
    runtime = Runtime(journal, executor, retry_seconds=0.2)
    runtime.start()
    try:
        runtime.inject(order("f1"))
        with pytest.raises(RuntimeError, match="could not be recovered"):
            runtime.recover("f1")
        assert [h.fault_id for h in runtime.list()] == ["f1"]  # still held, still journaled
        assert state_on_disk(tmp_path / "journal.sqlite3", "f1") == ACTIVE

        wait_for(lambda: executor.markers() == set(), timeout=3, what="the retry")
        assert state_on_disk(tmp_path / "journal.sqlite3", "f1") == RECOVERED
        assert runtime.list() == []
    finally:
        runtime.close(recover=False)
        journal.close()

"""The agent's journal: every fault is written to disk BEFORE it is applied, so that a process that
dies (SIGKILL, OOM, power loss) leaves behind a record of what to undo, and the next one undoes it.

One SQLite table, states planned -> active -> recovered. WAL with synchronous=FULL: a row is on
disk when plan() returns. Imports nothing from the Django side.
"""
from __future__ import annotations

import os
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from nodeagent.orders import FaultOrder

PLANNED = "planned"  # journaled; the executor may have started applying it
ACTIVE = "active"  # the executor applied it
RECOVERED = "recovered"  # undone (or never applied)
HELD = (PLANNED, ACTIVE)

SCHEMA = """
CREATE TABLE IF NOT EXISTS faults (
    fault_id     TEXT PRIMARY KEY,
    state        TEXT NOT NULL CHECK (state IN ('planned', 'active', 'recovered')),
    order_json   TEXT NOT NULL,
    expires_at   REAL NOT NULL,
    planned_at   REAL NOT NULL,
    activated_at REAL,
    recovered_at REAL,
    note         TEXT NOT NULL DEFAULT ''
)
"""


@dataclass(frozen=True)
class Entry:
    fault_id: str
    state: str
    order: FaultOrder
    expires_at: float
    activated: bool
    note: str


class Journal:
    """Thread-safe; one connection guarded by a lock (the agent writes a few rows a minute)."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        if not self.path.exists():
            os.close(os.open(self.path, os.O_CREAT | os.O_WRONLY, 0o600))
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False, timeout=10)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.execute(SCHEMA)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def pragma(self, name: str) -> object:
        if name not in ("journal_mode", "synchronous"):
            raise ValueError(f"not a pragma the journal reports: {name}")
        with self._lock:
            return self._db.execute(f"PRAGMA {name}").fetchone()[0]

    # Writes -----------------------------------------------------------------------------------------

    def plan(self, order: FaultOrder) -> None:
        """Record a fault as planned (before anything is applied). Replaces a row of the same id only
        if that one was never applied (a retried inject after a refusal)."""
        with self._lock:
            self._db.execute(
                "INSERT INTO faults (fault_id, state, order_json, expires_at, planned_at) VALUES (?, ?, ?, ?, ?)"
                " ON CONFLICT (fault_id) DO UPDATE SET state = excluded.state, order_json = excluded.order_json,"
                " expires_at = excluded.expires_at, planned_at = excluded.planned_at, recovered_at = NULL,"
                " note = '' WHERE activated_at IS NULL AND state = 'recovered'",
                (order.fault_id, PLANNED, order.to_json(), order.expires_at, time.time()),
            )

    def activate(self, fault_id: str, note: str = "") -> None:
        with self._lock:
            self._db.execute(
                "UPDATE faults SET state = ?, activated_at = ?, note = ? WHERE fault_id = ? AND state = ?",
                (ACTIVE, time.time(), note, fault_id, PLANNED),
            )

    def mark_recovered(self, fault_id: str, note: str = "") -> None:
        with self._lock:
            self._db.execute(
                "UPDATE faults SET state = ?, recovered_at = ?, note = ? WHERE fault_id = ? AND state != ?",
                (RECOVERED, time.time(), note, fault_id, RECOVERED),
            )

    def prune(self, older_than_seconds: float = 7 * 86400) -> int:
        """Forget recovered faults recovered longer ago than this; returns how many rows went."""
        with self._lock:
            cur = self._db.execute(
                "DELETE FROM faults WHERE state = ? AND recovered_at < ?",
                (RECOVERED, time.time() - older_than_seconds),
            )
            return cur.rowcount

    # Reads ------------------------------------------------------------------------------------------

    def get(self, fault_id: str) -> Entry | None:
        with self._lock:
            row = self._db.execute(
                "SELECT fault_id, state, order_json, expires_at, activated_at, note FROM faults WHERE fault_id = ?",
                (fault_id,),
            ).fetchone()
        return _entry(row) if row else None

    def held(self) -> list[Entry]:
        """Faults planned or active: what a process that stops now would leave applied."""
        with self._lock:
            rows = self._db.execute(
                "SELECT fault_id, state, order_json, expires_at, activated_at, note FROM faults"
                " WHERE state IN (?, ?) ORDER BY planned_at",
                HELD,
            ).fetchall()
        return [_entry(row) for row in rows]

    active = held


def _entry(row: tuple) -> Entry:
    fault_id, state, order_json, expires_at, activated_at, note = row
    return Entry(fault_id, state, FaultOrder.from_json(order_json), expires_at, activated_at is not None, note)

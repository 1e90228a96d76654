"""SQLite persistence for the console (``--db PATH``): a restart loses nothing.

Every accepted export request is kept as its protobuf body, in arrival order,
and replayed into a fresh store at start (in batches, while the console
already serves: see ``Console.replay``): the store's aggregates are a
function of what arrived, so replay rebuilds exactly the same state
(counter baselines included).  Requests older than the longest window, and the
oldest beyond ``max_bytes``, are deleted.  Acknowledgements are kept too, and
the alerts' state and history, so a firing alert keeps its "since".
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Iterator
from typing import Any

_SCHEMA = """
CREATE TABLE IF NOT EXISTS requests (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    received_ns INTEGER NOT NULL,
    signal TEXT NOT NULL,
    body BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS acknowledgements (
    alert_id TEXT PRIMARY KEY,
    at_ms INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS alert_state (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    body TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS resolved_alerts (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    body TEXT NOT NULL
);
"""
# Resolved alerts kept in the file; the console shows the newest of them.
KEEP_RESOLVED = 1000
RETENTION_NS = 24 * 3600 * 1_000_000_000


class RequestLog:
    """The export requests the console accepted, in a SQLite file."""

    def __init__(self, path: str, max_bytes: int = 512 * 1024 * 1024) -> None:
        self.path = path
        self.max_bytes = max_bytes
        # One connection shared by the server's threads, serialised by a lock.
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._lock = threading.Lock()
        with self._lock:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.executescript(_SCHEMA)
        self._bytes = self._db.execute("SELECT COALESCE(SUM(LENGTH(body)), 0) FROM requests").fetchone()[0]
        self._writes = 0

    def append(self, signal: str, body: bytes) -> None:
        with self._lock:
            self._db.execute(
                "INSERT INTO requests (received_ns, signal, body) VALUES (?, ?, ?)", (time.time_ns(), signal, body)
            )
            self._bytes += len(body)
            self._writes += 1
            if self._bytes > self.max_bytes or self._writes % 1000 == 0:
                self._trim()

    def _trim(self) -> None:
        self._db.execute("DELETE FROM requests WHERE received_ns < ?", (time.time_ns() - RETENTION_NS,))
        while True:
            self._bytes = self._db.execute("SELECT COALESCE(SUM(LENGTH(body)), 0) FROM requests").fetchone()[0]
            if self._bytes <= self.max_bytes:
                return
            self._db.execute("DELETE FROM requests WHERE id IN (SELECT id FROM requests ORDER BY id LIMIT 100)")

    def after(self, last_id: int, limit: int = 64) -> list[tuple[int, int, str, bytes]]:
        """Up to ``limit`` kept requests stored after ``last_id``, as (id, received_ns, signal, body), oldest first.

        A replay reads the table in such batches, never all of it: memory stays
        that of one batch whatever the file's size, and requests appended
        meanwhile come in later batches.
        """
        with self._lock:
            return self._db.execute(
                "SELECT id, received_ns, signal, body FROM requests WHERE id > ? ORDER BY id LIMIT ?", (last_id, limit)
            ).fetchall()

    def count(self) -> int:
        with self._lock:
            return int(self._db.execute("SELECT COUNT(*) FROM requests").fetchone()[0])

    def replay(self) -> Iterator[tuple[int, str, bytes]]:
        """Every kept request as (received_ns, signal, body), oldest first, read in batches."""
        last = 0
        while batch := self.after(last):
            for row_id, received_ns, signal, body in batch:
                last = row_id
                yield received_ns, signal, body

    def acknowledge(self, alert_id: str, at_ms: int) -> None:
        with self._lock:
            self._db.execute("INSERT OR REPLACE INTO acknowledgements VALUES (?, ?)", (alert_id, at_ms))

    def save_alert_state(self, state: dict[str, Any]) -> None:
        """The alerts' current state (pending and firing rules, firing alerts and their "since")."""
        with self._lock:
            self._db.execute("INSERT OR REPLACE INTO alert_state VALUES (1, ?)", (json.dumps(state),))

    def alert_state(self) -> dict[str, Any]:
        with self._lock:
            row = self._db.execute("SELECT body FROM alert_state WHERE id = 1").fetchone()
        try:
            state = json.loads(row[0]) if row else {}
        except ValueError:
            return {}
        return state if isinstance(state, dict) else {}

    def append_resolved_alert(self, alert: dict[str, Any]) -> None:
        with self._lock:
            self._db.execute("INSERT INTO resolved_alerts (body) VALUES (?)", (json.dumps(alert),))
            self._db.execute(
                "DELETE FROM resolved_alerts WHERE id <= (SELECT MAX(id) FROM resolved_alerts) - ?", (KEEP_RESOLVED,)
            )

    def resolved_alerts(self, limit: int = KEEP_RESOLVED) -> list[dict[str, Any]]:
        """Resolved alerts, newest first."""
        with self._lock:
            rows = self._db.execute("SELECT body FROM resolved_alerts ORDER BY id DESC LIMIT ?", (limit,)).fetchall()
        out = []
        for (body,) in rows:
            try:
                alert = json.loads(body)
            except ValueError:
                continue
            if isinstance(alert, dict):
                out.append(alert)
        return out

    def acknowledgements(self) -> dict[str, int]:
        with self._lock:
            return dict(self._db.execute("SELECT alert_id, at_ms FROM acknowledgements").fetchall())

    def close(self) -> None:
        with self._lock:
            self._db.close()

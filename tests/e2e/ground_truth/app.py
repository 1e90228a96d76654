"""The ground-truth app: FastAPI + SQLAlchemy (SQLite), each route doing a known amount of work.

Every answer carries ``Server-Timing: work;dur=<ms>``: the time the handler
itself spent, measured inside it.  A request's server span lasts at least that
long and at most what the client measured, so the client can bound the true
span duration from both sides.  ``/items/{id}`` also reports its query:
``query;dur=`` is the DBAPI ``cursor.execute`` alone (within the query span)
and ``execute;dur=`` the whole ``Connection.execute`` (around it).
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse
from sqlalchemy import create_engine, text

_last_query = threading.local()  # sync routes run on worker threads: one query at a time per thread


class _TimedCursor(sqlite3.Cursor):
    """Times the DBAPI call itself: the innermost part of the query span."""

    def execute(self, sql: str, parameters: Any = (), /) -> _TimedCursor:
        started = time.perf_counter()
        try:
            return super().execute(sql, parameters)
        finally:
            _last_query.seconds = time.perf_counter() - started


class _TimedConnection(sqlite3.Connection):
    def cursor(self, factory: Any = _TimedCursor) -> Any:
        return super().cursor(factory)


# A file, not ":memory:": each pooled connection to an in-memory SQLite is a database of its own.
_DEFAULT_DB = Path(tempfile.gettempdir()) / f"ground-truth-{os.getpid()}.db"
engine = create_engine(
    os.environ.get("GT_DATABASE_URL", f"sqlite:///{_DEFAULT_DB}"), connect_args={"factory": _TimedConnection}
)
with engine.begin() as conn:
    conn.execute(text("CREATE TABLE IF NOT EXISTS items (id INTEGER PRIMARY KEY, name TEXT)"))
    conn.execute(text("INSERT OR REPLACE INTO items (id, name) VALUES (1, 'hat'), (2, 'scarf'), (3, 'glove')"))

app = FastAPI()


def _timing(**parts: float) -> dict[str, str]:
    return {"Server-Timing": ", ".join(f"{name};dur={seconds * 1000:.6f}" for name, seconds in parts.items())}


@app.get("/health")
def health() -> dict[str, str]:
    return {"status": "up"}


@app.get("/work")
async def work(ms: float = 0.0, status: int = 200) -> Response:
    """Sleeps ``ms`` milliseconds and answers ``status``."""
    started = time.perf_counter()
    if ms > 0:
        await asyncio.sleep(ms / 1000)
    return JSONResponse({"status": status}, status_code=status, headers=_timing(work=time.perf_counter() - started))


@app.get("/slow")
async def slow(ms: float = 2500.0) -> Response:
    """One operation of its own for the slow request."""
    started = time.perf_counter()
    await asyncio.sleep(ms / 1000)
    return JSONResponse({"ok": True}, headers=_timing(work=time.perf_counter() - started))


@app.get("/items/{item_id}")
def item(item_id: int) -> Response:
    started = time.perf_counter()
    with engine.connect() as connection:
        before = time.perf_counter()
        row = connection.execute(text("SELECT id, name FROM items WHERE id = :id"), {"id": item_id}).first()
        execute = time.perf_counter() - before
        query = getattr(_last_query, "seconds", 0.0)
    if row is None:
        return JSONResponse(
            {"detail": "no such item"},
            status_code=404,
            headers=_timing(work=time.perf_counter() - started, query=query, execute=execute),
        )
    return JSONResponse(
        {"id": row.id, "name": row.name},
        headers=_timing(work=time.perf_counter() - started, query=query, execute=execute),
    )


@app.get("/private")
def private(request: Request) -> Response:
    """401 without a token, as a login wall would."""
    started = time.perf_counter()
    if request.headers.get("authorization") != "Bearer ok":
        return JSONResponse(
            {"detail": "unauthorized"}, status_code=401, headers=_timing(work=time.perf_counter() - started)
        )
    return JSONResponse({"ok": True}, headers=_timing(work=time.perf_counter() - started))

"""A small FastAPI + SQLAlchemy app for launcher tests (engine created at import time)."""

from __future__ import annotations

import logging
import os

from fastapi import FastAPI, HTTPException
from sqlalchemy import create_engine, text

engine = create_engine(os.environ.get("APP_DATABASE_URL", "sqlite:///:memory:"))
with engine.begin() as conn:
    conn.execute(text("CREATE TABLE IF NOT EXISTS items (id INTEGER PRIMARY KEY, name TEXT)"))
    conn.execute(text("INSERT OR REPLACE INTO items (id, name) VALUES (1, 'hat'), (2, 'scarf')"))

log = logging.getLogger("basic_app")
log.setLevel(logging.INFO)
app = FastAPI()


@app.get("/ping")
def ping() -> dict[str, bool]:
    return {"ok": True}


@app.get("/items/{item_id}")
def get_item(item_id: int) -> dict[str, object]:
    with engine.connect() as conn:
        row = conn.execute(text("SELECT id, name FROM items WHERE id = :id"), {"id": item_id}).first()
    if row is None:
        raise HTTPException(status_code=404, detail="no such item")
    log.info("served item %s", item_id)
    return {"id": row.id, "name": row.name}


@app.get("/items/{item_id}/broken")
def get_item_then_fail(item_id: int) -> None:
    """Reads the item, then fails: a request with a query span that is kept even when not sampled."""
    with engine.connect() as conn:
        conn.execute(text("SELECT id, name FROM items WHERE id = :id"), {"id": item_id}).first()
    raise RuntimeError("the item broke")


@app.get("/boom")
def boom() -> None:
    raise RuntimeError("kaboom")


@app.get("/health")
def health() -> dict[str, str]:
    return {"status": "up"}


@app.get("/whoami")
def whoami() -> dict[str, object]:
    """The worker's pid and the service.instance.id its telemetry carries."""
    import time

    from opentelemetry import trace

    time.sleep(0.05)  # long enough that concurrent requests spread over workers
    resource = getattr(trace.get_tracer_provider(), "resource", None)
    instance = resource.attributes.get("service.instance.id") if resource is not None else None
    return {"pid": os.getpid(), "instance": instance}


@app.get("/async-work/{n}")
async def async_work(n: int) -> dict[str, int]:
    """An async endpoint with a named operation inside: tasks interleave on the event loop."""
    import asyncio

    import otel_monitor

    async with otel_monitor.operation("async_work"):
        await asyncio.sleep(0.001 * (n % 3))
    return {"n": n}


@app.get("/sync-work/{n}")
def sync_work(n: int) -> dict[str, int]:
    """A sync endpoint (thread pool) with a named operation inside."""
    import time

    import otel_monitor

    with otel_monitor.operation("sync_work"):
        time.sleep(0.001 * (n % 3))
    return {"n": n}


@app.get("/request-path")
def request_path() -> dict[str, str]:
    """Which object serves FastAPI's request telemetry in this process."""
    return {"served_by": type(app._native_telemetry).__name__}

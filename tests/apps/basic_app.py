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


@app.get("/boom")
def boom() -> None:
    raise RuntimeError("kaboom")


@app.get("/health")
def health() -> dict[str, str]:
    return {"status": "up"}

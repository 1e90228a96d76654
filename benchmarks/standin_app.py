"""A stand-in for the example shop: one trivial and one database endpoint.

Used by the benchmark when `examples.shop` is not importable. Only FastAPI,
SQLAlchemy and the standard library: it must run unchanged in the vanilla
OpenTelemetry venv, which does not have otel-monitor.
"""

from __future__ import annotations

import atexit
import logging
import os
import tempfile
from pathlib import Path

from fastapi import FastAPI, HTTPException
from sqlalchemy import Integer, String, create_engine, select
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

log = logging.getLogger("standin")

# One SQLite file per process: uvicorn runs one worker, and the file must not be
# shared with a concurrently starting server of another configuration.
_DB_PATH = Path(os.environ.get("BENCH_STANDIN_DB") or tempfile.gettempdir()) / f"bench-standin-{os.getpid()}.db"


class Base(DeclarativeBase):
    pass


class Product(Base):
    __tablename__ = "products"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    price_cents: Mapped[int] = mapped_column(Integer)


engine = create_engine(f"sqlite:///{_DB_PATH}", connect_args={"check_same_thread": False})


def _seed() -> None:
    _DB_PATH.unlink(missing_ok=True)
    Base.metadata.create_all(engine)
    with Session(engine) as session:
        session.add_all(Product(id=n, name=f"product {n}", price_cents=100 * n) for n in range(1, 101))
        session.commit()


_seed()
atexit.register(_DB_PATH.unlink, missing_ok=True)
app = FastAPI()


@app.get("/ping")
async def ping() -> dict[str, str]:
    return {"status": "ok"}


@app.get("/api/products/{product_id}")
def product(product_id: int) -> dict[str, object]:
    with Session(engine) as session:
        row = session.execute(select(Product).where(Product.id == product_id)).scalar_one_or_none()
    if row is None:
        raise HTTPException(status_code=404, detail="no such product")
    # One INFO record per request, as a real handler would log; it only costs
    # something where a logging bridge listens at INFO.
    log.info("product served", extra={"product_id": product_id})
    return {"id": row.id, "name": row.name, "price_cents": row.price_cents}

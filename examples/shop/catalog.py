"""The catalog: product listings behind an in-process cache with a time-to-live.

Listings change rarely and are read on every browse, so they are served from
memory for ``SHOP_CATALOG_TTL`` seconds; stock shown there may be that old, and
checkout checks the real stock.  Every lookup reports hit or miss.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

import otel_monitor

from .db import Product

CACHE_NAME = "catalog"


@dataclass(frozen=True)
class ProductView:
    id: int
    sku: str
    name: str
    category: str
    price_cents: int
    in_stock: bool

    @classmethod
    def of(cls, product: Product) -> ProductView:
        return cls(
            id=product.id,
            sku=product.sku,
            name=product.name,
            category=product.category,
            price_cents=product.price_cents,
            in_stock=product.stock > 0,
        )


class CatalogCache:
    """Listings per category (``None`` = all), each kept for ``ttl`` seconds."""

    def __init__(self, ttl: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl = ttl
        self._clock = clock
        self._entries: dict[str | None, tuple[float, list[ProductView]]] = {}
        self._lock = threading.Lock()

    def listing(self, session: Session, category: str | None) -> list[ProductView]:
        now = self._clock()
        with self._lock:
            entry = self._entries.get(category)
        hit = entry is not None and now - entry[0] < self.ttl
        otel_monitor.cache_lookup(CACHE_NAME, hit)
        if hit:
            assert entry is not None
            return entry[1]
        # Two threads missing at once both load; cheaper than making browsers wait on a lock.
        products = load_listing(session, category)
        with self._lock:
            self._entries[category] = (now, products)
        return products

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()


@otel_monitor.operation("catalog_load")
def load_listing(session: Session, category: str | None) -> list[ProductView]:
    query = select(Product).order_by(Product.category, Product.id)
    if category is not None:
        query = query.where(Product.category == category)
    return [ProductView.of(product) for product in session.scalars(query)]

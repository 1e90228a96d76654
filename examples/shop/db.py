"""The shop's database: SQLAlchemy models, the engine, and the seed catalog.

SQLite (a file) by default, PostgreSQL when ``DATABASE_URL`` names one.  Sessions
are synchronous, used from ``def`` endpoints that FastAPI runs in its thread pool,
as most FastAPI + SQLAlchemy services do.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    Boolean,
    DateTime,
    Engine,
    ForeignKey,
    Integer,
    String,
    UniqueConstraint,
    create_engine,
    event,
    func,
    select,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, relationship, sessionmaker

from .settings import ShopSettings


def utcnow() -> datetime:
    return datetime.now(UTC)


class Base(DeclarativeBase):
    pass


class User(Base):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(String(254), unique=True)
    name: Mapped[str] = mapped_column(String(100))
    password_hash: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    last_login_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # When the user first reached each journey step: the shop decides "first" itself.
    first_browse_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    first_add_to_cart_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    first_purchase_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class AuthToken(Base):
    __tablename__ = "auth_tokens"

    token: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    user: Mapped[User] = relationship()


class Product(Base):
    __tablename__ = "products"

    id: Mapped[int] = mapped_column(primary_key=True)
    sku: Mapped[str] = mapped_column(String(32), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    category: Mapped[str] = mapped_column(String(50), index=True)
    price_cents: Mapped[int] = mapped_column(Integer)
    stock: Mapped[int] = mapped_column(Integer)


class CartItem(Base):
    __tablename__ = "cart_items"
    __table_args__ = (UniqueConstraint("user_id", "product_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    product_id: Mapped[int] = mapped_column(ForeignKey("products.id"))
    quantity: Mapped[int] = mapped_column(Integer)
    product: Mapped[Product] = relationship()


class Coupon(Base):
    __tablename__ = "coupons"

    code: Mapped[str] = mapped_column(String(32), primary_key=True)
    # Exactly one of the two is meant to be set; old imported coupons have neither.
    percent_off: Mapped[int | None] = mapped_column(Integer)
    amount_off_cents: Mapped[int | None] = mapped_column(Integer)
    active: Mapped[bool] = mapped_column(Boolean, default=True)


class Order(Base):
    __tablename__ = "orders"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    status: Mapped[str] = mapped_column(String(20))  # pending, paid, failed, refunded
    total_cents: Mapped[int] = mapped_column(Integer)
    coupon_code: Mapped[str | None] = mapped_column(String(32))
    payment_provider: Mapped[str | None] = mapped_column(String(20))
    payment_reference: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    lines: Mapped[list[OrderLine]] = relationship(back_populates="order", cascade="all, delete-orphan")


class OrderLine(Base):
    __tablename__ = "order_lines"

    id: Mapped[int] = mapped_column(primary_key=True)
    order_id: Mapped[int] = mapped_column(ForeignKey("orders.id"), index=True)
    product_id: Mapped[int] = mapped_column(ForeignKey("products.id"))
    quantity: Mapped[int] = mapped_column(Integer)
    unit_price_cents: Mapped[int] = mapped_column(Integer)
    order: Mapped[Order] = relationship(back_populates="lines")


def make_engine(settings: ShopSettings) -> Engine:
    url = settings.database_url
    kwargs: dict[str, Any] = {"pool_pre_ping": False}
    if url.startswith("sqlite"):
        # FastAPI runs def endpoints in worker threads; each checks out its own connection.
        kwargs["connect_args"] = {"check_same_thread": False, "timeout": 15}
    if url not in ("sqlite://", "sqlite:///:memory:"):
        kwargs["pool_size"] = settings.db_pool_size
        kwargs["max_overflow"] = settings.db_max_overflow
    engine = create_engine(url, **kwargs)
    if url.startswith("sqlite"):
        event.listen(engine, "connect", _tune_sqlite)
    return engine


def _tune_sqlite(dbapi_connection: Any, _record: Any) -> None:
    # WAL lets readers proceed while a checkout writes; without it browsing stalls.
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def make_session_factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)


# (sku, name, category, price in cents, stock)
CATALOG: tuple[tuple[str, str, str, int, int], ...] = (
    ("TEE-001", "Organic cotton tee", "clothing", 1900, 5000),
    ("TEE-002", "Striped long-sleeve tee", "clothing", 2900, 5000),
    ("HOO-001", "Heavyweight hoodie", "clothing", 5900, 3000),
    ("JKT-001", "Waxed field jacket", "clothing", 18900, 800),
    ("JNS-001", "Selvedge denim jeans", "clothing", 9900, 1500),
    ("SNK-001", "Canvas sneakers", "shoes", 6500, 2000),
    ("BOT-001", "Leather chelsea boots", "shoes", 15900, 600),
    ("SND-001", "Trail sandals", "shoes", 4900, 1200),
    ("BAG-001", "Roll-top backpack", "accessories", 8900, 900),
    ("CAP-001", "Six-panel cap", "accessories", 2500, 4000),
    ("SCF-001", "Merino scarf", "accessories", 3900, 1500),
    ("WAL-001", "Card wallet", "accessories", 2900, 2500),
    ("MUG-001", "Enamel camping mug", "home", 1500, 6000),
    ("CDL-001", "Cedar candle", "home", 2200, 3000),
    ("BLK-001", "Wool throw blanket", "home", 11900, 400),
    ("PLN-001", "Ceramic planter", "home", 3400, 1800),
    # Sold out: adding it to a cart is refused with 409.
    ("LTD-001", "Limited edition print", "home", 4500, 0),
)

COUPONS: tuple[tuple[str, int | None, int | None], ...] = (
    ("WELCOME10", 10, None),
    ("SPRING5", None, 500),
    # Imported from the previous shop system without a discount value.
    ("LEGACY2019", None, None),
)


def create_schema(engine: Engine) -> None:
    """Create the tables and seed the catalog and coupons when the database is empty."""
    Base.metadata.create_all(engine)
    with Session(engine) as session, session.begin():
        if session.scalar(select(func.count()).select_from(Product)):
            return
        session.add_all(
            Product(sku=sku, name=name, category=category, price_cents=price, stock=stock)
            for sku, name, category, price, stock in CATALOG
        )
        session.add_all(
            Coupon(code=code, percent_off=percent, amount_off_cents=amount) for code, percent, amount in COUPONS
        )

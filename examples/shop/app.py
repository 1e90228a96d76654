"""The shop's HTTP API.

Run it as users run their services::

    opentelemetry-instrument --service_name shop uvicorn examples.shop.app:app

``GET /ping`` and ``GET /api/products/{id}`` are what the benchmarks measure:
the first touches nothing, the second runs one query by primary key, uncached.

``GET /health`` (liveness) and ``GET /health/detailed`` (readiness: the
database, critical, and the payment provider, not critical, checked in the
background) come from otel-monitor and work without the launcher too.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import asdict, dataclass
from typing import Annotated, Any

from fastapi import Depends, FastAPI, HTTPException, Query, Response
from pydantic import BaseModel, Field
from sqlalchemy import Engine, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.orm.exc import StaleDataError

import otel_monitor
from otel_monitor import business

from .auth import current_user, get_session, hash_password, issue_token, optional_user, verify_password
from .catalog import CatalogCache
from .db import CartItem, Order, Product, User, create_schema, make_engine, make_session_factory, utcnow
from .mailer import Outbox
from .orders import CheckoutRefused, cart_lines, checkout
from .payments import PaymentDeclined, PaymentsClient, PaymentUnavailable
from .settings import ShopSettings

PURCHASE_JOURNEY = "purchase"
EMAIL_PATTERN = r"^[^@\s]+@[^@\s]+\.[A-Za-z]{2,}$"


@dataclass
class Shop:
    """Everything a request needs, built once per application."""

    settings: ShopSettings
    engine: Engine
    sessions: sessionmaker[Session]
    catalog: CatalogCache
    payments: PaymentsClient
    health: otel_monitor.HealthRegistry
    outbox: Outbox


class SignupIn(BaseModel):
    email: str = Field(pattern=EMAIL_PATTERN, max_length=254)
    password: str = Field(min_length=8, max_length=200)
    name: str = Field(min_length=1, max_length=100)


class LoginIn(BaseModel):
    email: str = Field(max_length=254)
    password: str = Field(max_length=200)


class CartItemIn(BaseModel):
    product_id: int = Field(gt=0)
    quantity: int = Field(default=1, ge=1, le=20)


class CheckoutIn(BaseModel):
    card_token: str = Field(min_length=1, max_length=64)
    coupon: str | None = Field(default=None, max_length=32)


SessionDep = Annotated[Session, Depends(get_session)]
UserDep = Annotated[User, Depends(current_user)]
OptionalUserDep = Annotated[User | None, Depends(optional_user)]


def milestone(step: str, user: User) -> None:
    otel_monitor.journey_milestone(step, user_id=str(user.id), journey=PURCHASE_JOURNEY)


# Prices are in euro cents; business amounts are in currency units.
CURRENCY = "EUR"


def euros(cents: int) -> float:
    return cents / 100


def create_app(settings: ShopSettings | None = None) -> FastAPI:
    settings = settings or ShopSettings.from_env()
    engine = make_engine(settings)
    shop = Shop(
        settings=settings,
        engine=engine,
        sessions=make_session_factory(engine),
        catalog=CatalogCache(ttl=settings.catalog_ttl),
        payments=PaymentsClient(
            settings.payments_primary_url, settings.payments_fallback_url, settings.payments_timeout
        ),
        health=otel_monitor.HealthRegistry(
            [
                otel_monitor.sqlalchemy_check(engine),
                # Not critical: without the primary provider the shop still sells through the fallback.
                otel_monitor.http_check(settings.payments_health, name="payments", critical=False),
            ]
        ),
        outbox=Outbox(),
    )
    # The order e-mails not sent yet: monitor.queue.depth{monitor.queue.name="order_emails"}.
    otel_monitor.queues.watch_queue("order_emails", shop.outbox.depth)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        create_schema(engine)
        shop.health.start()
        shop.outbox.start()
        yield
        shop.outbox.stop()
        shop.health.stop()
        shop.payments.close()
        engine.dispose()

    app = FastAPI(title="Example shop", lifespan=lifespan)
    app.state.shop = shop
    _add_routes(app, shop)
    otel_monitor.add_health_endpoints(app, shop.health)
    return app


def _add_routes(app: FastAPI, shop: Shop) -> None:
    @app.get("/ping")
    def ping() -> dict[str, bool]:
        return {"ok": True}

    @app.post("/api/signup", status_code=201)
    def signup(body: SignupIn, session: SessionDep) -> dict[str, Any]:
        email = body.email.lower()
        if session.scalar(select(User.id).where(User.email == email)) is not None:
            raise HTTPException(409, "an account with this email already exists")
        user = User(
            email=email, name=body.name, password_hash=hash_password(body.password, shop.settings.password_iterations)
        )
        session.add(user)
        session.flush()
        token = issue_token(session, user)
        session.commit()
        milestone("signup", user)
        business.user("visitor", user_id=str(user.id))
        return {"user_id": user.id, "token": token}

    @app.post("/api/login")
    def login(body: LoginIn, session: SessionDep) -> dict[str, Any]:
        user = session.scalar(select(User).where(User.email == body.email.lower()))
        if not verify_password(body.password, user.password_hash if user else None):
            raise HTTPException(401, "wrong email or password", headers={"WWW-Authenticate": "Bearer"})
        assert user is not None
        user.last_login_at = utcnow()
        token = issue_token(session, user)
        session.commit()
        otel_monitor.journey_milestone("return_visit", user_id=str(user.id))
        business.user("visitor", user_id=str(user.id))  # daily active users; returning ones told apart
        return {"user_id": user.id, "token": token}

    @app.get("/api/products")
    def browse(
        session: SessionDep,
        user: OptionalUserDep,
        category: Annotated[str | None, Query(pattern=r"^[a-z-]{1,50}$")] = None,
    ) -> dict[str, Any]:
        products = shop.catalog.listing(session, category)
        if user is not None and user.first_browse_at is None:
            user.first_browse_at = utcnow()
            session.commit()
            milestone("first_browse", user)
        return {"products": [asdict(product) for product in products]}

    @app.get("/api/products/{product_id}")
    def product_detail(product_id: int, session: SessionDep) -> dict[str, Any]:
        product = session.get(Product, product_id)
        if product is None:
            raise HTTPException(404, f"no product {product_id}")
        return {
            "id": product.id,
            "sku": product.sku,
            "name": product.name,
            "category": product.category,
            "price_cents": product.price_cents,
            "stock": product.stock,
        }

    @app.get("/api/cart")
    def show_cart(session: SessionDep, user: UserDep) -> dict[str, Any]:
        return _cart_view(session, user)

    @app.post("/api/cart/items", status_code=201)
    def add_to_cart(body: CartItemIn, session: SessionDep, user: UserDep) -> dict[str, Any]:
        product = session.get(Product, body.product_id)
        if product is None:
            raise HTTPException(404, f"no product {body.product_id}")
        item = session.scalar(select(CartItem).where(CartItem.user_id == user.id, CartItem.product_id == product.id))
        wanted = body.quantity + (item.quantity if item else 0)
        if product.stock < wanted:
            left = f"only {product.stock} left" if product.stock else "sold out"
            raise HTTPException(409, f"{product.name}: {left}")
        # A cart that was empty starts now: the denominator of cart abandonment.
        cart_started = item is None and not session.scalar(
            select(func.count()).select_from(CartItem).where(CartItem.user_id == user.id)
        )
        if item is None:
            session.add(CartItem(user_id=user.id, product_id=product.id, quantity=wanted))
        else:
            item.quantity = wanted
        first_add = user.first_add_to_cart_at is None
        if first_add:
            user.first_add_to_cart_at = utcnow()
        _commit_cart_change(session)
        if cart_started:
            business.count("cart_started")
        if first_add:
            milestone("first_add_to_cart", user)
        return _cart_view(session, user)

    @app.delete("/api/cart/items/{product_id}", status_code=204)
    def remove_from_cart(product_id: int, session: SessionDep, user: UserDep) -> Response:
        item = session.scalar(select(CartItem).where(CartItem.user_id == user.id, CartItem.product_id == product_id))
        if item is None:
            raise HTTPException(404, f"product {product_id} is not in the cart")
        session.delete(item)
        _commit_cart_change(session)
        return Response(status_code=204)

    @app.post("/api/checkout", status_code=201)
    def place_order(body: CheckoutIn, session: SessionDep, user: UserDep) -> dict[str, Any]:
        try:
            result = checkout(session, shop.payments, user, body.card_token, body.coupon)
        except CheckoutRefused as exc:
            raise HTTPException(exc.status, exc.detail) from None
        except PaymentDeclined as exc:
            raise HTTPException(402, f"payment declined: {exc}") from None
        except PaymentUnavailable as exc:
            raise HTTPException(503, f"payment is unavailable, try again later ({exc})") from None
        if result.first_purchase:
            milestone("first_purchase", user)
        order = result.order
        # Revenue and order value (the histogram's sum and sum / count), orders placed, buyers today.
        business.amount("revenue", euros(order.total_cents), currency=CURRENCY)
        business.count("order_placed")
        business.user("buyer", user_id=str(user.id))
        shop.outbox.enqueue("confirmation", order.id)
        return {
            "order_id": order.id,
            "status": order.status,
            "total_cents": order.total_cents,
            "provider": result.charge.layer,
        }

    @app.post("/api/orders/{order_id}/refund")
    def refund_order(order_id: int, session: SessionDep, user: UserDep) -> dict[str, Any]:
        order = session.get(Order, order_id)
        if order is None or order.user_id != user.id:
            raise HTTPException(404, f"no order {order_id}")
        if order.status != "paid":
            raise HTTPException(409, f"order {order_id} is {order.status}, only a paid order is refunded")
        order.status = "refunded"
        session.commit()
        business.amount("refund", euros(order.total_cents), currency=CURRENCY)
        shop.outbox.enqueue("refund", order.id)
        return {"order_id": order.id, "status": order.status, "refunded_cents": order.total_cents}

    @app.get("/api/orders")
    def order_history(session: SessionDep, user: UserDep) -> dict[str, Any]:
        orders = session.scalars(select(Order).where(Order.user_id == user.id).order_by(Order.id.desc()).limit(20))
        return {
            "orders": [
                {
                    "order_id": o.id,
                    "status": o.status,
                    "total_cents": o.total_cents,
                    "created_at": o.created_at.isoformat(),
                }
                for o in orders
            ]
        }


def _commit_cart_change(session: Session) -> None:
    """Commit a cart change, or answer 409 when another request of the same user changed the cart first.

    Two tabs of one signed-in user race: both add the same product (the unique
    constraint refuses the second insert), or one checks out (emptying the cart)
    while the other updates a line that is gone.
    """
    try:
        session.commit()
    except (IntegrityError, StaleDataError):
        session.rollback()
        raise HTTPException(409, "the cart was changed by another request; reload it and try again") from None


def _cart_view(session: Session, user: User) -> dict[str, Any]:
    items = cart_lines(session, user)
    lines = [
        {
            "product_id": item.product_id,
            "name": item.product.name,
            "quantity": item.quantity,
            "unit_price_cents": item.product.price_cents,
        }
        for item in items
    ]
    return {"items": lines, "total_cents": sum(line["quantity"] * line["unit_price_cents"] for line in lines)}


def __getattr__(name: str) -> Any:
    # ``uvicorn examples.shop.app:app`` builds the app on first access, so importing
    # this module (tests, benchmarks) neither opens shop.db nor starts health checks.
    if name == "app":
        global app
        app = create_app()
        return app
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

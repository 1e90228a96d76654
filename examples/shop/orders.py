"""Checkout: pricing with coupons, stock reservation, payment, and the order record.

Stock is reserved and the order recorded in one transaction before the payment
call, so no database transaction stays open while a provider is slow; a failed
payment gives the stock back.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from .db import CartItem, Coupon, Order, OrderLine, Product, User, utcnow
from .payments import Charge, PaymentsClient


class CheckoutRefused(Exception):
    """The checkout cannot go ahead; ``status`` is the HTTP status to answer with."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail


@dataclass(frozen=True)
class CheckoutResult:
    order: Order
    charge: Charge
    first_purchase: bool


def discount_cents(coupon: Coupon, subtotal_cents: int) -> int:
    if coupon.amount_off_cents is not None:
        return min(coupon.amount_off_cents, subtotal_cents)
    return subtotal_cents * coupon.percent_off // 100  # type: ignore[operator]


def find_coupon(session: Session, code: str | None) -> Coupon | None:
    if code is None:
        return None
    coupon = session.get(Coupon, code.strip().upper())
    if coupon is None or not coupon.active:
        raise CheckoutRefused(422, f"unknown or expired coupon {code!r}")
    return coupon


def cart_lines(session: Session, user: User) -> list[CartItem]:
    query = select(CartItem).where(CartItem.user_id == user.id).join(CartItem.product).order_by(CartItem.id)
    return list(session.scalars(query))


def checkout(
    session: Session, payments: PaymentsClient, user: User, card_token: str, coupon_code: str | None
) -> CheckoutResult:
    """Reserve stock, record a pending order, charge, then mark it paid or give the stock back."""
    order = _reserve(session, user, coupon_code)
    try:
        charge = payments.authorize(order.total_cents, f"order-{order.id}-{uuid.uuid4().hex[:8]}", card_token)
    except Exception:
        _release(session, order)
        raise
    order.status = "paid"
    order.payment_provider = charge.layer
    order.payment_reference = charge.reference
    session.execute(delete(CartItem).where(CartItem.user_id == user.id))
    first_purchase = user.first_purchase_at is None
    if first_purchase:
        user.first_purchase_at = utcnow()
    session.commit()
    return CheckoutResult(order=order, charge=charge, first_purchase=first_purchase)


def _reserve(session: Session, user: User, coupon_code: str | None) -> Order:
    items = cart_lines(session, user)
    if not items:
        raise CheckoutRefused(400, "the cart is empty")
    coupon = find_coupon(session, coupon_code)
    subtotal = sum(item.quantity * item.product.price_cents for item in items)
    total = subtotal - (discount_cents(coupon, subtotal) if coupon else 0)
    for item in items:
        # A conditional decrement: two buyers of the last unit cannot both win.
        reserved = session.execute(
            update(Product)
            .where(Product.id == item.product_id, Product.stock >= item.quantity)
            .values(stock=Product.stock - item.quantity)
            .execution_options(synchronize_session=False)
        )
        if reserved.rowcount != 1:  # type: ignore[attr-defined]
            session.rollback()
            raise CheckoutRefused(409, f"{item.product.name} is out of stock")
    order = Order(
        user_id=user.id,
        status="pending",
        total_cents=total,
        coupon_code=coupon.code if coupon else None,
        lines=[
            OrderLine(product_id=item.product_id, quantity=item.quantity, unit_price_cents=item.product.price_cents)
            for item in items
        ],
    )
    session.add(order)
    session.commit()
    return order


def _release(session: Session, order: Order) -> None:
    session.rollback()
    for line in order.lines:
        session.execute(
            update(Product)
            .where(Product.id == line.product_id)
            .values(stock=Product.stock + line.quantity)
            .execution_options(synchronize_session=False)
        )
    order.status = "failed"
    session.commit()

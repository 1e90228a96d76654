"""The example shop records revenue, order value, refunds, carts and users with otel_monitor.business."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from examples.background_server import BackgroundServer
from examples.payments.app import Behaviour
from examples.payments.app import create_app as create_payments_app
from examples.shop.app import create_app as create_shop_app
from examples.shop.settings import ShopSettings
from otel_monitor import semconv
from tests.support.stack import make_stack

pytestmark = pytest.mark.slow

TEE = 1  # the first seeded product: 19.00


@pytest.fixture
def shop(tmp_path: Path, otlp_sink) -> Iterator[tuple[TestClient, object]]:
    stack = make_stack(otlp_sink, user_id_key="k", journey_store=f"sqlite:///{tmp_path / 'journeys.db'}")
    with BackgroundServer(create_payments_app(Behaviour(delay_ms=0), seed=7)) as payments:
        settings = ShopSettings(
            database_url=f"sqlite:///{tmp_path / 'shop.db'}",
            payments_primary_url=f"{payments.url}/primary",
            payments_fallback_url=f"{payments.url}/fallback",
            payments_timeout=2.0,
            password_iterations=1000,
        )
        try:
            with TestClient(create_shop_app(settings), raise_server_exceptions=False) as client:
                yield client, stack
        finally:
            stack.close()


def _sign_up(client: TestClient, email: str) -> dict[str, str]:
    response = client.post("/api/signup", json={"email": email, "password": "correct horse", "name": "A"})
    assert response.status_code == 201, response.text
    return {"Authorization": f"Bearer {response.json()['token']}"}


def _by_kpi(stack, metric: str) -> dict[str, object]:
    out: dict[str, object] = {}
    for point in stack.points(metric):
        attrs = dict(point.attributes)
        out[attrs[semconv.MONITOR_KPI] + ("+returning" if attrs.get(semconv.MONITOR_BUSINESS_RETURNING) else "")] = (
            point
        )
    return out


def test_shop_records_its_kpis(shop):
    """Two visitors start carts, one buys 2 tees (38.00 EUR) and gets a refund: every KPI input is exact."""
    client, stack = shop
    ada, bob = _sign_up(client, "ada@example.com"), _sign_up(client, "bob@example.com")
    for auth in (ada, bob):
        assert client.post("/api/cart/items", json={"product_id": TEE, "quantity": 1}, headers=auth).status_code == 201
    # A second line in a cart that already has one starts no new cart.
    assert client.post("/api/cart/items", json={"product_id": TEE, "quantity": 1}, headers=ada).status_code == 201
    order = client.post("/api/checkout", json={"card_token": "tok_visa"}, headers=ada)
    assert order.status_code == 201, order.text
    assert order.json()["total_cents"] == 3800
    refund = client.post(f"/api/orders/{order.json()['order_id']}/refund", headers=ada)
    assert refund.status_code == 200 and refund.json()["status"] == "refunded"
    assert client.post(f"/api/orders/{order.json()['order_id']}/refund", headers=ada).status_code == 409
    assert client.post(f"/api/orders/{order.json()['order_id']}/refund", headers=bob).status_code == 404
    login = client.post("/api/login", json={"email": "ada@example.com", "password": "correct horse"})
    assert login.status_code == 200

    amounts = _by_kpi(stack, semconv.METRIC_BUSINESS_AMOUNT)
    assert (amounts["revenue"].sum, amounts["revenue"].count) == (38.0, 1)  # revenue, orders, order value 38
    assert (amounts["refund"].sum, amounts["refund"].count) == (38.0, 1)
    assert all(dict(p.attributes)[semconv.MONITOR_BUSINESS_CURRENCY] == "EUR" for p in amounts.values())
    events = {k: p.value for k, p in _by_kpi(stack, semconv.METRIC_BUSINESS_EVENTS).items()}
    assert events == {"cart_started": 2, "order_placed": 1}  # cart abandonment 1 - 1/2
    users = {k: p.value for k, p in _by_kpi(stack, semconv.METRIC_BUSINESS_USERS).items()}
    assert users == {"visitor": 2, "buyer": 1}  # ada's login the same day is no second visitor


def test_the_demo_traffic_refunds_orders_and_the_refund_figures_count_them_exactly(tmp_path: Path, otlp_sink):
    """The traffic generator's returning customers get paid orders refunded: the shop's refund KPI counts
    exactly the refunds granted (200) and their amount."""
    from examples.traffic import run_traffic

    stack = make_stack(otlp_sink, user_id_key="k")
    try:
        with BackgroundServer(create_payments_app(Behaviour(delay_ms=0), seed=3)) as payments:
            settings = ShopSettings(
                database_url=f"sqlite:///{tmp_path / 'shop.db'}",
                payments_primary_url=f"{payments.url}/primary",
                payments_fallback_url=f"{payments.url}/fallback",
                password_iterations=1000,
            )
            with BackgroundServer(create_shop_app(settings)) as shop_server:
                report = run_traffic(shop_server.url, requests=1500, duration=120, concurrency=1, seed=5)
        assert report.refunds >= 3, report.summary()
        assert report.answered_by_endpoint["POST /api/orders/{id}/refund"] >= report.refunds
        refunds = [
            p for p in stack.points(semconv.METRIC_BUSINESS_AMOUNT) if p.attributes[semconv.MONITOR_KPI] == "refund"
        ]
        assert sum(p.count for p in refunds) == report.refunds
        assert round(sum(p.sum for p in refunds) * 100) == report.refunded_cents
    finally:
        stack.close()

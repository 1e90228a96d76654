"""The example shop runs on PostgreSQL as well as SQLite (DATABASE_URL)."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from examples.background_server import BackgroundServer
from examples.payments.app import Behaviour
from examples.payments.app import create_app as create_payments_app
from examples.shop.app import create_app as create_shop_app
from examples.shop.settings import ShopSettings
from tests.support.postgres import postgres_server, postgres_url  # noqa: F401 (the shared throwaway server)

pytestmark = [pytest.mark.slow, pytest.mark.postgres]


def test_checkout_works_on_postgresql(postgres_url: str) -> None:  # noqa: F811 - the fixture imported above
    """Signup, cart and a paid checkout work with DATABASE_URL naming PostgreSQL."""
    with BackgroundServer(create_payments_app(Behaviour(delay_ms=0), seed=1)) as payments:
        settings = ShopSettings(
            database_url=postgres_url,
            payments_primary_url=f"{payments.url}/primary",
            payments_fallback_url=f"{payments.url}/fallback",
            password_iterations=1000,
        )
        with TestClient(create_shop_app(settings)) as client:
            token = client.post("/api/signup", json={"email": "pg@example.com", "password": "long enough", "name": "P"})
            auth = {"Authorization": f"Bearer {token.json()['token']}"}
            assert (
                client.post("/api/cart/items", json={"product_id": 2, "quantity": 3}, headers=auth).status_code == 201
            )
            stock = client.get("/api/products/2").json()["stock"]
            order = client.post("/api/checkout", json={"card_token": "tok_visa"}, headers=auth)
            assert order.status_code == 201 and order.json()["status"] == "paid"
            assert client.get("/api/products/2").json()["stock"] == stock - 3

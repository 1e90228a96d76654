"""The example shop works on its own, uninstrumented, against a real payments service."""

from __future__ import annotations

import dataclasses
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import event, text, update
from sqlalchemy.orm import Session

import otel_monitor
from examples.background_server import BackgroundServer
from examples.payments.app import Behaviour
from examples.payments.app import create_app as create_payments_app
from examples.shop.app import create_app as create_shop_app
from examples.shop.catalog import CatalogCache
from examples.shop.db import Product, create_schema, make_engine
from examples.shop.settings import ShopSettings, ShopSettingsError
from tests.support.launch import free_port

pytestmark = pytest.mark.slow

TEE = 1  # first seeded product: 19.00, plenty in stock
SOLD_OUT = 17  # the limited edition print, stock 0


@pytest.fixture
def payments() -> Iterator[BackgroundServer]:
    with BackgroundServer(create_payments_app(Behaviour(delay_ms=0), seed=7)) as server:
        yield server


def set_provider(payments: BackgroundServer, provider: str, **behaviour: Any) -> None:
    httpx.put(f"{payments.url}/admin/providers/{provider}", json=behaviour).raise_for_status()


@pytest.fixture
def settings(tmp_path: Path, payments: BackgroundServer) -> ShopSettings:
    return ShopSettings(
        database_url=f"sqlite:///{tmp_path / 'shop.db'}",
        payments_primary_url=f"{payments.url}/primary",
        payments_fallback_url=f"{payments.url}/fallback",
        payments_timeout=0.3,
        password_iterations=1000,
    )


@pytest.fixture
def client(settings: ShopSettings) -> Iterator[TestClient]:
    with TestClient(create_shop_app(settings), raise_server_exceptions=False) as test_client:
        yield test_client


def sign_up(client: TestClient, email: str = "ada@example.com") -> dict[str, str]:
    response = client.post("/api/signup", json={"email": email, "password": "correct horse", "name": "Ada"})
    assert response.status_code == 201, response.text
    return {"Authorization": f"Bearer {response.json()['token']}"}


def stock_of(client: TestClient, product_id: int) -> int:
    return client.get(f"/api/products/{product_id}").json()["stock"]


def buy(client: TestClient, auth: dict[str, str], **checkout: Any) -> httpx.Response:
    assert client.post("/api/cart/items", json={"product_id": TEE, "quantity": 2}, headers=auth).status_code == 201
    return client.post("/api/checkout", json={"card_token": "tok_visa", **checkout}, headers=auth)


def test_ping_answers_without_the_database(client: TestClient) -> None:
    """GET /ping answers {"ok": true}."""
    assert client.get("/ping").json() == {"ok": True}


def test_signup_then_login_issue_working_tokens(client: TestClient) -> None:
    """A new account can sign in again with its password, and the token opens the cart."""
    sign_up(client)
    login = client.post("/api/login", json={"email": "ADA@example.com", "password": "correct horse"})
    assert login.status_code == 200
    auth = {"Authorization": f"Bearer {login.json()['token']}"}
    assert client.get("/api/cart", headers=auth).json() == {"items": [], "total_cents": 0}


def test_signup_twice_with_one_email_is_refused(client: TestClient) -> None:
    """A second signup with the same email gets 409."""
    sign_up(client)
    again = client.post("/api/signup", json={"email": "ada@example.com", "password": "another one", "name": "A"})
    assert again.status_code == 409


def test_signup_with_bad_fields_is_a_validation_error(client: TestClient) -> None:
    """An invalid email or a short password gets 422."""
    assert (
        client.post("/api/signup", json={"email": "not-an-email", "password": "long enough", "name": "B"}).status_code
        == 422
    )
    assert (
        client.post("/api/signup", json={"email": "b@example.com", "password": "short", "name": "B"}).status_code == 422
    )


def test_wrong_password_and_unknown_email_get_401(client: TestClient) -> None:
    """Bad logins get 401 whether or not the account exists."""
    sign_up(client)
    assert client.post("/api/login", json={"email": "ada@example.com", "password": "wrong!"}).status_code == 401
    assert client.post("/api/login", json={"email": "nobody@example.com", "password": "x"}).status_code == 401


def test_browse_lists_the_catalog_and_filters_by_category(client: TestClient) -> None:
    """The catalog lists every seeded product; a category narrows it."""
    everything = client.get("/api/products").json()["products"]
    shoes = client.get("/api/products", params={"category": "shoes"}).json()["products"]
    assert len(everything) == 17
    assert {p["category"] for p in shoes} == {"shoes"} and len(shoes) == 3
    assert [p["in_stock"] for p in everything if p["id"] == SOLD_OUT] == [False]


def test_product_detail_reads_one_product_or_404(client: TestClient) -> None:
    """GET /api/products/{id} returns the product, or 404 when there is none."""
    assert client.get(f"/api/products/{TEE}").json()["sku"] == "TEE-001"
    assert client.get("/api/products/9999").status_code == 404


def test_catalog_cache_serves_the_stored_listing_until_it_expires(tmp_path: Path) -> None:
    """A listing is read from the database once per TTL, not on every browse."""
    engine = make_engine(ShopSettings(database_url=f"sqlite:///{tmp_path / 'c.db'}"))
    create_schema(engine)
    now = [100.0]
    cache = CatalogCache(ttl=5, clock=lambda: now[0])
    with Session(engine) as session:
        first = cache.listing(session, "home")
        session.execute(update(Product).where(Product.id == first[0].id).values(name="Renamed"))
        session.commit()
        now[0] += 4.9
        assert cache.listing(session, "home")[0].name == first[0].name
        now[0] += 0.2
        assert cache.listing(session, "home")[0].name == "Renamed"
    engine.dispose()


def test_cart_needs_a_signed_in_user(client: TestClient) -> None:
    """Anonymous or bad-token cart calls get 401."""
    assert client.get("/api/cart").status_code == 401
    assert client.get("/api/cart", headers={"Authorization": "Bearer nope"}).status_code == 401


def test_cart_adds_up_quantities_and_refuses_what_is_not_in_stock(client: TestClient) -> None:
    """Adding twice sums the quantity; a sold-out product gets 409; quantity 0 gets 422."""
    auth = sign_up(client)
    client.post("/api/cart/items", json={"product_id": TEE, "quantity": 1}, headers=auth)
    cart = client.post("/api/cart/items", json={"product_id": TEE, "quantity": 2}, headers=auth).json()
    assert cart["items"][0]["quantity"] == 3 and cart["total_cents"] == 3 * 1900
    assert client.post("/api/cart/items", json={"product_id": SOLD_OUT}, headers=auth).status_code == 409
    assert client.post("/api/cart/items", json={"product_id": TEE, "quantity": 0}, headers=auth).status_code == 422
    assert client.delete(f"/api/cart/items/{TEE}", headers=auth).status_code == 204
    assert client.get("/api/cart", headers=auth).json()["items"] == []


@pytest.mark.parametrize("other_tab", ["checks out", "adds the same product"])
def test_a_cart_change_racing_another_tab_gets_409(client: TestClient, settings: ShopSettings, other_tab: str) -> None:
    """When another request of the same user changes the cart between read and commit, the answer is 409, not 500."""
    auth = sign_up(client)
    if other_tab == "checks out":
        client.post("/api/cart/items", json={"product_id": TEE, "quantity": 1}, headers=auth)
        race = text("DELETE FROM cart_items")  # the checkout emptied the cart: the UPDATE matches nothing
    else:
        race = text("INSERT INTO cart_items (user_id, product_id, quantity) SELECT id, :tee, 1 FROM users")
    other = make_engine(settings)
    raced: list[bool] = []

    def other_tab_commits_first(session: Session, *_: Any) -> None:
        if raced:
            return
        raced.append(True)
        with other.begin() as connection:
            connection.execute(race, {"tee": TEE})

    event.listen(Session, "before_flush", other_tab_commits_first)
    try:
        response = client.post("/api/cart/items", json={"product_id": TEE, "quantity": 1}, headers=auth)
    finally:
        event.remove(Session, "before_flush", other_tab_commits_first)
        other.dispose()
    assert raced and response.status_code == 409, response.text
    assert "changed by another request" in response.json()["detail"]
    assert client.get("/api/cart", headers=auth).status_code == 200


def test_checkout_pays_through_the_primary_provider(client: TestClient) -> None:
    """A checkout charges the primary, records a paid order, empties the cart and takes the stock."""
    auth = sign_up(client)
    before = stock_of(client, TEE)
    order = buy(client, auth)
    assert order.status_code == 201, order.text
    assert order.json()["provider"] == "primary" and order.json()["status"] == "paid"
    assert order.json()["total_cents"] == 2 * 1900
    assert client.get("/api/cart", headers=auth).json()["items"] == []
    assert stock_of(client, TEE) == before - 2
    assert [o["status"] for o in client.get("/api/orders", headers=auth).json()["orders"]] == ["paid"]


def test_checkout_falls_back_when_the_primary_fails(client: TestClient, payments: BackgroundServer) -> None:
    """A primary answering 503 leaves the payment to the fallback provider."""
    set_provider(payments, "primary", failure_rate=1)
    order = buy(client, sign_up(client))
    assert order.status_code == 201 and order.json()["provider"] == "fallback"


def test_checkout_falls_back_when_the_primary_times_out(client: TestClient, payments: BackgroundServer) -> None:
    """A primary slower than the shop's timeout leaves the payment to the fallback provider."""
    set_provider(payments, "primary", slow_rate=1, slow_ms=1000)
    order = buy(client, sign_up(client))
    assert order.status_code == 201 and order.json()["provider"] == "fallback"


def test_checkout_with_every_provider_down_keeps_cart_and_stock(client: TestClient, payments: BackgroundServer) -> None:
    """With both providers failing the shop answers 503, and the stock and cart are as before."""
    set_provider(payments, "primary", failure_rate=1)
    set_provider(payments, "fallback", failure_rate=1)
    auth = sign_up(client)
    before = stock_of(client, TEE)
    order = buy(client, auth)
    assert order.status_code == 503 and "fallback provider answered HTTP 503" in order.json()["detail"]
    assert stock_of(client, TEE) == before
    assert client.get("/api/cart", headers=auth).json()["items"][0]["quantity"] == 2
    assert [o["status"] for o in client.get("/api/orders", headers=auth).json()["orders"]] == ["failed"]


def test_declined_card_gets_402_and_no_fallback(client: TestClient, payments: BackgroundServer) -> None:
    """A declined card is final: 402, stock given back, the fallback never charged."""
    auth = sign_up(client)
    before = stock_of(client, TEE)
    order = buy(client, auth, card_token="tok_declined")
    assert order.status_code == 402
    assert stock_of(client, TEE) == before
    assert httpx.get(f"{payments.url}/admin/providers/fallback").json()["charges"] == 0


def test_coupons_discount_and_unknown_ones_are_refused(client: TestClient) -> None:
    """WELCOME10 takes 10% off; an unknown coupon gets 422."""
    auth = sign_up(client)
    assert buy(client, auth, coupon="welcome10").json()["total_cents"] == 2 * 1900 * 9 // 10
    assert buy(client, auth, coupon="NOPE").status_code == 422


def test_the_legacy_coupon_hits_the_known_bug(client: TestClient) -> None:
    """The imported LEGACY2019 coupon has no discount value and crashes checkout with 500."""
    assert buy(client, sign_up(client), coupon="LEGACY2019").status_code == 500


def test_journey_milestones_are_reported_once_each(client: TestClient, monkeypatch: pytest.MonkeyPatch) -> None:
    """Signup, first browse, first add to cart and first purchase are each reported once per user."""
    reported: list[tuple[str, str | None]] = []
    monkeypatch.setattr(
        otel_monitor, "journey_milestone", lambda step, **kw: reported.append((step, kw.get("journey")))
    )
    auth = sign_up(client)
    for _ in range(2):
        client.get("/api/products", headers=auth)
        buy(client, auth)
    client.post("/api/login", json={"email": "ada@example.com", "password": "correct horse"})
    assert reported == [
        ("signup", "purchase"),
        ("first_browse", "purchase"),
        ("first_add_to_cart", "purchase"),
        ("first_purchase", "purchase"),
        ("return_visit", None),
    ]


def test_bad_shop_settings_name_the_variable() -> None:
    """A bad value in the environment is refused with the variable's name."""
    with pytest.raises(ShopSettingsError, match="SHOP_PAYMENTS_TIMEOUT='soon'"):
        ShopSettings.from_env({"SHOP_PAYMENTS_TIMEOUT": "soon"})
    with pytest.raises(ShopSettingsError, match="SHOP_PAYMENTS_PRIMARY_URL"):
        ShopSettings.from_env({"SHOP_PAYMENTS_PRIMARY_URL": "localhost:8081"})
    assert ShopSettings.from_env({"DATABASE_URL": "sqlite:///x.db"}).database_url == "sqlite:///x.db"


def detailed_health(client: TestClient) -> tuple[int, dict[str, Any]]:
    """Run the shop's checks now (instead of waiting for the interval), then read /health/detailed."""
    client.app.state.shop.health.run_once()
    response = client.get("/health/detailed")
    return response.status_code, response.json()


def check_states(body: dict[str, Any]) -> dict[str, str]:
    return {check["name"]: check["state"] for check in body["checks"]}


def test_health_reports_database_and_payments_up(client: TestClient) -> None:
    """/health answers ok; /health/detailed is healthy with the database (critical) and payments (not) up."""
    assert client.get("/health").json() == {"status": "ok"}
    status, body = detailed_health(client)
    assert status == 200 and body["status"] == "healthy"
    assert check_states(body) == {"database": "up", "payments": "up"}
    assert {c["name"]: c["critical"] for c in body["checks"]} == {"database": True, "payments": False}


def test_payments_down_degrades_health_but_keeps_200(settings: ShopSettings) -> None:
    """With the payment provider unreachable the shop is degraded, still 200: the database is what matters."""
    unreachable = dataclasses.replace(settings, payments_health_url=f"http://127.0.0.1:{free_port()}/health")
    with TestClient(create_shop_app(unreachable)) as client:
        status, body = detailed_health(client)
    assert status == 200 and body["status"] == "degraded"
    assert check_states(body) == {"database": "up", "payments": "down"}


def test_database_gone_makes_health_unhealthy_503(tmp_path: Path, settings: ShopSettings) -> None:
    """When the database cannot be opened any more, /health/detailed is 503 unhealthy while /health stays 200."""
    folder = tmp_path / "data"
    folder.mkdir()
    on_disk = dataclasses.replace(settings, database_url=f"sqlite:///{folder / 'shop.db'}")
    with TestClient(create_shop_app(on_disk)) as client:
        assert detailed_health(client)[0] == 200
        shutil.rmtree(folder)
        client.app.state.shop.engine.dispose()  # pooled connections would keep the deleted file open
        status, body = detailed_health(client)
        assert client.get("/health").status_code == 200
    assert status == 503 and body["status"] == "unhealthy"
    assert check_states(body)["database"] == "down"

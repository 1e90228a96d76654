"""The example shop under the launcher: what leaves the process, read from the received OTLP."""

from __future__ import annotations

import json

import httpx
import pytest

from examples.background_server import BackgroundServer
from examples.payments.app import Behaviour
from examples.payments.app import create_app as create_payments_app
from otel_monitor import semconv
from otel_monitor.testing import OTLPSink
from tests.support.launch import launched

pytestmark = pytest.mark.slow

PASSWORD = "correct horse battery staple"
EMAIL = "planted.secret.user@example.com"
# Planted in a query string, which FastAPI records as url.query (URL-encoded).
PLANTED = ("4111111111111111", "planted.secret.user", "abc123secretvalue")


@pytest.fixture(scope="module")
def shop_run(tmp_path_factory):
    """One launcher run of the shop: signup, browse, cart, a fallback checkout, a crashing checkout."""
    db = tmp_path_factory.mktemp("shop") / "shop.db"
    with OTLPSink() as sink, BackgroundServer(create_payments_app(Behaviour(delay_ms=0), seed=7)) as payments:
        httpx.put(f"{payments.url}/admin/providers/primary", json={"failure_rate": 1}).raise_for_status()
        env = {
            **sink.env(),
            "OTEL_SERVICE_NAME": "shop",
            "DATABASE_URL": f"sqlite:///{db}",
            "SHOP_PAYMENTS_PRIMARY_URL": f"{payments.url}/primary",
            "SHOP_PAYMENTS_FALLBACK_URL": f"{payments.url}/fallback",
            "SHOP_PASSWORD_ITERATIONS": "1000",
            "OTEL_MONITOR_CONFIG": "examples/shop/otel-monitor.yaml",
            "OTEL_MONITOR_USER_ID_KEY": "test-key",
        }
        with (
            launched("examples.shop.app:app", env, health_path="/ping") as app,
            httpx.Client(base_url=app.base_url, timeout=10) as client,
        ):
            signup = client.post("/api/signup", json={"email": EMAIL, "password": PASSWORD, "name": "Ada"})
            token = signup.json()["token"]
            auth = {"Authorization": f"Bearer {token}"}
            for _ in range(2):
                client.get("/api/products", headers=auth)
            client.post("/api/cart/items", json={"product_id": 1, "quantity": 1}, headers=auth)
            paid = client.post("/api/checkout", json={"card_token": "tok_visa"}, headers=auth)
            client.post("/api/cart/items", json={"product_id": 1, "quantity": 1}, headers=auth)
            client.get(f"/api/products?note=card+4111111111111111&contact={EMAIL}&session_token=abc123secretvalue")
            # Last: uvicorn closes the connection after an unhandled error.
            crashed = client.post(
                "/api/checkout", json={"card_token": "tok_visa", "coupon": "LEGACY2019"}, headers=auth
            )
            assert (signup.status_code, paid.status_code, crashed.status_code) == (201, 201, 500)
            sink.wait_for(lambda s: len([x for x in s.spans if x["name"] == "POST /api/checkout"]) >= 2)
            sink.wait_for(
                lambda s: {semconv.METRIC_FALLBACKS, semconv.METRIC_CACHE_REQUESTS} <= {p["name"] for p in s.metrics}
            )
            sink.wait_for(
                lambda s: sum(1 for r in s.logs if r.get("event_name") == semconv.EVENT_JOURNEY_MILESTONE) >= 4
            )
        yield sink, token


def test_request_spans_carry_their_operation(shop_run):
    """Server spans are named by the shop's rules: monitor.operation=checkout, catalog_browse."""
    sink, _ = shop_run
    operations = {s["attributes"].get(semconv.MONITOR_OPERATION) for s in sink.spans}
    assert {"signup", "catalog_browse", "cart_add", "checkout", "payment_authorize", "catalog_load"} <= operations


def test_crashed_checkout_is_classified_and_fingerprinted(shop_run):
    """The legacy-coupon crash is exported as a bug with error.type and a fingerprint."""
    sink, _ = shop_run
    failed = [s for s in sink.spans if s["name"] == "POST /api/checkout" and s["status_code"] == 2]
    assert failed, "no failed checkout span"
    attrs = failed[0]["attributes"]
    assert attrs[semconv.MONITOR_ERROR_CATEGORY] == "bug"
    assert attrs[semconv.ERROR_TYPE] and len(attrs[semconv.MONITOR_ERROR_FINGERPRINT]) == 16


def test_journey_events_carry_only_pseudonymous_ids(shop_run):
    """Milestone events have enduser.pseudo.id (an HMAC) and the purchase steps."""
    sink, _ = shop_run
    events = [r for r in sink.logs if r.get("event_name") == semconv.EVENT_JOURNEY_MILESTONE]
    steps = {r["attributes"][semconv.MONITOR_JOURNEY_STEP] for r in events}
    assert {"signup", "first_browse", "first_add_to_cart", "first_purchase"} <= steps
    assert all(len(r["attributes"][semconv.ENDUSER_PSEUDO_ID]) == 64 for r in events)


def test_cache_and_fallback_metrics_arrive(shop_run):
    """The catalog cache counts lookups and the failing primary provider counts fallbacks."""
    sink, _ = shop_run
    fallbacks = sink.latest_points(semconv.METRIC_FALLBACKS)
    assert any(p["attributes"][semconv.MONITOR_SERVICE_LAYER] == "fallback" for p in fallbacks)
    assert {p["attributes"][semconv.MONITOR_CACHE_NAME] for p in sink.latest_points(semconv.METRIC_CACHE_REQUESTS)}


def test_no_planted_secret_leaves_the_process(shop_run):
    """The password, the bearer token and the card, email and token planted in a URL are nowhere in the export."""
    sink, token = shop_run
    blob = json.dumps([sink.spans, sink.logs, sink.metrics], default=str)
    assert any("url.query" in s["attributes"] for s in sink.spans)
    assert [secret for secret in (PASSWORD, token, *PLANTED) if secret in blob] == []

"""A payments outage seen by the console: one failure, one error group, ranked by the requests it failed.

The example shop and its payment provider run under the launcher and report to
an in-process console.  A customer hits the LEGACY2019 bug twice, another has a
card declined, then both providers answer 503 to six checkouts, then the
payments service stops and three more checkouts fail to connect.
"""

from __future__ import annotations

import signal
from pathlib import Path
from typing import Any

import httpx
import pytest

from otel_monitor.console.cli import serve
from tests.support.console_telemetry import get
from tests.support.launch import ROOT, launched

pytestmark = pytest.mark.slow

CONFIG_FILE = ROOT / "examples" / "shop" / "otel-monitor.yaml"
PASSWORD = "correct horse battery"
OUTAGE_503, OUTAGE_DOWN = 6, 3


def _checkout(base_url: str, auth: dict[str, str], card: str = "tok_visa", coupon: str | None = None) -> int:
    added = httpx.post(f"{base_url}/api/cart/items", json={"product_id": 1, "quantity": 1}, headers=auth, timeout=10)
    assert added.status_code == 201, added.text
    body: dict[str, Any] = {"card_token": card, **({"coupon": coupon} if coupon else {})}
    return httpx.post(f"{base_url}/api/checkout", json=body, headers=auth, timeout=10).status_code


@pytest.fixture(scope="module")
def groups(tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, Any]]:
    database: Path = tmp_path_factory.mktemp("outage") / "shop.db"
    with serve(port=0, config_path=str(CONFIG_FILE), evaluate_every=3600) as console:
        common = {
            "OTEL_EXPORTER_OTLP_ENDPOINT": console.url,
            "OTEL_BSP_SCHEDULE_DELAY": "200",
            "OTEL_METRIC_EXPORT_INTERVAL": "1000",
            "OTEL_MONITOR_CONFIG": str(CONFIG_FILE),
            "OTEL_TRACES_SAMPLER": "always_on",
        }
        with launched(
            "examples.payments.app:app", {**common, "OTEL_SERVICE_NAME": "payments", "PAYMENTS_DELAY_MS": "0"}
        ) as payments:
            env = {
                **common,
                "OTEL_SERVICE_NAME": "shop",
                "DATABASE_URL": f"sqlite:///{database}",
                "SHOP_PAYMENTS_PRIMARY_URL": f"{payments.base_url}/primary",
                "SHOP_PAYMENTS_FALLBACK_URL": f"{payments.base_url}/fallback",
                "SHOP_PASSWORD_ITERATIONS": "1000",
                "OTEL_MONITOR_USER_ID_KEY": "test-key",
            }
            with launched("examples.shop.app:app", env) as shop:
                users = []
                for i in range(4):
                    signup = httpx.post(
                        f"{shop.base_url}/api/signup",
                        json={"email": f"outage{i}@example.com", "password": PASSWORD, "name": "Ada"},
                        timeout=10,
                    )
                    users.append({"Authorization": f"Bearer {signup.json()['token']}"})
                statuses = [_checkout(shop.base_url, users[0], coupon="LEGACY2019") for _ in range(2)]
                statuses.append(_checkout(shop.base_url, users[1], card="tok_declined"))
                for provider in ("primary", "fallback"):
                    httpx.put(
                        f"{payments.base_url}/admin/providers/{provider}",
                        json={"delay_ms": 0, "failure_rate": 1},
                        timeout=10,
                    ).raise_for_status()
                statuses += [_checkout(shop.base_url, users[i % 4]) for i in range(OUTAGE_503)]
                payments.process.send_signal(signal.SIGINT)  # flushes its spans, then stops: connections refused
                payments.process.wait(30)
                statuses += [_checkout(shop.base_url, users[i % 4]) for i in range(OUTAGE_DOWN)]
                assert statuses == [500, 500, 402] + [503] * (OUTAGE_503 + OUTAGE_DOWN)
                shop.process.send_signal(signal.SIGINT)  # flushes the shop's last spans
                shop.process.wait(30)
        yield get(f"{console.url}/api/errors")["errors"]


def _summary(groups: list[dict[str, Any]]) -> list[tuple[str, str, int]]:
    return [(g["error_type"].rsplit(".", 1)[-1], g["category"], g["requests"]) for g in groups]


def test_the_503_outage_is_one_group_of_dependency_failures(groups: list[dict[str, Any]]) -> None:
    """Six checkouts answered 503: one group (the shop's ProviderFailed, dependency), not one per span kind."""
    outage = [g for g in groups if g["requests"] and g["error_type"].endswith("ProviderFailed")]
    assert [(g["category"], g["requests"]) for g in outage] == [("dependency", OUTAGE_503)], _summary(groups)
    assert outage[0]["users"] == 4
    # Each request left seven failed spans: request, two provider calls, two client and two server spans.
    assert outage[0]["occurrences"] == OUTAGE_503 * 7
    assert not [g for g in groups if g["service"] == "payments"], _summary(groups)


def test_the_refused_connections_are_one_network_group(groups: list[dict[str, Any]]) -> None:
    """Three checkouts with payments stopped: one group, the ConnectError, network."""
    down = [g for g in groups if g["error_type"].endswith("ConnectError")]
    assert [(g["category"], g["requests"]) for g in down] == [("network", OUTAGE_DOWN)], _summary(groups)


def test_every_failure_is_one_group_ranked_by_failed_requests(groups: list[dict[str, Any]]) -> None:
    """Four groups in all, by failed requests: the outage, the refused connections, the bug, the declined card."""
    assert _summary(groups) == [
        ("ProviderFailed", "dependency", OUTAGE_503),
        ("ConnectError", "network", OUTAGE_DOWN),
        ("TypeError", "bug", 2),
        ("PaymentDeclined", "payment_declined", 1),
    ]

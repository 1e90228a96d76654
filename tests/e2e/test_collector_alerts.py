"""Alerting end to end: the shop's payment provider stops; Prometheus (Debian's 2.42) evaluates the
generated rules (collector/prometheus/rules) on what the single-machine collector exports, and Debian's
Alertmanager, with the shipped routes, posts the alerts to a webhook in this test."""

from __future__ import annotations

import signal
import time
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from tests.support.e2e_stack import ALERTMANAGER, PROMETHEUS, Alertmanager, Prometheus, Webhook
from tests.support.launch import LaunchedApp, launched
from tests.support.otelcol import COLLECTOR, SINGLE, Collector, free_port, local_config

pytestmark = pytest.mark.slow

CONFIG_FILE = COLLECTOR.parent / "examples" / "shop" / "otel-monitor.yaml"
PASSWORD = "correct horse battery"
DEADLINE = 420  # seconds of traffic at most, for the alert to fire (its `for` is 2 minutes) and be sent


def stop_flushing(app: LaunchedApp) -> None:
    app.process.send_signal(signal.SIGINT)
    app.process.wait(30)
    app.stop()


@dataclass
class AlertRun:
    firing: list[dict[str, Any]]
    notifications: list[dict[str, Any]]
    seconds_to_fire: float
    seconds_to_webhook: float
    prometheus: Prometheus


def _alerts(payloads: list[dict[str, Any]], status: str) -> list[dict[str, Any]]:
    return [dict(alert, receiver=p["receiver"]) for p in payloads for alert in p["alerts"] if alert["status"] == status]


def _burn(alert: dict[str, Any]) -> bool:
    labels = alert["labels"]
    return (
        labels["alertname"] == "ErrorBudgetBurn"
        and labels.get("slo") == "checkout"
        and labels["severity"] == "critical"
    )


@pytest.fixture(scope="module")
def alert_run(otelcol, tmp_path_factory):
    if PROMETHEUS is None or ALERTMANAGER is None:
        pytest.skip("prometheus or alertmanager not found: apt-get install prometheus prometheus-alertmanager")
    work = tmp_path_factory.mktemp("alerts")
    config, ports = local_config(SINGLE, work / "collector")
    config["exporters"]["otlp_grpc/jaeger"]["endpoint"] = f"127.0.0.1:{free_port()}"
    config["exporters"]["otlp_http/victorialogs"]["endpoint"] = f"http://127.0.0.1:{free_port()}/insert/opentelemetry"
    with Webhook() as webhook:
        alertmanager = Alertmanager(work, webhook.url).start()
        collector = Collector(otelcol, config, work, "collector", ports[13133]).start()
        prometheus = Prometheus(
            work,
            {"collector:8889": f"127.0.0.1:{ports[8889]}", "collector:8888": f"127.0.0.1:{ports[8888]}"},
            alertmanager=f"127.0.0.1:{alertmanager.port}",
        ).start()
        try:
            common = {
                "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{ports[4318]}",
                "OTEL_METRIC_EXPORT_INTERVAL": "1000",
                "OTEL_MONITOR_CONFIG": str(CONFIG_FILE),
                "OTEL_RESOURCE_ATTRIBUTES": "service.namespace=shop,deployment.environment.name=e2e",
            }
            with launched(
                "examples.payments.app:app", {**common, "OTEL_SERVICE_NAME": "payments", "PAYMENTS_DELAY_MS": "0"}
            ) as payments:
                shop_env = {
                    **common,
                    "OTEL_SERVICE_NAME": "shop",
                    "DATABASE_URL": f"sqlite:///{work / 'shop.db'}",
                    "SHOP_PAYMENTS_PRIMARY_URL": f"{payments.base_url}/primary",
                    "SHOP_PAYMENTS_FALLBACK_URL": f"{payments.base_url}/fallback",
                    "SHOP_PAYMENTS_TIMEOUT": "1",
                    "SHOP_PASSWORD_ITERATIONS": "1000",
                    "OTEL_MONITOR_USER_ID_KEY": "test-key",
                }
                with (
                    launched("examples.shop.app:app", shop_env) as shop,
                    httpx.Client(base_url=shop.base_url, timeout=30) as client,
                ):
                    signup = client.post(
                        "/api/signup", json={"email": "a@example.com", "password": PASSWORD, "name": "Al"}
                    )
                    client.headers["Authorization"] = f"Bearer {signup.json()['token']}"

                    def checkout() -> int:
                        client.post("/api/cart/items", json={"product_id": 1, "quantity": 1})
                        return client.post("/api/checkout", json={"card_token": "tok_visa"}).status_code

                    for _ in range(20):  # a healthy baseline first
                        assert checkout() == 201
                    stop_flushing(payments)  # the provider goes away
                    stopped = time.monotonic()
                    fired_at = None
                    while time.monotonic() - stopped < DEADLINE:
                        assert checkout() >= 500
                        if fired_at is None and any(
                            _burn({"labels": a["labels"]}) and a["state"] == "firing"
                            for a in prometheus.get("/api/v1/alerts")["data"]["alerts"]
                        ):
                            fired_at = time.monotonic()
                        if any(_burn(a) for a in _alerts(webhook.payloads, "firing")):
                            break
                        time.sleep(0.5)
                    delivered_at = time.monotonic()
            firing = [a for a in prometheus.get("/api/v1/alerts")["data"]["alerts"] if a["state"] == "firing"]
            yield AlertRun(
                firing, list(webhook.payloads), (fired_at or delivered_at) - stopped, delivered_at - stopped, prometheus
            )
        finally:
            prometheus.stop()
            collector.stop()
            alertmanager.stop()


def test_stopping_the_provider_fires_the_checkout_burn_rate_alert(alert_run: AlertRun) -> None:
    """The generated fast-burn alert for the checkout SLO fires in Prometheus."""
    assert any(_burn(a) for a in alert_run.firing), [a["labels"] for a in alert_run.firing]


def test_the_alert_reaches_the_webhook_through_the_paging_route(alert_run: AlertRun) -> None:
    """Alertmanager posts it, routed as critical (the page receiver), with its labels, annotations and runbook."""
    delivered = [a for a in _alerts(alert_run.notifications, "firing") if _burn(a)]
    assert delivered, alert_run.notifications
    alert = delivered[0]
    assert alert["receiver"] == "page"
    assert alert["labels"]["job"] == "shop/shop"
    assert {"long_window", "short_window"} <= set(alert["labels"])
    assert alert["annotations"]["summary"] and alert["annotations"]["description"]
    runbook = alert["annotations"]["runbook_url"]
    assert runbook.endswith("/ErrorBudgetBurn.md") and (COLLECTOR.parent / runbook).is_file(), runbook
    print(
        f"checkout fast burn: firing in Prometheus {alert_run.seconds_to_fire:.0f} s after the provider stopped, "
        f"at the webhook after {alert_run.seconds_to_webhook:.0f} s"
    )

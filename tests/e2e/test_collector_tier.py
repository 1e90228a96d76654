"""The two tiers of collector/k8s, as processes on loopback: the shop and payments under
opentelemetry-instrument -> the agent (collector/k8s/otelcol-agent.yaml) -> its load_balancing exporter,
routing by trace id -> two gateways (otelcol-gateway.yaml) with tail sampling -> Jaeger v2 (traces),
VictoriaLogs (logs) and Prometheus by remote write (metrics), each built from Go modules by
`make backends` (collector/backends.sh).

Every request of the test carries a traceparent whose trace id the test chose, so it knows which traces
must be kept (an error, or slower than the 2 s policy) and which are the probabilistic baseline.
"""

from __future__ import annotations

import re
import signal
import urllib.request
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import yaml

from tests.support.e2e_stack import (
    BACKENDS_NOT_BUILT,
    PROMETHEUS,
    Jaeger,
    Prometheus,
    TracedClient,
    VictoriaLogs,
    backends_built,
    orphans,
    services,
)
from tests.support.launch import LaunchedApp, launched
from tests.support.otelcol import AGENT, COLLECTOR, GATEWAY, Collector, local_config, wait_for

pytestmark = pytest.mark.slow

ROOT = COLLECTOR.parent
CONFIG_FILE = ROOT / "examples" / "shop" / "otel-monitor.yaml"
PASSWORD = "correct horse battery"
NORMAL, ERRORS, SLOW = 400, 15, 4
GATEWAY_POLICY = {p["name"]: p for p in yaml.safe_load(GATEWAY.read_text())["processors"]["tail_sampling"]["policies"]}
BASELINE = GATEWAY_POLICY["baseline"]["probabilistic"]["sampling_percentage"] / 100
SLOW_MS = GATEWAY_POLICY["slow"]["latency"]["threshold_ms"]
LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')


def stop_flushing(app: LaunchedApp) -> str:
    app.process.send_signal(signal.SIGINT)
    app.process.wait(30)
    return app.stop()


@dataclass
class TierRun:
    sent: TracedClient
    jaeger: Jaeger
    agent: Collector
    gateways: list[Collector]
    prometheus: Prometheus


def _send_traffic(shop: LaunchedApp, payments: LaunchedApp) -> TracedClient:
    client = TracedClient(shop.base_url)
    client.traces.update(normal=[], error=[], slow=[])
    signup = client.call(
        "normal", "POST", "/api/signup", json={"email": "tier@example.com", "password": PASSWORD, "name": "Tia"}
    )
    assert signup.status_code == 201, signup.text
    client.headers = {"Authorization": f"Bearer {signup.json()['token']}"}
    products = client.call("normal", "GET", "/api/products").json()["products"]
    in_stock = [p["id"] for p in products if p["in_stock"]]
    while len(client.traces["normal"]) < NORMAL:
        client.call("normal", "GET", f"/api/products/{in_stock[len(client.traces['normal']) % len(in_stock)]}")

    def checkouts(kind: str, count: int, behaviour: dict[str, float]) -> None:
        httpx.put(f"{payments.base_url}/admin/providers/primary", json=behaviour, timeout=10).raise_for_status()
        for _ in range(count):
            # The cart fill is a normal trace of its own; the checkout is the one under test.
            added = client.call("normal", "POST", "/api/cart/items", json={"product_id": in_stock[0], "quantity": 1})
            assert added.status_code == 201, added.text
            paid = client.call(kind, "POST", "/api/checkout", json={"card_token": "tok_visa"})
            assert paid.status_code == 201, paid.text

    # The primary provider answers 503: the payments service's span is an error, the fallback pays.
    checkouts("error", ERRORS, {"delay_ms": 0, "failure_rate": 1})
    # The primary takes longer than the slow policy's threshold (the shop waits up to 5 s).
    checkouts("slow", SLOW, {"delay_ms": SLOW_MS + 300, "failure_rate": 0})
    httpx.put(f"{payments.base_url}/admin/providers/primary", json={"delay_ms": 0}, timeout=10).raise_for_status()
    client.close()
    return client


def _start_tiers(otelcol, work, started: list[Any]):
    """Jaeger, VictoriaLogs, Prometheus (remote write on), two gateways and the agent, all on loopback."""
    jaeger = Jaeger(work)
    started.append(jaeger.start())
    logs = VictoriaLogs(work)
    started.append(logs.start())
    gateways, gateway_ports = [], []
    for index in (1, 2):
        config, ports = local_config(GATEWAY, work / f"gateway-{index}")
        gateways.append(config)
        gateway_ports.append(ports)
    agent_config, agent_ports = local_config(AGENT, work / "agent")
    own_metrics = [f"127.0.0.1:{p[8888]}" for p in (agent_ports, *gateway_ports)]
    prometheus = Prometheus(work, {"collector:8888": own_metrics}, remote_write=True)
    started.append(prometheus.start())
    for config in gateways:
        config["exporters"]["otlp_grpc/jaeger"]["endpoint"] = jaeger.otlp_grpc
        config["exporters"]["otlp_http/victorialogs"]["endpoint"] = logs.otlp_endpoint
        config["exporters"]["prometheus_remote_write"]["endpoint"] = f"{prometheus.url}/api/v1/write"
    # The headless Service's DNS answer, as a static list; the ClusterIP Service, as the first gateway.
    agent_config["exporters"]["load_balancing"]["resolver"] = {
        "static": {"hostnames": [f"127.0.0.1:{p[4317]}" for p in gateway_ports]}
    }
    agent_config["exporters"]["otlp_grpc/gateway"]["endpoint"] = f"127.0.0.1:{gateway_ports[0][4317]}"
    gateway_collectors = []
    for index, (config, ports) in enumerate(zip(gateways, gateway_ports, strict=True), 1):
        collector = Collector(otelcol, config, work, f"gateway-{index}", ports[13133], {"POD_IP": "127.0.0.1"})
        started.append(collector.start())
        gateway_collectors.append(collector)
    agent = Collector(
        otelcol, agent_config, work, "agent", agent_ports[13133], {"POD_IP": "127.0.0.1", "K8S_NODE_NAME": "node-1"}
    )
    started.append(agent.start())

    return jaeger, prometheus, gateway_collectors, agent, agent_ports


@pytest.fixture(scope="module")
def tier_run(otelcol, tmp_path_factory):
    if not backends_built():
        pytest.skip(BACKENDS_NOT_BUILT)
    if PROMETHEUS is None:
        pytest.skip("prometheus not found: apt-get install prometheus")
    work = tmp_path_factory.mktemp("tier")
    started: list[Any] = []
    try:
        jaeger, prometheus, gateway_collectors, agent, agent_ports = _start_tiers(otelcol, work, started)
        common = {
            "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{agent_ports[4318]}",
            "OTEL_BSP_SCHEDULE_DELAY": "200",
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
                "SHOP_PAYMENTS_TIMEOUT": "5",
                "SHOP_PASSWORD_ITERATIONS": "1000",
                "OTEL_MONITOR_USER_ID_KEY": "test-key",
            }
            with launched("examples.shop.app:app", shop_env) as shop:
                sent = _send_traffic(shop, payments)
                stop_flushing(shop)
            stop_flushing(payments)
        yield TierRun(sent, jaeger, agent, gateway_collectors, prometheus)
    finally:
        for process in reversed(started):
            process.stop()


def _wait_for_traces(run: TierRun, kind: str) -> dict[str, dict[str, Any]]:
    wanted = run.sent.traces[kind]

    def found():
        traces = {t: run.jaeger.trace(t) for t in wanted}
        return traces if all(traces.values()) else None

    # decision_wait (10 s) at the gateway, then the export queue's flush.
    return wait_for(found, 90, f"every {kind} trace in Jaeger", run.gateways[0], every=1.0)


@pytest.mark.parametrize("kind", ["error", "slow"])
def test_every_error_and_slow_trace_reaches_jaeger_whole(tier_run: TierRun, kind: str) -> None:
    """Every checkout with a failed provider call (error) and every slow checkout is kept, with the shop's
    and the payments service's spans together in one trace and no span cut from its parent."""
    traces = _wait_for_traces(tier_run, kind)
    assert len(traces) == {"error": ERRORS, "slow": SLOW}[kind]
    for trace_id, trace in traces.items():
        assert services(trace) == {"shop", "payments"}, trace_id
        assert orphans(trace, tier_run.sent.parents[trace_id]) == [], trace_id


def test_about_the_configured_share_of_the_other_traces_is_kept(tier_run: TierRun) -> None:
    """Of the ordinary traces, about the baseline share (10 %) is kept, each whole."""
    _wait_for_traces(tier_run, "error")  # the decisions are made by now
    normal = tier_run.sent.traces["normal"]
    kept = {t: trace for t in normal if (trace := tier_run.jaeger.trace(t))}
    share = len(kept) / len(normal)
    print(f"tail sampling: {len(kept)} of {len(normal)} ordinary traces kept ({share:.1%})")
    # Binomial, n = 400, p = 0.1: 0.04..0.18 is beyond 4 standard deviations either side.
    assert 0.4 * BASELINE <= share <= 1.8 * BASELINE, f"{len(kept)} of {len(normal)} kept"
    for trace_id, trace in kept.items():
        assert orphans(trace, tier_run.sent.parents[trace_id]) == [], trace_id


def test_both_gateways_take_a_share_of_the_traces(tier_run: TierRun) -> None:
    """The agent's load_balancing exporter spreads traces over both gateways (by trace id)."""
    _wait_for_traces(tier_run, "error")
    received = tier_run.prometheus.vector(
        'sum by (instance) ({__name__=~"otelcol_receiver_accepted_spans(_total)?", job="otel-collector"})', "instance"
    )
    readers = [g.config["service"]["telemetry"]["metrics"]["readers"][0] for g in tier_run.gateways]
    gateways = {f"127.0.0.1:{r['pull']['exporter']['prometheus']['port']}" for r in readers}
    assert all(received.get(g, 0) > 0 for g in gateways), received


def test_metrics_through_the_gateways_are_exact(tier_run: TierRun) -> None:
    """Pushed by the gateways (prometheus_remote_write), the shop's calls per operation are the requests sent."""
    expected = {
        "signup": 1.0,
        "catalog_browse": 1.0,
        "product_view": NORMAL - 2.0,
        "cart_add": float(ERRORS + SLOW),
        "checkout": float(ERRORS + SLOW),
    }
    query = 'sum by (monitor_operation) (monitor_operation_duration_seconds_count{job="shop/shop"})'

    def settled():
        calls = tier_run.prometheus.vector(query, "monitor_operation")
        return calls if {op: calls.get(op) for op in expected} == expected else None

    wait_for(settled, 60, f"calls per operation == {expected}", tier_run.gateways[0])


# --- one gateway killed mid-traffic ------------------------------------------------------

CRASHES = 40  # error traces (the LEGACY2019 coupon bug, a 500) before and again after the kill


Samples = list[tuple[str, dict[str, str], float]]


@dataclass
class KillRun:
    sent: TracedClient
    jaeger: Jaeger
    agent: Collector
    prometheus: Prometheus
    app_output: str
    agent_healthy_after: bool
    agent_metrics_url: str
    live_metrics_url: str  # the gateway left alive
    at_kill: tuple[Samples, Samples]  # the agent's and the live gateway's own metrics at the kill
    dead_endpoint: str


def own_metrics(url: str) -> Samples:
    """A collector's own metrics (Prometheus text) as (name without _total, labels, value)."""
    with urllib.request.urlopen(url, timeout=10) as response:
        text = response.read().decode()
    samples = []
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        series, value = line.rsplit(" ", 1)
        name, _, labels = series.partition("{")
        samples.append((name.removesuffix("_total"), dict(LABEL.findall(labels)), float(value)))
    return samples


def metric_sum(samples: Samples, name: str, **match: str) -> float:
    return sum(v for n, labels, v in samples if n == name and all(labels.get(k) == w for k, w in match.items()))


@pytest.fixture(scope="module")
def kill_run(otelcol, tmp_path_factory):
    """Error traces (every one kept by the errors policy) through the tiers; once every trace of the first
    half is in Jaeger, the second gateway is killed (SIGKILL), and the second half is sent."""
    if not backends_built():
        pytest.skip(BACKENDS_NOT_BUILT)
    if PROMETHEUS is None:
        pytest.skip("prometheus not found: apt-get install prometheus")
    work = tmp_path_factory.mktemp("kill")
    started: list[Any] = []
    try:
        jaeger, prometheus, gateways, agent, agent_ports = _start_tiers(otelcol, work, started)
        agent_metrics_url = f"http://127.0.0.1:{agent_ports[8888]}/metrics"
        reader = gateways[0].config["service"]["telemetry"]["metrics"]["readers"][0]["pull"]["exporter"]["prometheus"]
        live_metrics_url = f"http://127.0.0.1:{reader['port']}/metrics"
        dead_endpoint = gateways[1].config["receivers"]["otlp"]["protocols"]["grpc"]["endpoint"]
        env = {
            "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{agent_ports[4318]}",
            "OTEL_BSP_SCHEDULE_DELAY": "200",
            "OTEL_METRIC_EXPORT_INTERVAL": "1000",
            "OTEL_MONITOR_CONFIG": str(CONFIG_FILE),
            "OTEL_SERVICE_NAME": "shop",
            "OTEL_RESOURCE_ATTRIBUTES": "service.namespace=shop,deployment.environment.name=e2e",
            "DATABASE_URL": f"sqlite:///{work / 'shop.db'}",
            "SHOP_PASSWORD_ITERATIONS": "1000",
            "OTEL_MONITOR_USER_ID_KEY": "test-key",
        }
        with launched("examples.shop.app:app", env) as shop:
            client = TracedClient(shop.base_url)
            signup = client.call(
                "setup", "POST", "/api/signup", json={"email": "k@example.com", "password": PASSWORD, "name": "Kim"}
            )
            # A new connection for every request: uvicorn closes one after an unhandled error.
            client.headers = {"Authorization": f"Bearer {signup.json()['token']}", "Connection": "close"}
            # The coupon crashes the checkout before the cart is touched: one cart serves every crash, so after
            # the kill the only traces are the crashes, whose spans the test can count.
            client.call("setup", "POST", "/api/cart/items", json={"product_id": 1, "quantity": 1})
            for phase in ("before", "after"):
                for _ in range(CRASHES):
                    client.call(phase, "POST", "/api/checkout", json={"card_token": "tok_visa", "coupon": "LEGACY2019"})
                if phase == "before":
                    wait_for(
                        lambda: all(jaeger.trace(t) for t in client.traces["before"]),
                        90,
                        "every trace of the first half in Jaeger",
                        gateways[1],
                        every=1.0,
                    )
                    gateways[1].kill()
                    at_kill = own_metrics(agent_metrics_url), own_metrics(live_metrics_url)
            client.close()
            output = stop_flushing(shop)
        yield KillRun(
            client,
            jaeger,
            agent,
            prometheus,
            output,
            agent._healthy(),
            agent_metrics_url,
            live_metrics_url,
            at_kill,
            dead_endpoint,
        )
    finally:
        for process in reversed(started):
            process.stop()


def test_killing_a_gateway_leaves_the_app_and_the_agent_serving(kill_run: KillRun) -> None:
    """The app answers as before (each crash a 500, nothing else) and never fails an export; the agent stays up."""
    statuses = kill_run.sent.statuses
    assert statuses["before 500"] == statuses["after 500"] == CRASHES, statuses
    assert not [line for line in kill_run.app_output.splitlines() if "export" in line.lower()]
    assert kill_run.agent_healthy_after and kill_run.agent.alive()


def _settled_after_kill(kill_run: KillRun) -> list[str]:
    after = kill_run.sent.traces["after"]
    counts: list[int] = []

    def kept():  # settled: the same count three polls running (past the live gateway's decision_wait)
        found = [t for t in after if kill_run.jaeger.trace(t)]
        counts.append(len(found))
        return found if len(found) >= CRASHES // 5 and counts[-3:] == [len(found)] * 3 else None

    return wait_for(
        kept, 90, "traces of the second half in Jaeger (through the live gateway)", kill_run.agent, every=3.0
    )


def test_what_a_killed_gateway_loses_is_bounded(kill_run: KillRun) -> None:
    """Traces routed to the live gateway still arrive whole; only those routed to the dead one are held back."""
    after = kill_run.sent.traces["after"]
    found = _settled_after_kill(kill_run)
    for trace_id in found:
        assert orphans(kill_run.jaeger.trace(trace_id), kill_run.sent.parents[trace_id]) == []
    print(
        f"gateway killed: {len(found)} of {len(after)} later error traces kept, {len(after) - len(found)} routed "
        "to the dead gateway"
    )
    assert 0 < len(found) < len(after)


def test_the_agent_counts_what_the_dead_gateway_did_not_get(kill_run: KillRun) -> None:
    """The collectors' own metrics count the loss: what the agent received after the kill less what the live
    gateway received is exactly the spans of the lost traces; the agent's load_balancing exporter counts them
    as failed (with the live share of the same requests: an upper bound), at the dead gateway's endpoint only."""
    after = kill_run.sent.traces["after"]
    lost = len(after) - len(_settled_after_kill(kill_run))
    # Every checkout trace has the same shape (the coupon crash); the first half is all in Jaeger.
    per_trace = {len(kill_run.jaeger.trace(t)["spans"]) for t in kill_run.sent.traces["before"]}
    assert len(per_trace) == 1, per_trace

    def drained():
        end = own_metrics(kill_run.agent_metrics_url)
        return end if metric_sum(end, "otelcol_exporter_queue_size", exporter="load_balancing") == 0 else None

    agent = wait_for(drained, 30, "the agent's load_balancing queue empty", kill_run.agent)
    live = own_metrics(kill_run.live_metrics_url)
    (agent_at_kill, live_at_kill) = kill_run.at_kill
    accepted = "otelcol_receiver_accepted_spans"
    received = metric_sum(agent, accepted) - metric_sum(agent_at_kill, accepted)
    delivered = metric_sum(live, accepted) - metric_sum(live_at_kill, accepted)
    failed = metric_sum(agent, "otelcol_exporter_send_failed_spans", exporter="load_balancing")
    failed_by_endpoint = {
        labels["endpoint"]: v
        for n, labels, v in agent
        if n == "otelcol_loadbalancer_backend_outcome" and labels.get("success") == "false" and v
    }
    print(
        f"gateway killed: {lost} of {len(after)} later error traces lost, {lost * min(per_trace)} spans; own "
        f"metrics: agent received {received:.0f} spans after the kill, live gateway {delivered:.0f}, missing "
        f"{received - delivered:.0f}; load_balancing send_failed_spans {failed:.0f}, failed requests by "
        f"endpoint {failed_by_endpoint}"
    )
    assert metric_sum(agent_at_kill, "otelcol_exporter_send_failed_spans", exporter="load_balancing") == 0
    assert received - delivered == lost * min(per_trace)
    assert received - delivered <= failed <= received
    assert list(failed_by_endpoint) == [kill_run.dead_endpoint]

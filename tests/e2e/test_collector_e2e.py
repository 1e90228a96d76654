"""End to end, as processes on loopback: the example shop and its payment provider under
opentelemetry-instrument send OTLP to the project's collector running a shipped config, and a real
Prometheus (Debian's 2.42) scrapes the collector's prometheus exporter and evaluates the generated rules.

Prometheus 2.42 rather than 3.x: it is the Debian package CI already installs (promtool comes with it),
nothing to build; and it takes metrics the way the shipped stack does, by scraping the collector's
`prometheus` exporter (the compose file runs 2.55, the same scrape and rule semantics).
"""

from __future__ import annotations

import re
import signal
import threading
import urllib.error
import urllib.parse
import urllib.request
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from opentelemetry.sdk.resources import Resource

from examples.traffic import TrafficReport, run_traffic
from otel_monitor.fast.otlp_exporters import OTLPMetricExporter
from otel_monitor.launcher.probe_command import run_probes
from otel_monitor.semantics.uptime import Probe, Uptime
from tests.support.collector_queries import (
    DASHBOARDS,
    dashboard_targets,
    dashboard_variables,
    load_dashboard,
    substitute_variables,
)
from tests.support.e2e_stack import (
    BACKENDS_NOT_BUILT,
    PROMETHEUS,
    Jaeger,
    Prometheus,
    TracedClient,
    VictoriaLogs,
    backends_built,
)
from tests.support.launch import LaunchedApp, launched
from tests.support.otelcol import SINGLE, Collector, free_port, local_config, wait_for
from tests.support.shop import OPERATION_OF

pytestmark = pytest.mark.slow

CONFIG_FILE = Path(__file__).resolve().parents[2] / "examples" / "shop" / "otel-monitor.yaml"
JOB = "shop/shop"  # service.namespace/service.name, as the compose stack sets them


CRASHES = 3  # checkouts sent with the LEGACY2019 coupon (a 500) besides what the traffic mix sends


def _crash_on_purpose(base_url: str) -> Counter[str]:
    """A customer who fills a cart and checks out with the LEGACY2019 coupon CRASHES times; returns the calls."""
    with httpx.Client(base_url=base_url, timeout=10) as client:
        signup = client.post(
            "/api/signup", json={"email": "legacy@example.com", "password": "correct horse battery", "name": "Lee"}
        )
        assert signup.status_code == 201, signup.text
        auth = {"Authorization": f"Bearer {signup.json()['token']}"}
        assert client.post("/api/cart/items", json={"product_id": 1, "quantity": 1}, headers=auth).status_code == 201
    for _ in range(CRASHES):  # a new connection each time: uvicorn closes one after an unhandled error
        crashed = httpx.post(
            f"{base_url}/api/checkout",
            json={"card_token": "tok_visa", "coupon": "LEGACY2019"},
            headers=auth,
            timeout=10,
        )
        assert crashed.status_code == 500, crashed.text
    return Counter(signup=1, cart_add=1, checkout=CRASHES)


def probing(url: str, endpoint: str) -> tuple[threading.Thread, threading.Event]:
    """`otel-monitor probe`'s loop probing ``url`` every second, sending to the collector, until the event is
    set: the probe's series for the overview's uptime panel. The collector's own health endpoint is probed, so
    the shop's request counts stay the traffic's."""
    uptime = Uptime(interval=1, timeout=10, probes=(Probe(url),), configured=True)
    exporter = OTLPMetricExporter(endpoint=f"{endpoint}/v1/metrics")
    resource = Resource.create({"service.name": "otel-monitor-probe"})
    stop = threading.Event()

    def loop() -> None:
        run_probes(uptime, exporter, resource, stop=stop, report=lambda _: None)
        exporter.shutdown()

    thread = threading.Thread(target=loop, name="probe", daemon=True)
    thread.start()
    return thread, stop


def stop_flushing(app: LaunchedApp) -> str:
    """SIGINT and wait, so the SDK's exit flush sends the last metrics (uvicorn re-raises SIGTERM before it)."""
    app.process.send_signal(signal.SIGINT)
    app.process.wait(30)
    return app.stop()


@dataclass
class SingleRun:
    prometheus: Prometheus
    collector: Collector
    report: TrafficReport
    expected: Counter[str]
    crashes: int


@pytest.fixture(scope="module")
def single_run(otelcol, tmp_path_factory):
    """The single-machine collector (collector/otelcol-config.yaml) and Prometheus; seeded shop traffic."""
    if PROMETHEUS is None:
        pytest.skip("prometheus not found: apt-get install prometheus")
    work = tmp_path_factory.mktemp("single")
    config, ports = local_config(SINGLE, work)
    # No trace or log backend in this run: their exporters queue on disk and retry.
    config["exporters"]["otlp_grpc/jaeger"]["endpoint"] = f"127.0.0.1:{free_port()}"
    config["exporters"]["otlp_http/victorialogs"]["endpoint"] = f"http://127.0.0.1:{free_port()}/insert/opentelemetry"
    collector = Collector(otelcol, config, work, "collector", ports[13133]).start()
    prometheus = Prometheus(
        work, {"collector:8889": f"127.0.0.1:{ports[8889]}", "collector:8888": f"127.0.0.1:{ports[8888]}"}
    ).start()
    try:
        common = {
            "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{ports[4318]}",
            "OTEL_BSP_SCHEDULE_DELAY": "200",
            "OTEL_METRIC_EXPORT_INTERVAL": "1000",
            "OTEL_MONITOR_CONFIG": str(CONFIG_FILE),
            "OTEL_RESOURCE_ATTRIBUTES": "service.namespace=shop,deployment.environment.name=e2e",
            "OTEL_MONITOR_HEALTH_INTERVAL": "1",
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
                "SHOP_PASSWORD_ITERATIONS": "1000",
                "OTEL_MONITOR_USER_ID_KEY": "test-key",
            }
            probe, stop_probing = probing(f"http://127.0.0.1:{ports[13133]}/", common["OTEL_EXPORTER_OTLP_ENDPOINT"])
            with launched("examples.shop.app:app", shop_env) as shop:
                report = run_traffic(shop.base_url, requests=1500, duration=120, concurrency=4, seed=20261206)
                stop_probing.set()
                probe.join(30)
                extra = _crash_on_purpose(shop.base_url)
                output = stop_flushing(shop)
            stop_flushing(payments)
        assert sum(report.transport_errors.values()) <= report.by_status[500], f"{report.summary()}\n{output[-3000:]}"
        unknown = set(report.by_endpoint) - set(OPERATION_OF)
        assert not unknown, f"the traffic called endpoints this test does not map: {unknown}"
        expected = Counter({OPERATION_OF[e]: n for e, n in report.answered_by_endpoint.items()}) + extra
        yield SingleRun(prometheus, collector, report, expected, report.by_status[500] + CRASHES)
    finally:
        prometheus.stop()
        collector.stop()


def _calls(prometheus: Prometheus, selector: str = "") -> dict[str, float]:
    return prometheus.vector(
        f'sum by (monitor_operation) (monitor_operation_duration_seconds_count{{job="{JOB}"{selector}}})',
        "monitor_operation",
    )


def test_request_counts_in_prometheus_equal_the_requests_sent(single_run: SingleRun) -> None:
    """Per operation, Prometheus holds exactly as many calls as requests the shop answered."""
    expected = {op: float(n) for op, n in single_run.expected.items()}

    def settled():
        calls = _calls(single_run.prometheus)
        return calls if {op: calls.get(op) for op in expected} == expected else None

    calls = wait_for(settled, 60, f"Prometheus calls per operation == {expected}", single_run.collector)
    assert set(calls) - set(expected) <= {"catalog_load", "payment_authorize"}


def test_success_rate_in_prometheus_counts_the_server_errors_sent(single_run: SingleRun) -> None:
    """The shop's failed calls (error_type set) are exactly its 500 answers; 4xx answers are successes."""
    crashes = single_run.crashes

    def errors():
        calls = _calls(single_run.prometheus, ', error_type!=""')
        return sum(v for op, v in calls.items() if op in single_run.expected)

    try:
        wait_for(lambda: errors() == crashes, 30, f"{crashes} failed calls in Prometheus")
    except AssertionError as exc:
        failed = _calls(single_run.prometheus, ', error_type!=""')
        raise AssertionError(f"{exc}: {failed}\n{single_run.report.summary()}") from None
    checkout = f'monitor_operation="checkout", job="{JOB}"'
    (rate,) = single_run.prometheus.vector(
        f'sum(monitor_operation_duration_seconds_count{{{checkout}, error_type=""}})'
        f" / sum(monitor_operation_duration_seconds_count{{{checkout}}})",
        "",
    ).values()
    answered = single_run.expected["checkout"]
    assert rate == pytest.approx(1 - crashes / answered)


# --- the shipped dashboards show real data -----------------------------------------------------

# Panels whose query can only return data under a condition this traffic does not produce.
EMPTY_UNLESS = {
    ("overview.json", "Firing alerts"): "only while an alert fires; the traffic is healthy",
    ("collector.json", "Failed sends / s"): "the collector counts a failed send once an exporter gives up "
    "after its retries (minutes); the run's exporters deliver or retry",
    ("collector.json", "Dropped in the app (SDK queues)"): "only when an app's SDK queue overflows or an "
    "export fails; this traffic is well below capacity",
    ("collector.json", "otel-monitor internal errors"): "only when otel-monitor itself catches an error",
    ("operations.json", "Fallback share by operation"): "only when the primary payment provider fails and "
    "the shop falls back; here it always answers "
    "(test_collector_tier.py makes it fail)",
}
_LABEL_VALUES = re.compile(r"^label_values\((?:(.+),\s*)?(\w+)\)$")


def _variable_values(prometheus: Prometheus, variable: dict, known: dict[str, str]) -> str:
    """A Prometheus template variable's real values, formatted as Grafana puts them into a query:
    a regex alternation for a multi-value variable, the first value for a single-value one."""
    match = _LABEL_VALUES.match(variable["query"]["query"])
    assert match, f"variable {variable['name']}: unsupported query {variable['query']}"
    selector, label = substitute_variables(match.group(1) or "", known), match.group(2)
    path = f"/api/v1/label/{label}/values"
    if selector:
        path += "?" + urllib.parse.urlencode({"match[]": selector})
    values = sorted(prometheus.get(path)["data"])
    assert values, f"variable {variable['name']} ({variable['query']['query']}) has no value"
    if variable.get("multi") or variable.get("includeAll"):
        # As Grafana does: regex metacharacters escaped, the backslash doubled inside a PromQL string.
        return "|".join(re.sub(r"([\\^$.|?*+()\[\]{}])", r"\\\\\1", v) for v in values)
    return values[0]


def _dashboard_queries(prometheus: Prometheus) -> list[tuple[str, str, str]]:
    """(dashboard, panel, PromQL with real variable values) for every Prometheus target of every dashboard."""
    queries = []
    for path in DASHBOARDS:
        dashboard = load_dashboard(path)
        known: dict[str, str] = {}
        for variable in dashboard_variables(dashboard):
            if variable["datasource"]["type"] == "prometheus":
                known[variable["name"]] = _variable_values(prometheus, variable, known)
        queries += [
            (name, title, substitute_variables(target["expr"], known))
            for name, title, target in dashboard_targets("prometheus")
            if name == path.name
        ]
    return queries


def test_every_dashboard_query_returns_data(single_run: SingleRun) -> None:
    """After the shop's traffic went through the collector, every PromQL query of every shipped dashboard
    (its template variables set to the values Prometheus holds) returns data; only the panels listed in
    EMPTY_UNLESS, each with its reason, may be empty."""
    prometheus = single_run.prometheus
    # The per-operation counts settle first, so every scrape and recording rule has had the traffic.
    wait_for(
        lambda: _calls(prometheus).get("checkout") == single_run.expected["checkout"],
        60,
        "the checkouts in Prometheus",
        single_run.collector,
    )
    queries = _dashboard_queries(prometheus)
    assert len(queries) > 40 and {d for d, _, _ in queries} == {p.name for p in DASHBOARDS}

    def has_data(dashboard: str, title: str, query: str) -> bool:
        try:
            return bool(prometheus.query(query))
        except urllib.error.HTTPError as exc:
            raise AssertionError(f"{dashboard}: {title}: Prometheus rejects {query}: {exc.read()[:300]!r}") from None

    def empty() -> list[tuple[str, str, str]]:
        return [(d, t, q) for d, t, q in queries if (d, t) not in EMPTY_UNLESS and not has_data(d, t, q)]

    try:
        wait_for(lambda: not empty(), 60, "every dashboard query returns data")
    except AssertionError:
        lines = "\n".join(f"{d}: {t}: {q}" for d, t, q in empty())
        raise AssertionError(f"dashboard queries with no data:\n{lines}") from None
    panels = {(d, t) for d, t, _ in queries}
    assert set(EMPTY_UNLESS) <= panels, "EMPTY_UNLESS names a panel no dashboard has"
    for promised in ("operations.json", "errors.json", "journeys.json", "collector.json"):
        assert {t for d, t in panels - set(EMPTY_UNLESS) if d == promised}, f"{promised} shows nothing"


def test_every_generated_rule_evaluates_against_real_data(single_run: SingleRun) -> None:
    """Prometheus evaluates every recording and alerting rule on the collector's real series without an
    error (a query that works on one series can fail on several, e.g. two names colliding after rate())."""
    prometheus = single_run.prometheus

    def evaluated() -> list[dict]:
        rules = [r for g in prometheus.get("/api/v1/rules")["data"]["groups"] for r in g["rules"]]
        return rules if rules and all(r.get("lastEvaluation", "").startswith("2") for r in rules) else []

    rules = wait_for(evaluated, 60, "every rule evaluated once")
    broken = {r["name"]: r.get("lastError") for r in rules if r["health"] != "ok"}
    assert not broken, broken


# --- redaction: an app without otel-monitor, scrubbed by the collector -----------------------

SECRETS = {  # attribute -> (planted value, what the collector must leave of it)
    "user.email": ("jane.doe@example.com", "[REDACTED:email]"),
    "http.request.header.authorization": ("Bearer eyJhbGciOi.J9-x_y", "Bearer [REDACTED]"),
    "url.query": ("page=2&token=s3cr3t-value&sort=asc", "page=2&token=[REDACTED]&sort=asc"),
    "payment.card": ("4111-1111-1111-1111", "[REDACTED:card]"),
    "payment.card.amex": ("3782 822463 10005", "[REDACTED:card]"),
}
BENIGN = {  # ordinary values that look a little like secrets and must pass untouched
    "http.route": "/api/products/{id}",
    "order.created_ms": "1733450000000",
    "order.id": "550e8400-e29b-41d4-a716-446655440000",
    "product.sku": "SKU-1234-5678",
    "user.handle": "jane.doe",
}


@dataclass
class RedactionRun:
    jaeger: object
    logs: object
    metrics_text: str
    trace_id: str


@pytest.fixture(scope="module")
def redaction_run(otelcol, tmp_path_factory):
    """A plain OpenTelemetry SDK app (no otel-monitor) sends secrets in span, span-event, log and metric
    attributes and a log body through the single-machine collector to Jaeger, VictoriaLogs and Prometheus."""
    from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
    from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk._logs import LoggerProvider
    from opentelemetry.sdk._logs.export import SimpleLogRecordProcessor
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor

    if not backends_built():
        pytest.skip(BACKENDS_NOT_BUILT)
    work = tmp_path_factory.mktemp("redaction")
    jaeger, logs = Jaeger(work).start(), VictoriaLogs(work).start()
    config, ports = local_config(SINGLE, work / "collector")
    config["exporters"]["otlp_grpc/jaeger"]["endpoint"] = jaeger.otlp_grpc
    config["exporters"]["otlp_http/victorialogs"]["endpoint"] = logs.otlp_endpoint
    collector = Collector(otelcol, config, work, "collector", ports[13133]).start()
    try:
        endpoint = f"http://127.0.0.1:{ports[4318]}"
        resource = Resource.create({"service.name": "plain-app"})
        tracer_provider = TracerProvider(resource=resource)
        tracer_provider.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter(endpoint=f"{endpoint}/v1/traces")))
        logger_provider = LoggerProvider(resource=resource)
        logger_provider.add_log_record_processor(
            SimpleLogRecordProcessor(OTLPLogExporter(endpoint=f"{endpoint}/v1/logs"))
        )
        reader = PeriodicExportingMetricReader(
            OTLPMetricExporter(endpoint=f"{endpoint}/v1/metrics"), export_interval_millis=3_600_000
        )
        meter_provider = MeterProvider(resource=resource, metric_readers=[reader])
        attributes = {**{k: v for k, (v, _) in SECRETS.items()}, **BENIGN}
        with tracer_provider.get_tracer("plain").start_as_current_span("checkout", attributes=attributes) as span:
            span.add_event("charge failed", attributes=attributes)
            trace_id = format(span.get_span_context().trace_id, "032x")
            logger_provider.get_logger("plain").emit(
                body="charge failed for jane.doe@example.com with card 4111 1111 1111 1111 (Bearer abc.def-9)",
                attributes=attributes,
                severity_text="ERROR",
            )
        meter_provider.get_meter("plain").create_counter("plain.charges").add(1, attributes)
        for provider in (tracer_provider, logger_provider, meter_provider):
            provider.shutdown()
        exporter = f"http://127.0.0.1:{ports[8889]}/metrics"

        def scraped():
            with urllib.request.urlopen(exporter, timeout=5) as response:
                text = response.read().decode()
            return text if "plain_charges" in text else None

        metrics_text = wait_for(scraped, 30, "plain_charges at the prometheus exporter", collector)
        yield RedactionRun(jaeger, logs, metrics_text, trace_id)
    finally:
        collector.stop()
        logs.stop()
        jaeger.stop()


def _redaction_expected() -> dict[str, str]:
    return {**{k: scrubbed for k, (_, scrubbed) in SECRETS.items()}, **BENIGN}


def test_collector_scrubs_secrets_in_spans_and_span_events(redaction_run: RedactionRun) -> None:
    """Jaeger holds the span and its event with every planted secret replaced and ordinary values as sent."""
    trace = wait_for(lambda: redaction_run.jaeger.trace(redaction_run.trace_id), 60, "the plain app's trace")
    (span,) = trace["spans"]
    tags = {t["key"]: t["value"] for t in span["tags"]}
    event = {f["key"]: f["value"] for f in span["logs"][0]["fields"] if f["key"] != "event"}
    expected = _redaction_expected()
    assert {k: tags.get(k) for k in expected} == expected
    assert {k: event.get(k) for k in expected} == expected


def test_collector_scrubs_secrets_in_log_bodies_and_attributes(redaction_run: RedactionRun) -> None:
    """VictoriaLogs holds the log record with its body and attributes scrubbed."""
    entries = wait_for(lambda: redaction_run.logs.query('service.name:"plain-app"'), 60, "the plain app's log")
    (entry,) = entries
    assert entry["_msg"] == "charge failed for [REDACTED:email] with card [REDACTED:card] (Bearer [REDACTED])"
    expected = _redaction_expected()
    assert {k: entry.get(k) for k in expected} == expected


def test_collector_scrubs_secrets_in_metric_attributes(redaction_run: RedactionRun) -> None:
    """The prometheus exporter shows the data point's labels scrubbed."""
    (line,) = [x for x in redaction_run.metrics_text.splitlines() if x.startswith("plain_charges_total{")]
    for key, value in _redaction_expected().items():
        assert f'{key.replace(".", "_")}="{value}"' in line, (key, line)
    for planted, _ in SECRETS.values():
        assert planted not in redaction_run.metrics_text


# --- a collector restart mid-traffic loses nothing ----------------------------------------

# AFTER is short on purpose: the app stops within a second of the collector's return, while the export
# the restart refused is still waiting out its backoff (about 1 s). The exit flush ends that wait; the batch
# must get its retry then (otel_monitor.pipeline.exporters.export_through_exit), not be dropped.
BEFORE, DURING, AFTER = 150, 30, 20


@dataclass
class RestartRun:
    client: TracedClient
    jaeger: Jaeger
    prometheus: Prometheus
    collector: Collector
    app_output: str


@pytest.fixture(scope="module")
def restart_run(otelcol, tmp_path_factory):
    """The single collector is stopped (SIGTERM) mid-traffic, requests go on while it is down, then it
    starts again on the same ports and the same file-backed queue."""
    if not backends_built():
        pytest.skip(BACKENDS_NOT_BUILT)
    if PROMETHEUS is None:
        pytest.skip("prometheus not found: apt-get install prometheus")
    work = tmp_path_factory.mktemp("restart")
    jaeger, logs = Jaeger(work).start(), VictoriaLogs(work).start()
    config, ports = local_config(SINGLE, work / "collector")
    config["exporters"]["otlp_grpc/jaeger"]["endpoint"] = jaeger.otlp_grpc
    config["exporters"]["otlp_http/victorialogs"]["endpoint"] = logs.otlp_endpoint
    collector = Collector(otelcol, config, work, "collector", ports[13133]).start()
    prometheus = Prometheus(
        work, {"collector:8889": f"127.0.0.1:{ports[8889]}", "collector:8888": f"127.0.0.1:{ports[8888]}"}
    ).start()
    try:
        env = {
            "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{ports[4318]}",
            "OTEL_BSP_SCHEDULE_DELAY": "200",
            "OTEL_METRIC_EXPORT_INTERVAL": "1000",
            "OTEL_MONITOR_CONFIG": str(CONFIG_FILE),
            "OTEL_RESOURCE_ATTRIBUTES": "service.namespace=shop,deployment.environment.name=e2e",
            "OTEL_SERVICE_NAME": "shop",
            "DATABASE_URL": f"sqlite:///{work / 'shop.db'}",
            "SHOP_PASSWORD_ITERATIONS": "1000",
            "OTEL_MONITOR_USER_ID_KEY": "test-key",
        }
        with launched("examples.shop.app:app", env) as shop:
            client = TracedClient(shop.base_url)
            for phase, count in enumerate((BEFORE, DURING, AFTER)):
                if phase == 1:
                    collector.stop()  # SIGTERM: as a container's stop or a rolling update
                elif phase == 2:
                    collector.start()  # the same ports and the same file-backed queue
                for i in range(count):
                    assert client.call("product_view", "GET", f"/api/products/{1 + i % 5}").status_code == 200
            client.close()
            output = stop_flushing(shop)
        yield RestartRun(client, jaeger, prometheus, collector, output)
    finally:
        for process in (prometheus, collector, logs, jaeger):
            process.stop()


def test_a_collector_restart_loses_no_trace(restart_run: RestartRun) -> None:
    """Every trace sent before, while and after the collector was down reaches Jaeger."""
    wanted = restart_run.client.traces["product_view"]
    assert len(wanted) == BEFORE + DURING + AFTER

    def missing() -> list[int]:
        return [i for i, t in enumerate(wanted) if restart_run.jaeger.trace(t) is None]

    try:
        wait_for(lambda: not missing(), 120, "every trace in Jaeger", every=2.0)
    except AssertionError:
        lost = missing()
        phases = Counter("before" if i < BEFORE else "during" if i < BEFORE + DURING else "after" for i in lost)
        app = [line for line in restart_run.app_output.splitlines() if "HTTP/1.1" not in line]
        raise AssertionError(
            f"{len(lost)} of {len(wanted)} traces lost across the restart ({dict(phases)}); "
            f"the app said:\n" + "\n".join(app[-20:])
        ) from None


def test_a_collector_restart_keeps_metrics_exact(restart_run: RestartRun) -> None:
    """Prometheus ends with exactly the requests sent, the restart notwithstanding."""
    expected = float(BEFORE + DURING + AFTER)
    wait_for(
        lambda: _calls(restart_run.prometheus).get("product_view") == expected,
        60,
        f"{expected:.0f} product_view calls in Prometheus",
        restart_run.collector,
    )

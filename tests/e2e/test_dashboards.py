"""Grafana provisioning and dashboards: every query checked, every datasource defined.

PromQL is parsed by promtool; LogsQL runs against a real VictoriaLogs (`make backends`) holding the
records an instrumented app sends over OTLP, so field names are checked as well as syntax.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import pytest
import yaml

from otel_monitor import semconv
from tests.support.collector_queries import (
    DASHBOARDS,
    ROOT,
    dashboard_queries,
    dashboard_targets,
    dashboard_variables,
    load_dashboard,
    panels,
    substitute_variables,
)
from tests.support.e2e_stack import JAEGER, VICTORIA_LOGS, Jaeger, VictoriaLogs
from tests.support.otelcol import wait_for

PROVISIONING = ROOT / "collector" / "grafana" / "provisioning"
EXPECTED = {"overview", "operations", "errors", "journeys", "collector", "business"}


def _datasources() -> dict[str, dict]:
    config = yaml.safe_load((PROVISIONING / "datasources" / "datasources.yaml").read_text())
    return {d["uid"]: d for d in config["datasources"]}


def _every_datasource_reference(node):
    if isinstance(node, dict):
        datasource = node.get("datasource")
        if isinstance(datasource, dict) and "uid" in datasource:
            yield datasource
        for value in node.values():
            yield from _every_datasource_reference(value)
    elif isinstance(node, list):
        for value in node:
            yield from _every_datasource_reference(value)


def test_the_dashboards_exist():
    """Service overview, operations, errors, journeys, business and collector health are provisioned as files."""
    assert {p.stem for p in DASHBOARDS} == EXPECTED


def test_dashboard_provider_points_at_the_mounted_folder():
    """The file provider reads the folder docker compose mounts the dashboards into."""
    provider = yaml.safe_load((PROVISIONING / "dashboards" / "dashboards.yaml").read_text())["providers"][0]
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    mounts = {v.split(":")[0]: v.split(":")[1] for v in compose["services"]["grafana"]["volumes"] if v.startswith("./")}
    assert mounts["./collector/grafana/dashboards"] == provider["options"]["path"]


def test_datasources_have_fixed_unique_uids():
    """Each provisioned datasource has a fixed uid, and uids are unique."""
    config = yaml.safe_load((PROVISIONING / "datasources" / "datasources.yaml").read_text())
    uids = [d["uid"] for d in config["datasources"]]
    assert len(uids) == len(set(uids)) and all(uids)


def test_every_datasource_uid_used_exists():
    """Every datasource a dashboard, panel, target or variable names is provisioned with that uid and type."""
    known = _datasources()
    for path in DASHBOARDS:
        for reference in _every_datasource_reference(load_dashboard(path)):
            assert reference["uid"] in known, f"{path.name}: unknown datasource uid {reference['uid']}"
            assert known[reference["uid"]]["type"] == reference["type"], f"{path.name}: {reference}"


def test_cross_links_between_signals_point_at_existing_datasources():
    """Logs link to traces, traces to logs and metrics, exemplars to traces: each link names a provisioned
    datasource of the right kind."""
    known = _datasources()
    logs, traces = known["victorialogs"], known["jaeger"]
    assert logs["type"] == "victoriametrics-logs-datasource" and traces["type"] == "jaeger"
    assert {f["datasourceUid"] for f in logs["jsonData"]["derivedFields"]} == {"jaeger"}
    to_logs = traces["jsonData"]["tracesToLogsV2"]
    assert to_logs["datasourceUid"] == "victorialogs"
    # VictoriaLogs takes LogsQL: the trace-to-logs query must be a LogsQL filter on the trace id field.
    assert to_logs["customQuery"] is True and to_logs["query"] == 'trace_id:="$${__trace.traceId}"'
    assert traces["jsonData"]["tracesToMetrics"]["datasourceUid"] == "prometheus"
    exemplars = known["prometheus"]["jsonData"]["exemplarTraceIdDestinations"]
    assert {e["datasourceUid"] for e in exemplars} == {"jaeger"}


def test_no_agpl_backend_is_referenced():
    """Loki and Tempo are gone: no datasource or dashboard names them."""
    for path in [PROVISIONING / "datasources" / "datasources.yaml", *DASHBOARDS]:
        text = path.read_text().lower()
        assert "loki" not in text and "tempo" not in text, path.name


def test_compose_installs_the_victorialogs_plugin():
    """Grafana in compose installs the VictoriaLogs datasource plugin the provisioning names."""
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    plugins = compose["services"]["grafana"]["environment"]["GF_INSTALL_PLUGINS"]
    assert "victoriametrics-logs-datasource" in plugins.split(",")


def test_jaeger_panels_search_error_traces_of_the_chosen_service():
    """Each Jaeger panel is a search of the service the dashboard's variable names, for failed calls."""
    targets = list(dashboard_targets("jaeger"))
    assert targets, "no Jaeger panel"
    for name, title, target in targets:
        assert target["queryType"] == "search", (name, title)
        assert target["service"] == "$service_name", (name, title)
        # Not error=true: Jaeger 2.12's memory store reads the HTTP API's "true" as a string, never a match.
        assert target["tags"] == f"{semconv.MONITOR_OPERATION_OUTCOME}=server_error", (name, title)


def test_dashboard_uids_are_unique_and_stable():
    """Each dashboard has its own fixed uid (links and bookmarks survive re-provisioning)."""
    uids = [load_dashboard(p)["uid"] for p in DASHBOARDS]
    assert len(set(uids)) == len(uids) and all(u.startswith("otel-monitor-") for u in uids)


@pytest.mark.parametrize("path", DASHBOARDS, ids=[p.name for p in DASHBOARDS])
def test_every_panel_has_a_unit_and_thresholds(path):
    """Each panel sets a unit and thresholds, so values read right and colour when bad."""
    for panel in panels(load_dashboard(path)):
        defaults = panel["fieldConfig"]["defaults"]
        assert defaults.get("unit"), f"{path.name}: {panel['title']} has no unit"
        steps = defaults.get("thresholds", {}).get("steps")
        assert steps and steps[0]["value"] is None, f"{path.name}: {panel['title']} has no thresholds"


@pytest.mark.parametrize("path", DASHBOARDS, ids=[p.name for p in DASHBOARDS])
def test_panels_do_not_overlap(path):
    """Panels occupy distinct grid cells within Grafana's 24 columns."""
    taken: set[tuple[int, int]] = set()
    for panel in panels(load_dashboard(path)):
        g = panel["gridPos"]
        assert g["x"] + g["w"] <= 24, panel["title"]
        cells = {(x, y) for x in range(g["x"], g["x"] + g["w"]) for y in range(g["y"], g["y"] + g["h"])}
        assert not cells & taken, f"{path.name}: {panel['title']} overlaps another panel"
        taken |= cells


def test_every_promql_query_parses(tmp_path: Path):
    """promtool parses every Prometheus panel query (Grafana variables substituted)."""
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool not found: apt-get install prometheus")
    rules = [
        {"record": f"dashboard:query:{i}", "expr": substitute_variables(query)}
        for i, (_, _, kind, query) in enumerate(dashboard_queries())
        if kind == "prometheus"
    ]
    assert len(rules) > 20
    rule_file = tmp_path / "dashboards.rules.yaml"
    rule_file.write_text(yaml.safe_dump({"groups": [{"name": "dashboards", "rules": rules}]}))
    result = subprocess.run([promtool, "check", "rules", str(rule_file)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


# --- LogsQL, run against VictoriaLogs --------------------------------------------------------

LOGS_KIND = "victoriametrics-logs-datasource"
SERVICE = "shop"
ENDPOINTS = {"instant": "query", "stats": "stats_query", "statsRange": "stats_query_range"}


def _logsql(url: str, target: dict, now: int) -> list:
    endpoint = ENDPOINTS[target.get("queryType", "instant")]
    params = {
        "query": substitute_variables(target["expr"], {"service_name": SERVICE}),
        "time": str(now),
        "start": str(now - 3600),
        "end": str(now),
        "step": "60s",
        "limit": "1000",
    }
    data = urllib.parse.urlencode(params).encode()
    try:
        with urllib.request.urlopen(f"{url}/select/logsql/{endpoint}", data=data, timeout=30) as response:
            body = response.read().decode()
    except urllib.error.HTTPError as exc:
        raise AssertionError(f"VictoriaLogs rejects {params['query']!r}: {exc.read().decode()[:300]}") from None
    if endpoint == "query":
        return [line for line in body.splitlines() if line.strip()]
    return json.loads(body)["data"]["result"]


@pytest.fixture(scope="module")
def victoria_logs(tmp_path_factory):
    """VictoriaLogs holding what an app sends over OTLP: one ERROR record with an exception and a
    fingerprint (as otel-monitor's log processor sets them) and one INFO record."""
    if not VICTORIA_LOGS.is_file():
        pytest.skip("VictoriaLogs not built: run `make backends` (needs Go)")
    from opentelemetry._logs import LogRecord, SeverityNumber
    from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
    from opentelemetry.sdk._logs import LoggerProvider
    from opentelemetry.sdk._logs.export import SimpleLogRecordProcessor
    from opentelemetry.sdk.resources import Resource

    logs = VictoriaLogs(tmp_path_factory.mktemp("victorialogs")).start()
    try:
        provider = LoggerProvider(resource=Resource.create({"service.name": SERVICE}))
        provider.add_log_record_processor(
            SimpleLogRecordProcessor(OTLPLogExporter(endpoint=f"{logs.otlp_endpoint}/v1/logs"))
        )
        logger = provider.get_logger("test_dashboards.shop")
        logger.emit(LogRecord(body="cart is empty", severity_number=SeverityNumber.WARN, severity_text="WARNING"))
        logger.emit(
            LogRecord(
                body="checkout failed",
                severity_number=SeverityNumber.ERROR,
                severity_text="ERROR",
                attributes={"monitor.error.fingerprint": "3f2a9c", "exception.type": "ValueError"},
            )
        )
        provider.shutdown()
        wait_for(lambda: len(logs.query("*")) == 2, 30, "both records in VictoriaLogs", logs)
        yield logs
    finally:
        logs.stop()


@pytest.mark.slow
def test_every_logsql_query_runs_and_finds_the_error_record(victoria_logs):
    """Each VictoriaLogs panel query parses and returns the ERROR record, and only it: the field names
    (service.name, severity_number, monitor.error.fingerprint, exception.type) are the ones OTLP gives."""
    targets = list(dashboard_targets(LOGS_KIND))
    assert targets, "no VictoriaLogs panel"
    now = int(time.time()) + 1
    for name, title, target in targets:
        rows = _logsql(victoria_logs.url, target, now)
        assert len(rows) == 1, f"{name}: {title}: {target['expr']} -> {rows}"
        assert "checkout failed" in rows[0] or "3f2a9c" in str(rows[0]), f"{name}: {title}: {rows}"


@pytest.mark.slow
def test_the_logsql_check_fails_on_a_bad_query(victoria_logs):
    """A malformed query or a misspelt field fails the check above."""
    now = int(time.time()) + 1
    with pytest.raises(AssertionError, match="rejects"):
        _logsql(victoria_logs.url, {"expr": 'service.name:="$service_name" | frobnicate'}, now)
    assert _logsql(victoria_logs.url, {"expr": 'service.name:="$service_name" severity:~"ERROR"'}, now) == []


@pytest.mark.slow
def test_service_name_variable_lists_the_services_that_sent_logs(victoria_logs):
    """The Errors dashboard's service_name variable asks VictoriaLogs for service.name values."""
    (variable,) = [
        v
        for path in DASHBOARDS
        for v in dashboard_variables(load_dashboard(path))
        if v["datasource"]["type"] == LOGS_KIND
    ]
    query = variable["query"]
    data = urllib.parse.urlencode({"query": query["query"], "field": query["field"]}).encode()
    with urllib.request.urlopen(f"{victoria_logs.url}/select/logsql/field_values", data=data, timeout=30) as r:
        values = [v["value"] for v in json.load(r)["values"]]
    assert values == [SERVICE]


@pytest.mark.slow
def test_jaeger_panel_search_finds_error_traces_only(tmp_path):
    """The Errors dashboard's Jaeger search (service, tags) run against Jaeger v2 fed over OTLP returns
    the trace whose span ended with an error status, and not the one that succeeded."""
    if not JAEGER.is_file():
        pytest.skip("Jaeger not built: run `make backends` (needs Go)")
    from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.trace import Status, StatusCode

    jaeger = Jaeger(tmp_path).start()
    try:
        provider = TracerProvider(resource=Resource.create({"service.name": SERVICE}))
        provider.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter(endpoint=jaeger.otlp_grpc, insecure=True)))
        tracer = provider.get_tracer("test_dashboards")
        # The outcome otel-monitor's span processor sets on an operation's span.
        with tracer.start_as_current_span(
            "checkout", attributes={semconv.MONITOR_OPERATION_OUTCOME: "server_error"}
        ) as failed:
            failed.set_status(Status(StatusCode.ERROR, "card declined"))
        with tracer.start_as_current_span("catalog_browse", attributes={semconv.MONITOR_OPERATION_OUTCOME: "success"}):
            pass
        provider.shutdown()
        wait_for(lambda: len(jaeger.traces(SERVICE)) == 2, 30, "both traces in Jaeger", jaeger)
        for name, title, target in dashboard_targets("jaeger"):
            tags = dict(pair.split("=", 1) for pair in target["tags"].split())
            query = urllib.parse.urlencode(
                {
                    "service": substitute_variables(target["service"], {"service_name": SERVICE}),
                    "tags": json.dumps(tags),
                    "limit": target["limit"],
                    "lookback": "1h",
                }
            )
            with urllib.request.urlopen(f"{jaeger.url}/api/traces?{query}", timeout=30) as response:
                traces = json.load(response)["data"] or []
            names = [span["operationName"] for trace in traces for span in trace["spans"]]
            assert names == ["checkout"], f"{name}: {title}: {names}"
    finally:
        jaeger.stop()

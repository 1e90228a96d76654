"""Every name used under collector/ (configs, rules, dashboards) is defined by the telemetry contract."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from otel_monitor import semconv
from otel_monitor.alerting.rules import prom_name
from tests.support.collector_queries import (
    ROOT,
    dashboard_queries,
    promql_metric_names,
    recorded_names,
    rule_expressions,
    substitute_variables,
)

COLLECTOR_FILES = sorted(p for p in (ROOT / "collector").rglob("*") if p.suffix in (".yaml", ".yml", ".json"))
# Our names in either spelling: dotted (OTel) or underscored (Prometheus). A
# preceding word character or hyphen means a file name (otel-monitor.yaml), not a name.
OUR_NAME = re.compile(r"(?<![\w\-/])monitor[._][a-z0-9_.]*[a-z0-9]")
OUR_RECORDING_NAME = re.compile(r"(?<![\w\-/])monitor:[a-z0-9_:]*[a-z0-9]")

# How the collector's Prometheus exporter spells each of our metrics.
HISTOGRAMS_IN_SECONDS = {semconv.METRIC_OPERATION_DURATION, semconv.METRIC_HEALTH_CHECK_DURATION}
COUNTERS = {
    semconv.METRIC_CACHE_REQUESTS,
    semconv.METRIC_FALLBACKS,
    semconv.METRIC_JOURNEY_MILESTONES,
    semconv.METRIC_SELF_DROPPED,
    semconv.METRIC_SELF_INTERNAL_ERRORS,
    semconv.METRIC_BUSINESS_EVENTS,
    semconv.METRIC_BUSINESS_USERS,
}
GAUGES = {semconv.METRIC_HEALTH_STATUS, semconv.METRIC_QUEUE_DEPTH}
# The httpcheck receiver's names (`otel-monitor probe` emits them): status and error are
# non-monotonic sums, gauges without a suffix in Prometheus; duration is in ms.
GAUGES |= {semconv.METRIC_HTTPCHECK_STATUS, semconv.METRIC_HTTPCHECK_ERROR}
GAUGES_IN_MILLISECONDS = {semconv.METRIC_HTTPCHECK_DURATION}
# Histograms whose unit is an annotation ({amount}): no unit suffix.
HISTOGRAMS_WITHOUT_UNIT = {semconv.METRIC_BUSINESS_AMOUNT}
# Not ours, allowed: Prometheus' own series, the OTel target_info, the
# collector's self-metrics, and the runtime metrics of
# opentelemetry-instrumentation-system-metrics (process.cpu.time -> ...).
STANDARD_METRICS = {
    "up",
    "target_info",
    "ALERTS",
    "ALERTS_FOR_STATE",
    "process_cpu_time_seconds_total",
    "process_memory_usage_bytes",
    "process_memory_virtual_bytes",
    "process_open_file_descriptor_count",
    "process_thread_count",
}
STANDARD_PREFIXES = ("otelcol_", "system_")  # the collector's own and its hostmetrics receiver's


def prometheus_names() -> set[str]:
    """Every Prometheus series name the contract's metrics become."""
    names: set[str] = set()
    for metric in HISTOGRAMS_IN_SECONDS:
        base = prom_name(metric) + "_seconds"
        names |= {base, base + "_bucket", base + "_count", base + "_sum"}
    for metric in HISTOGRAMS_WITHOUT_UNIT:
        base = prom_name(metric)
        names |= {base, base + "_bucket", base + "_count", base + "_sum"}
    names |= {prom_name(m) + "_total" for m in COUNTERS}
    names |= {prom_name(m) for m in GAUGES}
    names |= {prom_name(m) + "_milliseconds" for m in GAUGES_IN_MILLISECONDS}
    return names


def allowed_names() -> set[str]:
    contract = semconv.all_names()
    return contract | {prom_name(n) for n in contract} | prometheus_names()


def test_every_metric_is_classified():
    """Each metric constant of the contract has a known Prometheus spelling."""
    metrics = {v for k, v in vars(semconv).items() if k.startswith("METRIC_")}
    assert metrics == HISTOGRAMS_IN_SECONDS | HISTOGRAMS_WITHOUT_UNIT | COUNTERS | GAUGES | GAUGES_IN_MILLISECONDS


@pytest.mark.parametrize("path", COLLECTOR_FILES, ids=[str(p.relative_to(ROOT)) for p in COLLECTOR_FILES])
def test_every_monitor_name_is_defined_in_semconv(path: Path):
    """Every monitor.* / monitor_* name in a collector file maps to a constant in otel_monitor/semconv.py."""
    allowed = allowed_names()
    unknown = sorted({n for n in OUR_NAME.findall(path.read_text()) if n not in allowed})
    assert not unknown, f"{path.relative_to(ROOT)} uses names the contract does not define: {unknown}"


def test_recording_rules_used_anywhere_are_generated():
    """Every monitor:* recording-rule name used in rules or dashboards is one the rule file records."""
    recorded = recorded_names()
    for path in COLLECTOR_FILES:
        used = set(OUR_RECORDING_NAME.findall(path.read_text()))
        assert used <= recorded, f"{path.relative_to(ROOT)}: {sorted(used - recorded)} are never recorded"


def _check_metric_names(where: str, expr: str) -> None:
    allowed = prometheus_names() | recorded_names() | STANDARD_METRICS
    for name in promql_metric_names(expr):
        assert name in allowed or name.startswith(STANDARD_PREFIXES), f"{where}: metric {name} is not in the contract"


def test_rule_expressions_select_only_contract_metrics():
    """Alert and recording rules select only contract, recorded, collector or standard metrics."""
    for name, expr in rule_expressions():
        _check_metric_names(f"rule {name}", expr)


def test_dashboard_queries_select_only_contract_metrics():
    """Dashboard PromQL selects only contract, recorded, collector or standard metrics."""
    for dashboard, title, kind, query in dashboard_queries():
        if kind == "prometheus":
            _check_metric_names(f"{dashboard}: {title}", substitute_variables(query))


def test_the_check_catches_an_undefined_name():
    """A misspelt name (monitor_operation_latency) is reported, a contract name is not."""
    allowed = allowed_names()
    found = OUR_NAME.findall('rate(monitor_operation_latency_count{monitor_operation="x"}[5m]) monitor.cache.hit')
    assert [n for n in found if n not in allowed] == ["monitor_operation_latency_count"]

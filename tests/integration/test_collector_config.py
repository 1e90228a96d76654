"""Intent of the collector configurations, beyond what `otelcol-monitor validate` checks (test_collector_validate)."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from otel_monitor import semconv
from otel_monitor.launcher.distro import DEFAULTS

ROOT = Path(__file__).resolve().parents[2]
COLLECTOR = ROOT / "collector"
CONFIGS = {
    "single": COLLECTOR / "otelcol-config.yaml",
    "agent": COLLECTOR / "k8s" / "otelcol-agent.yaml",
    "gateway": COLLECTOR / "k8s" / "otelcol-gateway.yaml",
}
KINDS = ("receivers", "processors", "exporters", "connectors", "extensions")


def _load(name: str) -> dict[str, Any]:
    return yaml.safe_load(CONFIGS[name].read_text())


def _pipelines(config: dict[str, Any]) -> dict[str, dict[str, list[str]]]:
    return config["service"]["pipelines"]


def _port(endpoint: str) -> int:
    return int(endpoint.rsplit(":", 1)[1])


@pytest.mark.parametrize("name", CONFIGS)
def test_every_defined_component_is_used(name):
    """No component is configured and then left out of every pipeline."""
    config = _load(name)
    used = {
        c
        for p in _pipelines(config).values()
        for role in ("receivers", "processors", "exporters")
        for c in p.get(role, [])
    }
    used |= set(config["service"].get("extensions", []))
    for kind in KINDS:
        for component in config.get(kind) or {}:
            assert component in used, f"{name}: {kind[:-1]} {component} is defined but never used"


@pytest.mark.parametrize("name", CONFIGS)
def test_memory_limiter_runs_first(name):
    """memory_limiter is the first processor of every pipeline, so overload is refused before any work."""
    for pipeline_id, pipeline in _pipelines(_load(name)).items():
        assert pipeline.get("processors", [None])[0] == "memory_limiter", f"{name}: {pipeline_id}"


@pytest.mark.parametrize("name", CONFIGS)
def test_otlp_ports_match_the_package_defaults(name):
    """The OTLP receiver listens on the port otel-monitor sends to (HTTP) and on 4317 for gRPC."""
    protocols = _load(name)["receivers"]["otlp"]["protocols"]
    assert _port(protocols["http"]["endpoint"]) == urlsplit(DEFAULTS["OTEL_EXPORTER_OTLP_ENDPOINT"]).port == 4318
    assert _port(protocols["grpc"]["endpoint"]) == 4317


def test_single_collector_receivers_are_reachable_from_other_containers():
    """In the compose stack the OTLP receivers bind all interfaces, not the container's loopback."""
    protocols = _load("single")["receivers"]["otlp"]["protocols"]
    assert all(p["endpoint"].startswith("0.0.0.0:") for p in protocols.values())


@pytest.mark.parametrize("name", ["single", "gateway"])
def test_collector_exports_each_signal_to_its_backend(name):
    """Metrics go to Prometheus, traces to Jaeger v2 over OTLP, logs to VictoriaLogs' OTLP endpoint."""
    config = _load(name)
    pipelines = _pipelines(config)
    assert {"prometheus", "prometheus_remote_write"} & set(pipelines["metrics"]["exporters"])
    assert "otlp_grpc/jaeger" in pipelines["traces"]["exporters"]
    assert "otlp_http/victorialogs" in pipelines["logs"]["exporters"]
    assert config["exporters"]["otlp_http/victorialogs"]["endpoint"].endswith(":9428/insert/opentelemetry")


def test_single_collector_queues_persistently_and_retries():
    """Every push exporter batches in a sending queue kept on file_storage and retries on failure."""
    config = _load("single")
    for name, exporter in config["exporters"].items():
        if name.split("/")[0] not in ("otlp_grpc", "otlp_http"):
            continue
        queue = exporter["sending_queue"]
        assert queue["enabled"] and queue["storage"] in config["extensions"], name
        assert "batch" in queue, name
        assert exporter["retry_on_failure"]["enabled"], name


def test_single_collector_exposes_health_debugging_and_own_metrics():
    """health_check, zpages and pprof run, and the collector's metrics are scrapeable on 8888."""
    config = _load("single")
    assert {"health_check", "zpages", "pprof"} <= set(config["service"]["extensions"])
    reader = config["service"]["telemetry"]["metrics"]["readers"][0]["pull"]["exporter"]["prometheus"]
    assert reader["port"] == 8888


def test_agent_routes_traces_by_trace_id_to_the_gateway():
    """The agent's traces go through the loadbalancing exporter keyed by trace id, resolved by the headless Service."""
    config = _load("agent")
    assert _pipelines(config)["traces"]["exporters"] == ["load_balancing"]
    lb = config["exporters"]["load_balancing"]
    assert lb["routing_key"] == "traceID"
    assert lb["resolver"]["dns"]["hostname"].startswith("otel-gateway-headless.")


def test_gateway_keeps_errors_slow_traces_and_a_fraction_of_the_rest():
    """Tail sampling keeps every error trace, every slow trace and a probabilistic share of the others."""
    config = _load("gateway")
    assert "tail_sampling" in _pipelines(config)["traces"]["processors"]
    policies = {p["type"]: p for p in config["processors"]["tail_sampling"]["policies"]}
    assert policies["status_code"]["status_code"]["status_codes"] == ["ERROR"]
    assert policies["latency"]["latency"]["threshold_ms"] == 2000
    assert 0 < policies["probabilistic"]["probabilistic"]["sampling_percentage"] < 100


def test_gateway_keeps_every_error_category_but_cancelled():
    """The classified-errors policy lists every contract error category except cancelled."""
    policy = next(
        p for p in _load("gateway")["processors"]["tail_sampling"]["policies"] if p["type"] == "string_attribute"
    )
    assert policy["string_attribute"]["key"] == semconv.MONITOR_ERROR_CATEGORY
    assert set(policy["string_attribute"]["values"]) == set(semconv.ERROR_CATEGORIES) - {"cancelled"}


def test_readme_gives_the_validate_command_for_each_config():
    """The collector guide tells users the exact `validate` command of the project's collector for every config."""
    readme = (ROOT / "docs" / "collector.md").read_text()
    for path in CONFIGS.values():
        assert f"otelcol-monitor validate --config={path.relative_to(ROOT)}" in readme

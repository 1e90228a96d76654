"""The health: section of the config file, and endpoints added by configuration."""

from __future__ import annotations

import logging

import pytest

from otel_monitor.config.file import parse_config_text
from otel_monitor.config.settings import ConfigError, resolve
from otel_monitor.health.checks import load_health_config
from otel_monitor.health.registry import HealthRegistry, set_default_registry
from tests.support.health_support import Dependency, ServedApp

GOOD = """\
health:
  interval: 5
  endpoints: true
  checks:
    - {name: database, type: sqlalchemy, url_env: SHOP_DATABASE_URL, critical: true, timeout: 2, degraded_ms: 500}
    - {name: payments, type: http, url: "PAYMENTS", critical: false}
    - {name: disk, type: disk, path: /, min_free_ratio: 0.2}
    - {name: memory, type: memory, limit_mb: 4096}
"""


@pytest.fixture
def registry():
    """A fresh process registry for each test."""
    fresh = HealthRegistry(interval=60)
    set_default_registry(fresh)
    yield fresh
    fresh.stop()
    set_default_registry(None)
    from otel_monitor.health.endpoints import uninstall_for_tests

    uninstall_for_tests()


def test_valid_section_builds_each_check(tmp_path, monkeypatch):
    """Each entry becomes a check of its type with its name, criticality, timeout and degraded threshold."""
    monkeypatch.setenv("SHOP_DATABASE_URL", f"sqlite:///{tmp_path / 'shop.db'}")
    health = load_health_config(parse_config_text(GOOD.replace("PAYMENTS", "http://127.0.0.1:9/health"), "m.yaml"))
    assert health.problems == []
    assert (health.interval, health.endpoints) == (5.0, True)
    database, payments, disk, memory = health.checks
    assert (database.name, database.kind, database.critical, database.timeout, database.degraded_after) == (
        "database",
        "sqlalchemy",
        True,
        2.0,
        0.5,
    )
    assert (payments.kind, payments.critical, disk.kind, memory.kind) == ("http", False, "disk", "memory")


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ("{name: db, type: mongodb}", "m.yaml:3: health check 'db': 'type' must be one of sqlalchemy"),
        (
            "{name: db, type: sqlalchemy, url_env: NOT_SET_ANYWHERE}",
            "environment variable NOT_SET_ANYWHERE (url_env) is not set",
        ),
        ("{name: api, type: http, url: ftp://x}", "needs an http:// or https:// URL"),
        (
            "{name: api, type: http, url: 'http://x', timeout: soon}",
            "'timeout' must be a non-negative number, got 'soon'",
        ),
        ("{name: api, type: http, url: 'http://x', critical: maybe}", "'critical' must be true or false"),
        ("{name: d, type: disk, degraded_ms: 5}", "'degraded_ms' does not apply to a disk check"),
        ("{name: d, type: disk, colour: red}", "unknown key 'colour' for a disk check"),
        ("{name: db, type: sqlalchemy, url: 'nosuchdb://x'}", "cannot create an engine for this URL"),
        ("just-a-string", "m.yaml:3: each check must be a mapping"),
    ],
)
def test_bad_entries_are_reported_with_file_and_line(entry, message):
    """A bad check entry is one problem naming file, line and what is wrong; the others still load."""
    text = f"health:\n  checks:\n    - {entry}\n    - {{name: disk, type: disk}}\n"
    health = load_health_config(parse_config_text(text, "m.yaml"))
    assert len(health.problems) == 1 and message in health.problems[0]
    assert health.problems[0].startswith("m.yaml:3:")
    assert [c.name for c in health.checks] == ["disk"]


def test_bad_section_keys_are_reported():
    """Unknown keys, a bad interval and a non-boolean endpoints flag each name their line."""
    health = load_health_config(
        parse_config_text("health:\n  intervall: 5\n  interval: -1\n  endpoints: yes please\n", "m.yaml")
    )
    assert health.problems == [
        "m.yaml:2: unknown key 'intervall' under health; expected checks, detailed_path, endpoints, interval, path",
        "m.yaml:3: 'interval' must be a non-negative number, got -1",
        "m.yaml:4: 'endpoints' must be true or false",
    ]


def test_install_reports_problems_and_strict_mode_raises(registry, caplog):
    """install_from_config warns about a bad entry (and raises under OTEL_MONITOR_STRICT)."""
    from otel_monitor.health.endpoints import install_from_config

    config = parse_config_text("health:\n  checks:\n    - {name: x, type: nope}\n", "m.yaml")
    with caplog.at_level(logging.WARNING, logger="otel_monitor"):
        install_from_config(config, resolve(environ={}))
    assert "m.yaml:3: health check 'x': 'type' must be one of" in caplog.text
    with pytest.raises(ConfigError, match=r"m\.yaml:3"):
        install_from_config(config, resolve(environ={"OTEL_MONITOR_STRICT": "true"}))


def test_endpoints_by_configuration_on_every_fastapi_app(registry, tmp_path, monkeypatch):
    """With endpoints: true, a FastAPI app created afterwards serves the configured checks, without code changes."""
    fastapi = pytest.importorskip("fastapi", reason='pip install "otel-monitor[fastapi]"')
    from otel_monitor.health.endpoints import install_from_config

    monkeypatch.setenv("SHOP_DATABASE_URL", f"sqlite:///{tmp_path / 'shop.db'}")
    with Dependency() as dependency:
        config = parse_config_text(GOOD.replace("PAYMENTS", dependency.url), "m.yaml")
        assert install_from_config(config, resolve(environ={})) is registry
        assert registry.interval == 5.0
        assert registry.wait_for(lambda r: r.status == "healthy")
        app = fastapi.FastAPI()

        @app.get("/items")
        async def items() -> list[str]:
            return ["hat"]

        with ServedApp(app) as served:
            assert served.get("/items") == (200, ["hat"])
            assert served.get("/health") == (200, {"status": "ok"})
            code, body = served.get("/health/detailed")
            assert code == 200 and [c["name"] for c in body["checks"]] == ["database", "payments", "disk", "memory"]


def test_app_with_its_own_health_route_keeps_it(registry):
    """Configured endpoints never shadow a /health route the app defines itself."""
    fastapi = pytest.importorskip("fastapi", reason='pip install "otel-monitor[fastapi]"')
    from otel_monitor.health.endpoints import install_from_config

    install_from_config(parse_config_text("health:\n  endpoints: true\n", "m.yaml"), resolve(environ={}))
    app = fastapi.FastAPI()

    @app.get("/health")
    async def own() -> dict[str, str]:
        return {"mine": "yes"}

    with ServedApp(app) as served:
        assert served.get("/health") == (200, {"mine": "yes"})
        assert served.get("/health/detailed")[0] == 404


def test_health_endpoints_are_not_traced_with_the_default_exclusions(registry):
    """Under the FastAPI instrumentation with OTEL_MONITOR_EXCLUDED_URLS, health requests make no spans, others do."""
    fastapi = pytest.importorskip("fastapi", reason='pip install "otel-monitor[fastapi]"')
    from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    from otel_monitor.health.endpoints import install_from_config

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    install_from_config(parse_config_text("health:\n  endpoints: true\n", "m.yaml"), resolve(environ={}))
    app = fastapi.FastAPI()

    @app.get("/items")
    async def items() -> list[str]:
        return ["hat"]

    FastAPIInstrumentor.instrument_app(
        app, tracer_provider=provider, excluded_urls=",".join(resolve(environ={}).excluded_urls)
    )
    try:
        with ServedApp(app) as served:
            assert served.get("/health")[0] == 200
            assert served.get("/health/detailed")[0] == 200
            assert served.get("/items")[0] == 200
    finally:
        FastAPIInstrumentor.uninstrument_app(app)
    routes = {span.attributes.get("http.route") for span in exporter.get_finished_spans()}
    assert "/items" in routes and not routes & {"/health", "/health/detailed"}

"""One runtime object holds what a configuration built; one reset forgets it."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

from otel_monitor import guard, runtime, testing
from otel_monitor.config.file import parse_config_text
from otel_monitor.config.settings import resolve
from otel_monitor.health.registry import HealthRegistry, default_registry
from otel_monitor.pipeline import instruments
from otel_monitor.pipeline.processors import active_or_default, build_pipeline
from otel_monitor.semantics import errors

PACKAGE_DIR = Path(__file__).resolve().parents[2] / "otel_monitor"

RULES = """
errors:
  - {category: rate_limit, class: "*QuotaExceeded"}
"""


class QuotaExceeded(Exception):
    pass


@pytest.fixture
def provider():
    testing.reset()
    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader], shutdown_on_exit=False)
    yield provider
    provider.shutdown()
    testing.reset()


def test_building_the_pipeline_fills_the_runtime(provider):
    """The pipeline, its instruments, classifier, journey recorder and operation namer are the runtime's."""
    pipeline = build_pipeline(resolve({}, environ={}), parse_config_text(RULES, "m.yaml"), provider, None)
    state = runtime.current()
    assert state.pipeline is pipeline and active_or_default() is pipeline
    assert state.instruments is instruments.instruments_in_use()
    assert state.classifier is pipeline.classifier is errors.active_classifier()
    assert state.journey_recorder is instruments.journey_recorder()
    assert state.operation_namer is not None
    assert errors.classify_error(QuotaExceeded()) == "rate_limit"


def test_reset_forgets_everything_a_configuration_built(provider):
    """After testing.reset(): built-in classification, no pipeline, fresh instruments, no counted failures."""
    build_pipeline(resolve({}, environ={}), parse_config_text(RULES, "m.yaml"), provider, None)
    built = runtime.current().instruments
    guard.COUNTS["something"] += 1
    testing.reset()
    assert runtime.configured() is None
    assert runtime.current().pipeline is None
    assert errors.active_classifier() is errors.BUILTIN_CLASSIFIER
    assert errors.classify_error(QuotaExceeded()) != "rate_limit"
    assert instruments.instruments_in_use() is not built
    assert active_or_default() is runtime.current().default_pipeline
    assert not guard.COUNTS


def test_installing_keeps_the_health_registry_the_app_filled_before(provider):
    """Checks an app adds before configure() stay: the configured runtime takes the registry over."""
    before = default_registry()
    assert isinstance(before, HealthRegistry)
    installed = runtime.install(runtime.Runtime(settings=resolve({}, environ={})))
    assert installed.health_registry is before
    assert runtime.configured() is installed and default_registry() is before


# Module-level names that a ``global`` statement may still rebind, each with why it is not
# configuration state: a record of a patch or import hook (process-wide, outliving any
# configuration), a lock renewed after fork, or a compat check's cached verdict.
ALLOWED_GLOBALS = {
    ("runtime", "_runtime"): "the runtime itself",
    ("guard", "_lock"): "the guard's lock, renewed after fork",
    ("pipeline.tail_sampling", "exportable"): "the span conversion a fast span type registers once",
    ("launcher.instrumentations", "_pooled_engines"): "engines whose pools are observed: the patch's own record",
    ("launcher.status_page", "_hooked"): "the import hook is registered once per process",
    ("health.endpoints", "_hook_registered"): "the import hook is registered once per process",
    ("fast.spans", "_new_lock"): "the fast span type's lock, renewed after fork",
    ("fast.fastapi_requests", "_checked"): "the compat check's cached verdict",
    ("fast.fastapi_requests", "_unsupported"): "the compat check's cached verdict",
    ("fast.fastapi_requests", "_NATIVE_CALL"): "the compat check's record of FastAPI's method",
    ("fast.tracebacks", "_SDK_EXCEPTION_ATTRIBUTES"): "the compat path's record of the SDK function it replaces",
}


def rebound_globals() -> set[tuple[str, str]]:
    found = set()
    for path in PACKAGE_DIR.rglob("*.py"):
        module = ".".join(path.relative_to(PACKAGE_DIR).with_suffix("").parts)
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Global):
                found.update((module, name) for name in node.names)
    return found


def test_no_module_global_holds_configuration_state():
    """Every ``global`` statement left rebinds a name on the allow-list; configuration state is the runtime's."""
    unexpected = rebound_globals() - set(ALLOWED_GLOBALS)
    assert unexpected == set(), f"move these into otel_monitor.runtime.Runtime: {sorted(unexpected)}"

"""The compat table (otel_monitor.fast.compat): which fast paths run for the installed versions, and each switch.

The switches' effect on the running app is also covered where each path is
tested: OTEL_MONITOR_LEAN_SPANS in test_configurator, OTEL_MONITOR_LEAN_REQUESTS
in test_launcher, OTEL_MONITOR_LEAN_OTLP in test_otlp_http; the two below
(direct histograms, lean queries) here.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib.metadata

import pytest

from otel_monitor.config.settings import BY_KEY, resolve
from otel_monitor.fast import compat

PATHS = {path.name: path for path in compat.FAST_PATHS}


def test_table_reports_the_installed_versions() -> None:
    """Each row names the installed version of every distribution its path relies on."""
    for row in compat.table(resolve(environ={})):
        for distribution, version in row.versions.items():
            assert version == importlib.metadata.version(distribution), (row.name, distribution)


def test_every_fast_path_runs_on_the_tested_versions() -> None:
    """In this environment every path is on, and its versions are inside the range the table declares."""
    rows = compat.table(resolve(environ={}))
    assert [r.name for r in rows] == ["lean_spans", "lean_requests", "direct_histograms", "lean_queries", "lean_otlp"]
    for row in rows:
        assert row.in_tested_range, f"{row.name}: {row.versions} outside {row.tested}"
        assert row.active and row.reason == "active", f"{row.name}: {row.reason}"


@pytest.mark.parametrize("name", sorted(PATHS))
def test_each_switch_turns_its_path_off(name: str) -> None:
    """OTEL_MONITOR_<path>=false turns that row off, names the variable, and leaves the others on."""
    switch = BY_KEY[PATHS[name].setting].env
    rows = {r.name: r for r in compat.table(resolve(environ={switch: "false"}))}
    assert not rows[name].active
    assert rows[name].reason == f"off: {switch}=false"
    assert all(r.active for other, r in rows.items() if other != name)


def test_a_failed_check_falls_back_and_says_why(monkeypatch: pytest.MonkeyPatch) -> None:
    """A path whose check fails is off, with the reason; a version outside the range is said to be."""
    path = dataclasses.replace(PATHS["lean_spans"], unsupported=lambda: "Span moved on")
    row = compat.status(path, resolve(environ={}))
    assert (row.active, row.reason) == (False, "fell back: Span moved on")
    outside = dataclasses.replace(PATHS["lean_spans"], tested={"opentelemetry-sdk": ">=9"})
    row = compat.status(outside, resolve(environ={}))
    assert row.active and not row.in_tested_range and "outside the tested range" in row.reason


def test_exemplars_on_turn_the_direct_histograms_off(monkeypatch: pytest.MonkeyPatch) -> None:
    """The direct path steps aside when exemplars are recorded (its cache would skip them)."""
    monkeypatch.setenv("OTEL_METRICS_EXEMPLAR_FILTER", "trace_based")
    assert compat.direct_histograms_unsupported() == "exemplars are on (OTEL_METRICS_EXEMPLAR_FILTER=trace_based)"


def _recorded_directly(direct_histograms: bool) -> tuple[int, int]:
    """(attribute sets on the direct path, points the SDK collected) after three requests of one operation."""
    from opentelemetry.sdk.metrics import AlwaysOffExemplarFilter, MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader

    from otel_monitor.config.file import EMPTY
    from otel_monitor.pipeline import instruments
    from otel_monitor.pipeline.processors import build_pipeline

    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader], exemplar_filter=AlwaysOffExemplarFilter(), shutdown_on_exit=False)
    from otel_monitor.launcher.configurator import direct_histograms as launcher_choice

    settings = resolve({"direct_histograms": direct_histograms}, environ={})
    build_pipeline(settings, EMPTY, provider, None, direct_histograms=launcher_choice(settings))
    histogram = instruments.instruments_in_use().operation_duration
    for _ in range(3):
        histogram.record(0.1, {"monitor.operation": "checkout"})
    data = reader.get_metrics_data()
    assert data is not None
    (point,) = [
        p for rm in data.resource_metrics for sm in rm.scope_metrics for m in sm.metrics for p in m.data.data_points
    ]
    provider.shutdown()
    return histogram.direct_sets, point.count  # type: ignore[union-attr]


def test_direct_histograms_switch() -> None:
    """OTEL_MONITOR_DIRECT_HISTOGRAMS: on, repeats go straight to the aggregation; off, all through the SDK."""
    assert _recorded_directly(True) == (1, 3)
    assert _recorded_directly(False) == (0, 3)


def test_lean_queries_switch() -> None:
    """OTEL_MONITOR_LEAN_QUERIES=false keeps the contrib's own query spans (lean_query_spans is not installed)."""
    from otel_monitor.launcher.instrumentations import _lean_queries

    assert _lean_queries(resolve(environ={})) is True
    assert _lean_queries(resolve(environ={"OTEL_MONITOR_LEAN_QUERIES": "false"})) is False


def test_config_prints_the_table(capsys: pytest.CaptureFixture[str]) -> None:
    """`otel-monitor config` lists every fast path with its state, versions and switch."""
    from otel_monitor.launcher import report

    report.run(argparse.Namespace(markdown=False, json=False))
    out = capsys.readouterr().out
    section = out.split("fast paths", 1)[1]
    for path in compat.FAST_PATHS:
        assert f"  {path.name:<18} on   active" in section
        assert BY_KEY[path.setting].env in section
    assert f"opentelemetry-sdk {importlib.metadata.version('opentelemetry-sdk')} (tested >=1.45.1,<1.46)" in section

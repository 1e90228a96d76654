"""`otel-monitor config` lists installed libraries whose instrumentation is missing, with the pip command."""

from __future__ import annotations

from importlib import metadata

import pytest
from opentelemetry.instrumentation import bootstrap_gen

from otel_monitor.cli import main
from otel_monitor.launcher import report


def _version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


@pytest.fixture
def libraries(monkeypatch):
    """bootstrap_gen's list replaced, and httpx's instrumentation taken as not installed."""
    entries: list[dict[str, str]] = []
    monkeypatch.setattr(bootstrap_gen, "libraries", entries)
    real = report._installed
    monkeypatch.setattr(
        report, "_installed", lambda name: None if name == "opentelemetry-instrumentation-httpx" else real(name)
    )
    monkeypatch.delenv("OTEL_MONITOR_CONFIG", raising=False)
    return entries


def test_the_extra_that_brings_the_instrumentation_is_named(libraries):
    """An instrumentation one of otel-monitor's extras brings is installed through that extra."""
    libraries.append({"library": "PyYAML >= 5", "instrumentation": "opentelemetry-instrumentation-httpx==0.66b1"})
    [row] = report.instrumentations_not_installed()
    assert row == {
        "library": f"PyYAML {metadata.version('PyYAML')}",
        "instrumentation": "opentelemetry-instrumentation-httpx==0.66b1",
        "install": 'pip install "otel-monitor[httpx]"',
    }


def test_other_instrumentations_are_installed_by_their_own_name(libraries):
    """Without an extra of ours, the command installs the instrumentation at bootstrap's version."""
    libraries.append({"library": "regex", "instrumentation": "opentelemetry-instrumentation-notreal==0.66b1"})
    [row] = report.instrumentations_not_installed()
    assert row["install"] == 'pip install "opentelemetry-instrumentation-notreal==0.66b1"'


def test_libraries_not_installed_or_out_of_range_are_not_listed(libraries):
    """A library that is absent, or installed at a version the instrumentation does not support, is left out."""
    libraries.append({"library": "no-such-library-xyz", "instrumentation": "opentelemetry-instrumentation-x==1"})
    libraries.append({"library": "PyYAML < 1", "instrumentation": "opentelemetry-instrumentation-y==1"})
    assert report.instrumentations_not_installed() == []


def test_the_listed_rows_are_true_here():
    """In this environment, every listed library is installed and its instrumentation is not."""
    for row in report.instrumentations_not_installed():
        assert _version(row["library"].split()[0]) == row["library"].split()[1]
        assert _version(row["instrumentation"].split("==")[0].split(">")[0]) is None


def test_the_command_prints_them(libraries, capsys):
    """The text report has a section with each library and its command."""
    libraries.append({"library": "PyYAML", "instrumentation": "opentelemetry-instrumentation-httpx==0.66b1"})
    main(["config"])
    out = capsys.readouterr().out
    assert "installed libraries without their instrumentation" in out
    assert 'pip install "otel-monitor[httpx]"' in out

from __future__ import annotations

import os

import pytest

# Our own failures are contained in production; in our suite they must show.
os.environ.setdefault("OTEL_MONITOR_RAISE_INTERNAL_ERRORS", "true")

from otel_monitor.testing import OTLPSink


@pytest.fixture
def otlp_sink():
    """A real OTLP/HTTP receiver on a loopback port."""
    with OTLPSink() as sink:
        yield sink


@pytest.fixture(scope="session")
def otelcol():
    """The project's collector (`make collector`); skips, naming `make collector`, without it."""
    from tests.support.otelcol import require_collector

    return require_collector()

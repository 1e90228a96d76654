from __future__ import annotations

import pytest

from otel_monitor.testing import OTLPSink


@pytest.fixture
def otlp_sink():
    """A real OTLP/HTTP receiver on a loopback port."""
    with OTLPSink() as sink:
        yield sink

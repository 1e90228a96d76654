"""Metric export goes through our wrappers: scrubbed attributes, counted drops, fast gzip."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

from otel_monitor.testing import OTLPSink
from tests.support.launch import ROOT, free_port


def run(code: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT), **env},
        timeout=60,
    )


def test_metric_attributes_are_scrubbed_in_export():
    """A secret in a metric attribute value never reaches the receiver."""
    with OTLPSink() as sink:
        proc = run(
            """
            import otel_monitor
            otel_monitor.configure()
            from opentelemetry import metrics
            metrics.get_meter("app").create_counter("app.logins").add(1, {"note": "password=hunter2secret"})
            metrics.get_meter_provider().force_flush()
        """,
            sink.env(),
        )
        assert proc.returncode == 0, proc.stderr
        assert sink.wait_for(lambda s: bool(s.metric_points("app.logins")))
    attributes = sink.metric_points("app.logins")[0]["attributes"]
    assert "hunter2secret" not in str(attributes)


def test_failed_metric_export_is_counted_as_dropped():
    """Metric points an export could not deliver are counted in monitor.sdk.dropped (signal=metrics)."""
    proc = run(
        """
        import otel_monitor
        otel_monitor.configure()
        from opentelemetry import metrics
        from otel_monitor.pipeline.exporters import DROPPED
        metrics.get_meter("app").create_counter("app.c").add(1)
        metrics.get_meter_provider().force_flush()
        print("dropped", DROPPED.counts["metrics"])
    """,
        {
            "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{free_port()}",
            "OTEL_EXPORTER_OTLP_TIMEOUT": "1",
            "OTEL_TRACES_EXPORTER": "none",
            "OTEL_LOGS_EXPORTER": "none",
        },
    )
    assert proc.returncode == 0, proc.stderr
    dropped = int(proc.stdout.split("dropped", 1)[1].split()[0])
    assert dropped > 0

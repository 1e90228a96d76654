"""Fault injection: the OTLP receiver fails in every way we know; the app keeps serving.

Each scenario runs the basic app under the launcher with short export intervals,
drives a bounded load while the receiver misbehaves, then brings a healthy
receiver up on the same port and waits (at most 15 s) for telemetry to resume.
Latency under faults is measured by ``benchmarks/faults.py``, not asserted here.
"""

from __future__ import annotations

import contextlib
import signal
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from otel_monitor.testing import OTLPSink, SilentListener, faulty_receiver
from tests.support.launch import free_port, launched

pytestmark = pytest.mark.slow

LOAD_SECONDS = 3.0
MAX_REQUESTS = 3000


def fast_export_env(port: int, db_url: str) -> dict[str, str]:
    return {
        "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{port}",
        "OTEL_EXPORTER_OTLP_TIMEOUT": "1",
        "OTEL_BSP_SCHEDULE_DELAY": "100",
        "OTEL_BLRP_SCHEDULE_DELAY": "100",
        "OTEL_METRIC_EXPORT_INTERVAL": "500",
        "OTEL_SERVICE_NAME": "faulty",
        "APP_DATABASE_URL": db_url,
    }


def drive_load(app, seconds: float = LOAD_SECONDS) -> list[int]:
    """Bounded load from 4 threads: at most MAX_REQUESTS requests or `seconds` seconds."""
    deadline = time.monotonic() + seconds
    paths = ["/ping", "/items/1", "/items/2"]

    def worker(offset: int) -> list[int]:
        statuses = []
        i = offset
        while time.monotonic() < deadline and len(statuses) < MAX_REQUESTS // 4:
            statuses.append(app.get(paths[i % len(paths)])[0])
            i += 1
        return statuses

    with ThreadPoolExecutor(4) as pool:
        return [s for chunk in pool.map(worker, range(4)) for s in chunk]


def export_warnings(output: str) -> list[str]:
    """Export warnings, one a record: a line that continues the one before it (a message with a line break,
    such as the text of a garbled answer) belongs to that record."""
    records: list[str] = []
    for line in output.splitlines():
        if line.startswith(("otel-monitor:", "Traceback", "INFO:", "WARNING:", "ERROR:")) or not records:
            records.append(line)
        else:
            records[-1] += "\n" + line
    return [
        record
        for record in records
        if "export" in record.lower()
        and (
            "fail" in record.lower()
            or "error" in record.lower()
            or "retry" in record.lower()
            or "timeout" in record.lower()
        )
    ]


def assert_recovers(app, port: int) -> OTLPSink:
    """A healthy receiver on the same port gets fresh spans and the drop count within 15 s."""
    sink = OTLPSink(port=port).start()
    deadline = time.monotonic() + 15
    marker = "/items/2"
    while time.monotonic() < deadline:
        assert app.get(marker)[0] == 200
        if any(s["attributes"].get("http.route") == "/items/{item_id}" for s in sink.spans) and any(
            p["value"] > 0 for p in sink.metric_points("monitor.sdk.dropped")
        ):
            return sink
        time.sleep(0.2)
    sink.stop()
    raise AssertionError(
        f"telemetry did not resume within 15 s: {len(sink.spans)} spans, "
        f"dropped points {sink.metric_points('monitor.sdk.dropped')}"
    )


def warnings_per_signal(output: str) -> dict[str, int]:
    counts: dict[str, int] = {}
    for line in export_warnings(output):
        lowered = line.lower()
        # The SDK exporters' loggers name the signal (trace_exporter, metric_exporter, _log_exporter).
        kind = next(
            (
                k
                for k, words in (
                    ("spans", ("spans", "trace_exporter")),
                    ("metrics", ("metrics", "metric_exporter")),
                    ("logs", ("logs", "log_exporter")),
                )
                if any(w in lowered for w in words)
            ),
            "other",
        )
        counts[kind] = counts.get(kind, 0) + 1
    return counts


@pytest.mark.parametrize("kind", ["absent", "hang", "slow", "503", "429", "garbage"])
def test_app_serves_through_receiver_fault_and_telemetry_resumes(kind, tmp_path):
    """Every request succeeds during the fault, at most one export warning per signal, telemetry resumes."""
    port = free_port()
    env = fast_export_env(port, f"sqlite:///{tmp_path / 'items.db'}")
    faulty = contextlib.ExitStack()
    faulty.enter_context(faulty_receiver(kind, port))  # the receiver is already faulty when the app starts
    try:
        with launched("tests.support.apps.basic_app:app", env) as app:
            statuses = drive_load(app)
            faulty.close()
            sink = assert_recovers(app, port)
            sink.stop()
    finally:
        faulty.close()
    assert statuses and set(statuses) == {200}, f"{len(statuses)} requests, statuses {set(statuses)}"
    counts = warnings_per_signal(app.output)
    assert all(n <= 1 for n in counts.values()), export_warnings(app.output)
    assert sum(counts.values()) >= 1, "the failing exports were not reported at all"


def test_receiver_killed_mid_run_then_restarted(tmp_path):
    """The receiver dies during load and comes back: requests all succeed, telemetry resumes, drops counted."""
    port = free_port()
    env = fast_export_env(port, f"sqlite:///{tmp_path / 'items.db'}")
    first = OTLPSink(port=port).start()
    with launched("tests.support.apps.basic_app:app", env) as app:
        statuses = drive_load(app, LOAD_SECONDS / 2)
        assert first.wait_for(lambda s: len(s.spans) > 0)
        first.stop()
        statuses += drive_load(app, LOAD_SECONDS / 2)
        sink = assert_recovers(app, port)
        sink.stop()
    assert set(statuses) == {200}
    assert all(n <= 1 for n in warnings_per_signal(app.output).values()), export_warnings(app.output)


def test_sigterm_with_receiver_down_exits_promptly(tmp_path):
    """SIGTERM while the receiver is down: the app exits within the default 5 s flush budget."""
    port = free_port()
    env = fast_export_env(port, f"sqlite:///{tmp_path / 'items.db'}")
    env["OTEL_EXPORTER_OTLP_TIMEOUT"] = "30"  # the worst case: each export may hang for 30 s
    with SilentListener(port=port):
        with launched("tests.support.apps.basic_app:app", env) as app:
            drive_load(app, 1.0)
            started = time.monotonic()
            app.process.send_signal(signal.SIGTERM)
            app.process.wait(timeout=30)
            elapsed = time.monotonic() - started
    # uvicorn re-raises the signal after its graceful shutdown.
    assert app.process.returncode in (0, -signal.SIGTERM)
    # 5 s budget plus uvicorn's own graceful stop; without the budget this takes over 30 s.
    assert elapsed < 8, f"exit took {elapsed:.1f}s"

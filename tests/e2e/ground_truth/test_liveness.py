"""Two apps under otel-monitor exporting metrics at different intervals: each is judged stale by its own."""

from __future__ import annotations

from contextlib import ExitStack

import pytest

from tests.e2e.ground_truth.support import ConsoleProcess, Recorder, monitored_app, wait_for

pytestmark = pytest.mark.slow

FAST_MS, SLOW_MS = 300, 2000


def test_each_sender_is_stale_after_three_of_its_own_export_intervals(console_process: ConsoleProcess) -> None:
    """Exporting every 0.3 s and every 2 s: the console learns both intervals, calls each stale after three of
    them once the apps stop (not after the fixed 180 s), and `otel-monitor status` exits 1 for them."""
    services = {"gt-live-fast": FAST_MS, "gt-live-slow": SLOW_MS}
    with ExitStack() as stack:
        for service, interval in services.items():
            app = stack.enter_context(
                monitored_app(console_process.url, service, OTEL_METRIC_EXPORT_INTERVAL=str(interval))
            )
            with Recorder(app.base_url) as client:
                client.call("GET /work", "/work?ms=1")

        def learnt() -> dict[str, float] | None:
            intervals = {}
            for service in services:
                (instance,) = console_process.summary(service)["instances"]
                if instance["export_interval_s"] is None:
                    return None
                intervals[service] = instance["export_interval_s"]
            return intervals

        # Three exports of the slower app: a few seconds.
        wait_for(learnt, 60, "both export intervals learnt")
        for service, interval_ms in services.items():
            summary = console_process.summary(service)
            (interval,) = [i["export_interval_s"] for i in summary["instances"]]
            # The SDK waits its interval after each export: a gap is the interval plus an export's own time.
            assert interval_ms / 1000 <= interval < interval_ms / 1000 + 1.0, summary
            # The interval is shown to the millisecond.
            assert summary["stale_after_s"] == pytest.approx(3 * interval, abs=0.002), summary
            assert not summary["stale"]
    # Both stopped: each goes stale after three of its own intervals, far sooner than the fixed 180 s.
    for service, interval_ms in services.items():
        summary = wait_for(
            lambda s=service: (row := console_process.summary(s))["stale"] and row, 60, f"{service} stale"
        )
        (interval,) = [i["export_interval_s"] for i in summary["instances"]]
        assert summary["stale_after_s"] == pytest.approx(3 * interval, abs=0.002) and interval >= interval_ms / 1000
        assert summary["stale_after_s"] < summary["silent_s"] < 180
        code, output = console_process.status("--service", service)
        assert code == 1 and "STALE" in output and f"stale after {summary['stale_after_s']:g} s" in output, output

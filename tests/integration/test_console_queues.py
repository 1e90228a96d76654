"""The console's overview lists each app queue (monitor.queue.depth): items waiting now and the peak."""

from __future__ import annotations

import pytest

from otel_monitor import queues
from otel_monitor.console.cli import serve
from tests.support.console_telemetry import get, meter

pytestmark = pytest.mark.slow


def test_queue_depths_add_up_over_instances_on_the_overview() -> None:
    """Two instances with 300 and 250 order e-mails waiting: the shop's order_emails queue holds 550."""
    with serve(port=0, evaluate_every=3600) as console:
        try:
            for instance, depth in (("i-1", 300), ("i-2", 250)):
                with meter(console.url, instance=instance) as (_, provider):
                    queues.watch_queue("order_emails", lambda depth=depth: depth, meter_provider=provider)
                    provider.force_flush()
            summary = get(f"{console.url}/api/summary?service=shop")["services"][0]
            assert summary["queues"] == [
                {
                    "queue": "order_emails",
                    "depth": 550.0,
                    "peak": 550.0,
                    "instances": 2,
                    "limit": 500,
                    "status": "critical",  # over QueueDepthHigh's 500 together, though neither instance is alone
                }
            ]
        finally:
            queues.unwatch_queue("order_emails")

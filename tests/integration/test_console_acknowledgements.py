"""Who acknowledged an alert is kept with --db: on the firing alert across a restart, and in the history."""

from __future__ import annotations

import json
import time
import urllib.request
from pathlib import Path

import pytest

from otel_monitor.console.cli import serve
from tests.support.console_telemetry import get, send_calls

pytestmark = pytest.mark.slow

ALERT = "error_rate:shop:checkout"


def _ack(url: str, by: str) -> int:
    request = urllib.request.Request(
        f"{url}/api/alerts/{ALERT}/ack",
        method="POST",
        data=json.dumps({"by": by}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return response.status


def test_who_acknowledged_survives_a_restart_and_stays_in_the_history(tmp_path: Path) -> None:
    """Ada acknowledges a firing alert; restarted on the same --db it still says so, and so does it once resolved."""
    db = str(tmp_path / "console.db")
    now = time.time_ns()
    with serve(port=0, db=db, evaluate_every=3600) as first:
        first.wait_replayed()
        send_calls(first.url, "checkout", [0.1] * 6, failed=[0.1] * 4)
        first.console.alerts.evaluate(now)
        first.console.alerts.evaluate(now + 181 * 10**9)  # the error-rate alert's for (3m) later: firing
        assert _ack(first.url, "ada@example.com") == 200
    with serve(port=0, db=db, evaluate_every=3600) as second:
        second.wait_replayed()
        firing = {a["id"]: a for a in get(f"{second.url}/api/alerts")["firing"]}
        assert (firing[ALERT]["acknowledged"], firing[ALERT]["acknowledged_by"]) == (True, "ada@example.com")
        later = now + 3 * 3600 * 10**9  # hours later, no failures in the window: resolved after keep_firing_for
        second.console.alerts.evaluate(later)
        second.console.alerts.evaluate(later + 181 * 10**9)
        assert {a["id"]: a for a in second.console.alerts.as_json(None)["resolved"]}[ALERT]["acknowledged_by"] == (
            "ada@example.com"
        )
    with serve(port=0, db=db, evaluate_every=3600) as third:
        third.wait_replayed()
        resolved = {a["id"]: a for a in get(f"{third.url}/api/alerts")["resolved"]}
        assert resolved[ALERT]["acknowledged_by"] == "ada@example.com"

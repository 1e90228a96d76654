"""The console's alert book: escalation, history across a restart, log lines and the Alertmanager webhook."""

from __future__ import annotations

import http.server
import json
import logging
import threading
from pathlib import Path
from typing import Any

import pytest

from otel_monitor.console.alerts import AlertBook, WebhookNotifier
from otel_monitor.console.app import Console
from otel_monitor.console.store import MINUTE_NS, Store
from otel_monitor.semantics.slo import SLOs
from tests.integration.test_alert_timeline import OPERATION, SERVICE, T0, Minute, cumulative, feed_console

FAMILY = f"success_rate:{SERVICE}:{OPERATION}"


def _run(book: AlertBook, store: Store, values: dict[str, list[tuple[int, int, int]]], minutes: range) -> None:
    for minute in minutes:
        feed_console(store, values, minute)
        book.evaluate(T0 + minute * MINUTE_NS)


def _escalating() -> dict[str, list[tuple[int, int, int]]]:
    """7% failing for 15 minutes (success below the 95% warning), then 20% (below the 90% critical)."""
    return cumulative([Minute(7, 0)] * 15 + [Minute(20, 0)] * 15)


def _book(**kwargs: Any) -> tuple[AlertBook, Store]:
    store = Store(SLOs())
    store.started_ns = T0
    return AlertBook(store, **kwargs), store


def test_threshold_and_severity_follow_an_escalation() -> None:
    """Warning, then critical: the one alert keeps its start and shows the critical threshold (0.9), not 0.95."""
    book, store = _book()
    values = _escalating()
    _run(book, store, values, range(0, 16))
    alert = next(a for a in book.as_json(None)["firing"] if a["id"] == FAMILY)
    assert (alert["id"], alert["severity"], alert["threshold"]) == (FAMILY, "warning", 0.95)
    started = alert["started"]
    _run(book, store, values, range(16, 31))
    alert = next(a for a in book.as_json(None)["firing"] if a["id"] == FAMILY)
    assert (alert["severity"], alert["threshold"], alert["alertname"]) == (
        "critical",
        0.9,
        "OperationSuccessRateCritical",
    )
    assert alert["value"] < 0.9 and alert["started"] == started


def test_pending_alerts_are_listed_before_they_fire() -> None:
    """An alert whose condition holds but whose ``for`` has not passed is listed as pending, not firing."""
    book, store = _book()
    _run(book, store, _escalating(), range(0, 3))
    answer = book.as_json(None)
    assert not answer["firing"]
    assert {p["alertname"] for p in answer["pending"]} >= {"OperationSuccessRateLow", "OperationErrorRateHigh"}


def test_history_and_since_survive_a_restart(tmp_path: Path) -> None:
    """With --db, resolved alerts and a firing alert's start are the same after a restart."""
    db = str(tmp_path / "console.db")
    values = cumulative([Minute(20, 0)] * 12 + [Minute(0, 0)] * 12 + [Minute(20, 0)] * 12)
    console = Console(db=db)
    console.store.started_ns = T0
    _run(console.alerts, console.store, values, range(0, 33))
    before = console.alerts.as_json(None)
    console.close()
    assert before["resolved"] and before["firing"]

    restarted = Console(db=db)
    after = restarted.alerts.as_json(None)
    assert [a["id"] for a in after["resolved"]] == [a["id"] for a in before["resolved"]]
    assert [(a["id"], a["started"]) for a in after["firing"]] == [(a["id"], a["started"]) for a in before["firing"]]
    # The replayed data still holds the condition: the alert goes on, with the start it had.
    restarted.store.started_ns = T0
    _run(restarted.alerts, restarted.store, values, range(0, 34))
    again = {a["id"]: a["started"] for a in restarted.alerts.as_json(None)["firing"]}
    assert again[FAMILY] == next(a["started"] for a in before["firing"] if a["id"] == FAMILY)
    restarted.close()


def test_every_state_change_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    """Pending, firing and resolved each give a log line naming the rule and the subject."""
    book, store = _book()
    values = cumulative([Minute(20, 0)] * 10 + [Minute(0, 0)] * 12)
    with caplog.at_level(logging.INFO, logger="otel_monitor.console.alerts"):
        _run(book, store, values, range(0, 23))
    lines = [r.getMessage() for r in caplog.records if "OperationErrorRateHigh" in r.getMessage()]
    assert [line.split(f"{SERVICE}/{OPERATION} ")[1].split(" ")[0] for line in lines] == [
        "pending",
        "firing",
        "resolved",
    ]


class _Receiver(http.server.ThreadingHTTPServer):
    """A local webhook receiver: keeps every JSON body; ``hold`` makes it answer only when released."""

    def __init__(self) -> None:
        self.bodies: list[dict[str, Any]] = []
        self.got = threading.Event()
        self.hold = threading.Event()
        self.hold.set()
        bodies, got, hold = self.bodies, self.got, self.hold

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                bodies.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
                got.set()
                hold.wait(30)
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        super().__init__(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/hook"

    def close(self) -> None:
        self.hold.set()
        self.shutdown()
        self.server_close()


@pytest.fixture
def receiver():
    server = _Receiver()
    yield server
    server.close()


def _wait_for(receiver: _Receiver, count: int) -> None:
    for _ in range(200):
        if len(receiver.bodies) >= count:
            return
        receiver.got.wait(0.05)
        receiver.got.clear()
    raise AssertionError(f"the receiver got {len(receiver.bodies)} of {count} notifications: {receiver.bodies}")


def test_webhook_posts_alertmanager_payloads(receiver: _Receiver) -> None:
    """Firing and resolved alerts reach a real HTTP receiver in Alertmanager's webhook format (version 4)."""
    notifier = WebhookNotifier(receiver.url, timeout=5)
    book, store = _book(notifier=notifier, generator_url="http://127.0.0.1:4318/#/alerts")
    _run(book, store, cumulative([Minute(20, 0)] * 10 + [Minute(0, 0)] * 12), range(0, 23))
    _wait_for(receiver, 2)
    notifier.close()
    firing, resolved = receiver.bodies[0], receiver.bodies[-1]
    assert (firing["version"], firing["status"], resolved["status"]) == ("4", "firing", "resolved")
    alert = next(a for a in firing["alerts"] if a["labels"]["alertname"] == "OperationErrorRateHigh")
    assert alert["labels"] == {
        "alertname": "OperationErrorRateHigh",
        "severity": "critical",
        "job": SERVICE,
        "monitor_operation": OPERATION,
        "slo": "default",
    }
    assert set(alert) >= {"status", "labels", "annotations", "startsAt", "endsAt", "generatorURL", "fingerprint"}
    assert alert["endsAt"] == "0001-01-01T00:00:00Z" and alert["annotations"]["summary"]
    assert alert["generatorURL"] == "http://127.0.0.1:4318/#/alerts"
    ended = next(a for a in resolved["alerts"] if a["labels"]["alertname"] == "OperationErrorRateHigh")
    assert ended["status"] == "resolved" and ended["endsAt"] > ended["startsAt"] == alert["startsAt"]


def test_a_stuck_receiver_never_blocks_evaluation(receiver: _Receiver) -> None:
    """While the receiver holds the first post unanswered, evaluation goes on and later notifications queue."""
    receiver.hold.clear()
    notifier = WebhookNotifier(receiver.url, timeout=30, max_queued=2)
    book, store = _book(notifier=notifier)
    _run(book, store, cumulative([Minute(20, 0)] * 10 + [Minute(0, 0)] * 12), range(0, 11))
    _wait_for(receiver, 1)
    # The first post is in the receiver's hands, unanswered: evaluating more must return all the same.
    _run(book, store, cumulative([Minute(20, 0)] * 10 + [Minute(0, 0)] * 12), range(11, 23))
    assert not receiver.hold.is_set() and len(receiver.bodies) == 1
    receiver.hold.set()
    _wait_for(receiver, 2)
    notifier.close()


def test_a_bad_webhook_url_is_refused_by_name() -> None:
    """A webhook that is not an http(s) URL is refused with a message naming it."""
    with pytest.raises(ValueError, match="ftp://x"):
        WebhookNotifier("ftp://x")


def test_a_late_report_for_a_past_hour_counts_in_the_30_day_uptime() -> None:
    """The 30-day sums kept between evaluations take a report that arrives late for an earlier hour."""
    from otel_monitor.console.uptime import HOUR_NS, _Target

    check = _Target("health_check", "shop", "database")
    check.add("i1", 1000 * HOUR_NS + 10, True)
    check.add("i1", 1001 * HOUR_NS + 10, True)
    assert check.month(1001) == (2, 2)
    check.add("i2", 1000 * HOUR_NS + 20, False)  # another instance's report, exported late
    assert check.month(1001) == (3, 2)
    assert check.month(1000 + 30 * 24) == (1, 1)  # 30 days on, only hour 1001 is in the window

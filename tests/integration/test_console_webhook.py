"""The console's alert webhook against a real local HTTP receiver: bounded retries with backoff, off the
console's paths, every failure counted where the console shows its own status."""

from __future__ import annotations

import http.server
import json
import socket
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from starlette.testclient import TestClient

from otel_monitor.console.app import Console, create_app
from otel_monitor.console.webhook import WebhookNotifier

PAYLOAD = {"version": "4", "status": "firing", "alerts": [{"labels": {"alertname": "OperationErrorRateHigh"}}]}


class FlakyReceiver(http.server.ThreadingHTTPServer):
    """Answers ``fail_with`` to the first ``failures`` posts, 200 afterwards; records every attempt."""

    def __init__(self, failures: int, fail_with: int = 503) -> None:
        self.attempts: list[dict[str, Any]] = []
        self.failures = failures
        self.got = threading.Condition()
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with receiver.got:
                    receiver.attempts.append(body)
                    failing = len(receiver.attempts) <= receiver.failures
                    receiver.got.notify_all()
                self.send_response(fail_with if failing else 200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        super().__init__(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/hook?token=s3cret"

    def wait_for_attempts(self, count: int) -> None:
        with self.got:
            assert self.got.wait_for(lambda: len(self.attempts) >= count, 20), self.attempts


@pytest.fixture
def receivers() -> Iterator[list[FlakyReceiver]]:
    made: list[FlakyReceiver] = []
    yield made
    for receiver in made:
        receiver.shutdown()
        receiver.server_close()


def _wait_until(predicate: Any) -> None:
    done = threading.Event()
    for _ in range(400):
        if predicate():
            return
        done.wait(0.05)
    raise AssertionError("the webhook thread did not get there")


def test_a_receiver_failing_the_first_attempts_gets_the_notification(
    receivers: list[FlakyReceiver], caplog: pytest.LogCaptureFixture
) -> None:
    """503 twice, then 200: the same payload is posted three times and counted sent once, two failed attempts;
    the warning names the receiver without the URL's token."""
    receiver = FlakyReceiver(failures=2)
    receivers.append(receiver)
    notifier = WebhookNotifier(receiver.url, backoff=0.05, max_backoff=0.2)
    notifier.notify(PAYLOAD)
    receiver.wait_for_attempts(3)
    _wait_until(lambda: notifier.sent == 1)
    notifier.close()
    assert receiver.attempts == [PAYLOAD] * 3
    stats = notifier.stats()
    assert (stats["sent"], stats["failed"], stats["failed_attempts"], stats["retries"]) == (1, 0, 2, 2)
    assert stats["last_error"] == "HTTP 503"
    assert "failed: HTTP 503" in caplog.text and "s3cret" not in caplog.text


def test_retries_are_bounded_and_a_refusal_is_not_retried(receivers: list[FlakyReceiver]) -> None:
    """A receiver that always answers 503 gets ``attempts`` posts, then the notification counts as failed;
    a 400 (the payload refused) is posted once."""
    down = FlakyReceiver(failures=100)
    refusing = FlakyReceiver(failures=100, fail_with=400)
    receivers += [down, refusing]
    for receiver, attempts, expected in ((down, 3, 3), (refusing, 3, 1)):
        notifier = WebhookNotifier(receiver.url, attempts=attempts, backoff=0.01, max_backoff=0.05)
        notifier.notify(PAYLOAD)
        _wait_until(lambda n=notifier: n.failed == 1)
        notifier.close()
        assert (len(receiver.attempts), notifier.failed_attempts, notifier.sent) == (expected, expected, 0)


def test_a_refused_connection_is_retried_and_counted() -> None:
    """Nothing listening on the port: each attempt fails, is counted, and the notification fails once spent."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    notifier = WebhookNotifier(f"http://127.0.0.1:{port}/hook", attempts=2, backoff=0.01, max_backoff=0.01)
    notifier.notify(PAYLOAD)
    _wait_until(lambda: notifier.failed == 1)
    notifier.close()
    assert (notifier.failed_attempts, notifier.retries, notifier.sent) == (2, 1, 0)


def test_the_api_answers_during_a_backoff_and_shows_the_failures(receivers: list[FlakyReceiver]) -> None:
    """While the webhook waits a long backoff, the API answers and shows the failed attempt; stopping the
    console cuts the backoff short."""
    receiver = FlakyReceiver(failures=100)
    receivers.append(receiver)
    console = Console()
    console.alerts.notifier = WebhookNotifier(receiver.url, backoff=60, max_backoff=60)
    with TestClient(create_app(console, evaluate_every=3600), base_url="http://127.0.0.1") as client:
        console.alerts.notifier.notify(PAYLOAD)
        receiver.wait_for_attempts(1)
        _wait_until(lambda: console.alerts.notifier.failed_attempts == 1)  # type: ignore[union-attr]
        services = client.get("/api/services").json()
        alerts = client.get("/api/alerts").json()
    assert services["alert_webhook"]["failed_attempts"] == 1 and services["alert_webhook"]["sent"] == 0
    assert alerts["webhook"]["last_error"] == "HTTP 503"
    notifier = console.alerts.notifier
    notifier.close(timeout=10)
    assert not notifier._thread.is_alive()  # the backoff was cut short, not waited out
    assert len(receiver.attempts) == 1 and notifier.failed == 1


def test_no_webhook_shows_none() -> None:
    """Without a webhook the console says so."""
    with TestClient(create_app(Console(), evaluate_every=3600), base_url="http://127.0.0.1") as client:
        assert client.get("/api/services").json()["alert_webhook"] is None
        assert client.get("/api/alerts").json()["webhook"] is None

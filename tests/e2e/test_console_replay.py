"""A console restarted on a large --db listens at once and replays in the background."""

from __future__ import annotations

import threading
import time

import pytest

from benchmarks.console_replay import request_body
from otel_monitor.cli import main
from otel_monitor.console.cli import serve
from otel_monitor.console.persist import RequestLog
from tests.support.console_telemetry import get, tracer

pytestmark = pytest.mark.slow

REQUESTS, SPANS = 200, 5


def _stored(path: str, requests: int = REQUESTS) -> None:
    log = RequestLog(path)
    now = time.time_ns()
    for i in range(requests):
        log.append("traces", request_body(i, now, SPANS))
    log.close()


def test_the_api_answers_while_the_stored_requests_replay(tmp_path, capsys):
    """The port answers during replay with "replaying": true and progress; afterwards every span counts once."""
    db = str(tmp_path / "console.db")
    _stored(db)
    held, release = threading.Event(), threading.Event()

    def hold_first_batch() -> None:
        held.set()
        release.wait(30)

    with serve(port=0, db=db, evaluate_every=3600, on_replay_batch=hold_first_batch) as handle:
        try:
            assert held.wait(30), "the replay did not start"
            during = get(f"{handle.url}/api/services")
            assert during["replaying"] is True
            assert 0 < during["replay"]["replayed"] < during["replay"]["total"] == REQUESTS
            assert get(f"{handle.url}/api/summary")["replaying"] is True
            assert main(["status", "--url", handle.url]) in (0, 1, 2)
            assert "still replaying its stored data" in capsys.readouterr().err
            with tracer(handle.url, service="live") as t, t.start_as_current_span("GET /live"):
                pass  # accepted now, aggregated once the older requests are in
        finally:
            release.set()
        handle.wait_replayed(60)
        after = get(f"{handle.url}/api/services")
        assert "replaying" not in get(f"{handle.url}/api/summary")
    assert after["replaying"] is False
    assert after["received"]["spans"] == REQUESTS * SPANS + 1
    assert "live" in after["services"]


def test_a_stored_request_that_no_longer_decodes_is_skipped(tmp_path):
    """A damaged row does not stop the replay: the rest is replayed and the console serves."""
    db = str(tmp_path / "console.db")
    _stored(db, 3)
    log = RequestLog(db)
    log.append("traces", b"\xff\xfe not protobuf")
    log.append("traces", request_body(99, time.time_ns(), SPANS))
    log.close()
    with serve(port=0, db=db, evaluate_every=3600) as handle:
        handle.wait_replayed(60)
        assert get(f"{handle.url}/api/services")["received"]["spans"] == 4 * SPANS


@pytest.mark.browser
def test_the_page_says_the_console_is_replaying(tmp_path):
    """While replaying, the console's footer says so with the progress; afterwards it does not."""
    import os

    from playwright.sync_api import expect

    from tests.support.console_telemetry import CHROMIUM, chromium_page

    if not os.path.exists(CHROMIUM):
        pytest.skip("needs Debian's chromium: apt-get install chromium")
    db = str(tmp_path / "console.db")
    _stored(db)
    held, release = threading.Event(), threading.Event()

    def hold_first_batch() -> None:
        held.set()
        release.wait(30)

    with serve(port=0, db=db, evaluate_every=3600, on_replay_batch=hold_first_batch) as handle:
        try:
            assert held.wait(30)
            with chromium_page(tmp_path) as page:
                page.goto(handle.url + "/")
                expect(page.locator("#footer")).to_contain_text(
                    f"replaying stored data: 64 of {REQUESTS} requests, figures partial", timeout=15_000
                )
        finally:
            release.set()
        handle.wait_replayed(60)

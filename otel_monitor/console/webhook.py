"""The alert webhook: Alertmanager-format notifications posted from a thread of their own.

Nothing here runs on the ingest path, the API or the event loop: the alert
book hands a payload to :meth:`WebhookNotifier.notify`, which only puts it on
a bounded queue (the oldest notification is dropped when full), and one
daemon thread posts.

A post that fails in a way a retry can fix (connection refused or reset, a
timeout, HTTP 408, 429 or 5xx) is tried again after a backoff that doubles
from ``backoff`` up to ``max_backoff`` (a ``Retry-After`` of the receiver is
honoured within that cap), at most ``attempts`` times in all; any other
answer (a 4xx: the receiver refuses this payload) is not retried.  While one
notification waits for its retry, later ones wait in the queue, so their
order is kept.  Every failed attempt and every notification given up is
counted (:meth:`stats`, shown by the console's ``/api/services`` and
``/api/alerts``), and logged at most once a minute.
"""

from __future__ import annotations

import json
import logging
import queue
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from email.utils import parsedate_to_datetime
from typing import Any

_log = logging.getLogger("otel_monitor.console.alerts")

# HTTP answers worth trying again: the receiver is busy or broken for now.
_RETRY_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504})
_WARNING_INTERVAL_S = 60.0


class _Retryable(Exception):
    """An attempt failed in a way a later attempt may not."""

    def __init__(self, reason: str, retry_after: float | None = None) -> None:
        super().__init__(reason)
        self.retry_after = retry_after


def _retry_after(value: str | None) -> float | None:
    """A ``Retry-After`` header in seconds (a number or an HTTP date), or None."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
    except (TypeError, ValueError):
        return None


def _where(url: str) -> str:
    """The URL's scheme, host and port: its path and query often carry a token."""
    parts = urllib.parse.urlsplit(url)
    return f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}"


class WebhookNotifier:
    """Posts payloads to a URL from a thread of its own, with bounded retries: a slow or failing
    receiver never blocks the console."""

    def __init__(
        self,
        url: str,
        timeout: float = 5.0,
        max_queued: int = 100,
        attempts: int = 4,
        backoff: float = 1.0,
        max_backoff: float = 30.0,
    ) -> None:
        if not url.startswith(("http://", "https://")):
            raise ValueError(f"alert webhook {url!r}: expected an http:// or https:// URL")
        if attempts < 1 or backoff < 0 or max_backoff < backoff:
            raise ValueError("alert webhook: attempts >= 1 and 0 <= backoff <= max_backoff")
        self.url = url
        self.timeout = timeout
        self.attempts = attempts
        self.backoff = backoff
        self.max_backoff = max_backoff
        self.sent = 0  # notifications delivered
        self.failed = 0  # notifications given up (retries spent, or refused by the receiver)
        self.failed_attempts = 0  # posts that failed, retried or not
        self.retries = 0  # posts made again after a failure
        self.dropped = 0  # notifications pushed out of a full queue
        self.last_error: str | None = None
        self.last_error_at: int | None = None  # ms since the epoch
        self._queue: queue.Queue[dict[str, Any] | None] = queue.Queue(max_queued)
        self._closing = threading.Event()
        self._last_warning = -_WARNING_INTERVAL_S
        self._thread = threading.Thread(target=self._run, name="otel-monitor-alert-webhook", daemon=True)
        self._thread.start()

    def notify(self, payload: dict[str, Any] | None) -> None:
        """Queue a payload (never blocks); None stops the thread once the queue before it is posted."""
        while True:
            try:
                self._queue.put_nowait(payload)
                return
            except queue.Full:
                try:
                    self._queue.get_nowait()
                    self.dropped += 1
                except queue.Empty:
                    pass

    def stats(self) -> dict[str, Any]:
        """What the webhook did so far, for the console's own status."""
        return {
            "sent": self.sent,
            "failed": self.failed,
            "failed_attempts": self.failed_attempts,
            "retries": self.retries,
            "dropped": self.dropped,
            "queued": self._queue.qsize(),
            "last_error": self.last_error,
            "last_error_at": self.last_error_at,
        }

    def _run(self) -> None:
        while True:
            payload = self._queue.get()
            if payload is None:
                return
            self._deliver(payload)

    def _deliver(self, payload: dict[str, Any]) -> None:
        body = json.dumps(payload).encode()
        delay = self.backoff
        for attempt in range(1, self.attempts + 1):
            try:
                self._post(body)
                self.sent += 1
                return
            except _Retryable as exc:
                self._attempt_failed(str(exc))
                if attempt == self.attempts or self._closing.is_set():
                    break
                wait = delay if exc.retry_after is None else min(max(exc.retry_after, delay), self.max_backoff)
                # The close() event cuts a backoff short: stopping never waits for a retry.
                if self._closing.wait(wait):
                    break
                self.retries += 1
                delay = min(delay * 2, self.max_backoff)
            except Exception as exc:  # noqa: BLE001 - a refused payload; retrying would not help
                self._attempt_failed(str(exc))
                break
        self.failed += 1

    def _post(self, body: bytes) -> None:
        request = urllib.request.Request(
            self.url,
            data=body,
            method="POST",
            headers={"Content-Type": "application/json", "User-Agent": "otel-monitor-console"},
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                response.read()
        except urllib.error.HTTPError as exc:
            reason = f"HTTP {exc.code}"
            if exc.code in _RETRY_STATUSES:
                raise _Retryable(reason, _retry_after(exc.headers.get("Retry-After"))) from None
            raise ValueError(reason) from None
        except (urllib.error.URLError, OSError) as exc:  # refused, reset, timed out, name not found
            raise _Retryable(str(getattr(exc, "reason", exc))) from None

    def _attempt_failed(self, reason: str) -> None:
        self.failed_attempts += 1
        self.last_error = reason
        self.last_error_at = time.time_ns() // 1_000_000
        now = time.monotonic()
        if now - self._last_warning >= _WARNING_INTERVAL_S:
            self._last_warning = now
            _log.warning("otel-monitor console: alert webhook %s failed: %s", _where(self.url), reason)

    def close(self, timeout: float = 2.0) -> None:
        """Post what is queued (no more retries), then stop; waits at most ``timeout`` seconds."""
        self._closing.set()
        self.notify(None)
        self._thread.join(timeout)

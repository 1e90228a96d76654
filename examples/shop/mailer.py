"""The shop's order e-mails: queued by the request, sent by one background thread.

The request never waits for the mail server; the outbox's depth (the mails
not sent yet) is what the shop reports as queue ``order_emails`` with
``otel_monitor.queues.watch_queue``, so a stuck or slow mailer shows as a
growing queue and the ``QueueDepthHigh`` alert.
"""

from __future__ import annotations

import logging
import queue
import threading
import time

_log = logging.getLogger("shop.mailer")


class Outbox:
    """Order e-mails waiting to be sent; ``send_seconds`` is what sending one takes (a stand-in SMTP call)."""

    def __init__(self, send_seconds: float = 0.005, capacity: int = 10_000) -> None:
        self.send_seconds = send_seconds
        self._queue: queue.Queue[tuple[str, int] | None] = queue.Queue(maxsize=capacity)
        self._thread: threading.Thread | None = None
        self.sent = 0
        self.dropped = 0

    def enqueue(self, kind: str, order_id: int) -> None:
        """Queue one mail (``confirmation``, ``refund``); a full outbox drops it and logs, never blocks."""
        try:
            self._queue.put_nowait((kind, order_id))
        except queue.Full:
            self.dropped += 1
            _log.warning("outbox full: %s mail for order %d dropped", kind, order_id)

    def depth(self) -> int:
        """Mails waiting to be sent."""
        return self._queue.qsize()

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="shop-mailer", daemon=True)
            self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join(timeout)
            self._thread = None

    def _run(self) -> None:
        while self._queue.get() is not None:
            time.sleep(self.send_seconds)  # the SMTP call a real shop makes here
            self.sent += 1

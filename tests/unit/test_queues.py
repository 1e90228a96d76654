"""Queue depth as an observable gauge: monitor.queue.depth per monitor.queue.name, read at each export."""

from __future__ import annotations

import logging
import queue
from collections.abc import Iterator

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

from otel_monitor import queues, semconv


@pytest.fixture
def reader() -> Iterator[InMemoryMetricReader]:
    """An in-memory reader; its provider is ``reader.provider``."""
    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader])
    reader.provider = provider  # type: ignore[attr-defined]
    yield reader
    for name in queues.watched():
        queues.unwatch_queue(name)
    provider.shutdown()


def _depths(reader: InMemoryMetricReader) -> dict[str, float]:
    data = reader.get_metrics_data()
    out = {}
    for rm in data.resource_metrics if data else ():
        for sm in rm.scope_metrics:
            for m in sm.metrics:
                if m.name == semconv.METRIC_QUEUE_DEPTH:
                    out.update({p.attributes[semconv.MONITOR_QUEUE_NAME]: p.value for p in m.data.data_points})
    return out


def test_each_export_reads_the_depth_now(reader: InMemoryMetricReader) -> None:
    """7 items waiting, then 2 after the consumer took 5: each collection reports the depth at that moment."""
    outbox: queue.Queue[int] = queue.Queue()
    for i in range(7):
        outbox.put(i)
    queues.watch_queue("order_emails", outbox.qsize, meter_provider=reader.provider)
    assert _depths(reader) == {"order_emails": 7}
    for _ in range(5):
        outbox.get()
    assert _depths(reader) == {"order_emails": 2}


def test_queues_are_told_apart_and_can_be_unwatched(reader: InMemoryMetricReader) -> None:
    """Two queues give two points; an unwatched one is no longer reported."""
    provider = reader.provider
    queues.watch_queue("order_emails", lambda: 3, meter_provider=provider)
    queues.watch_queue("reindex", lambda: 40, meter_provider=provider)
    assert _depths(reader) == {"order_emails": 3, "reindex": 40}
    queues.unwatch_queue("reindex")
    assert _depths(reader) == {"order_emails": 3}


def test_a_broken_depth_function_never_raises_and_is_logged_once(
    reader: InMemoryMetricReader, caplog: pytest.LogCaptureFixture
) -> None:
    """A depth function that raises, or answers -1 or "many", leaves only its own point out, logged once."""
    provider = reader.provider
    queues.watch_queue("fine", lambda: 1, meter_provider=provider)
    queues.watch_queue("broken", lambda: 1 / 0, meter_provider=provider)
    queues.watch_queue("negative", lambda: -1, meter_provider=provider)
    queues.watch_queue("text", lambda: "many", meter_provider=provider)
    with caplog.at_level(logging.ERROR, logger="otel_monitor"):
        assert _depths(reader) == {"fine": 1}
        assert _depths(reader) == {"fine": 1}
    messages = [r.getMessage() for r in caplog.records]
    assert sum("'broken' raised ZeroDivisionError" in m for m in messages) == 1
    assert any("'negative'" in m for m in messages) and any("'text'" in m for m in messages)


def test_a_bad_queue_name_is_refused_with_a_clear_message(
    reader: InMemoryMetricReader, caplog: pytest.LogCaptureFixture
) -> None:
    """Queue names are bounded metric attributes: "Order Emails" is refused, naming the rule."""
    with caplog.at_level(logging.ERROR, logger="otel_monitor"):
        queues.watch_queue("Order Emails", lambda: 1, meter_provider=reader.provider)
        queues.watch_queue("ok", 5, meter_provider=reader.provider)  # type: ignore[arg-type]
    assert queues.watched() == []
    assert "lowercase letters, digits and _" in caplog.text and "the depth is a function" in caplog.text


def test_the_example_shop_watches_its_order_email_outbox() -> None:
    """The shop registers its outbox as queue order_emails; mails queued and not sent are its depth."""
    from examples.shop.app import create_app
    from examples.shop.settings import ShopSettings

    app = create_app(ShopSettings(database_url="sqlite://", password_iterations=1000))
    try:
        outbox = app.state.shop.outbox  # not started: nothing drains it
        for order_id in (1, 2, 3):
            outbox.enqueue("confirmation", order_id)
        assert "order_emails" in queues.watched() and outbox.depth() == 3
    finally:
        queues.unwatch_queue("order_emails")

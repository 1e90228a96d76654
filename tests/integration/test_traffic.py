"""The traffic generator is bounded and drives every endpoint of the shop with a realistic mix."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from examples.background_server import BackgroundServer
from examples.payments.app import Behaviour
from examples.payments.app import create_app as create_payments_app
from examples.shop.app import create_app as create_shop_app
from examples.shop.settings import ShopSettings
from examples.traffic import Traffic, TrafficReport, Visitor, main, run_traffic

pytestmark = pytest.mark.slow

ALL_ENDPOINTS = {
    "GET /ping",
    "POST /api/signup",
    "POST /api/login",
    "GET /api/products",
    "GET /api/products/{id}",
    "POST /api/cart/items",
    "DELETE /api/cart/items/{id}",
    "GET /api/cart",
    "POST /api/checkout",
    "GET /api/orders",
    "POST /api/orders/{id}/refund",
}


@pytest.fixture(scope="module")
def shop_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    database: Path = tmp_path_factory.mktemp("traffic") / "shop.db"
    with BackgroundServer(create_payments_app(Behaviour(delay_ms=0), seed=11)) as payments:
        settings = ShopSettings(
            database_url=f"sqlite:///{database}",
            payments_primary_url=f"{payments.url}/primary",
            payments_fallback_url=f"{payments.url}/fallback",
            password_iterations=1000,
        )
        with BackgroundServer(create_shop_app(settings)) as shop:
            yield shop.url


def test_stops_at_the_request_budget(shop_url: str) -> None:
    """With --requests N it sends exactly N requests, across all visitors."""
    report = run_traffic(shop_url, requests=120, duration=120, concurrency=4, seed=1)
    assert report.requests == 120 == sum(report.by_endpoint.values())
    assert report.stopped_by == "requests"
    assert not report.transport_errors


def test_stops_at_the_duration(shop_url: str) -> None:
    """With a huge request budget it stops because the duration is over."""
    report = run_traffic(shop_url, requests=10**9, duration=1.0, concurrency=2, rate=40, seed=2)
    assert report.stopped_by == "duration"
    assert 0 < report.requests < 10**9


def test_mix_hits_every_endpoint_with_a_few_realistic_failures(shop_url: str) -> None:
    """One visitor at a time, seeded: every endpoint is hit and 1-8% fail as production requests do."""
    report = run_traffic(shop_url, requests=700, duration=120, concurrency=1, seed=5)
    assert set(report.by_endpoint) == ALL_ENDPOINTS
    assert {401, 409, 422, 500} <= set(report.by_status)
    assert 0.01 <= report.failures / report.requests <= 0.08


def test_command_line_prints_a_summary(shop_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    """python -m examples.traffic prints what it sent and exits 0."""
    assert main(["--url", shop_url, "--requests", "15", "--concurrency", "2", "--seed", "3"]) == 0
    assert capsys.readouterr().out.startswith("15 requests in ")


def test_command_line_refuses_zero_visitors() -> None:
    """--concurrency 0 is a usage error, not a silent no-op."""
    with pytest.raises(SystemExit) as exit_info:
        main(["--concurrency", "0"])
    assert exit_info.value.code == 2


def test_a_request_on_a_connection_the_server_closed_is_sent_again() -> None:
    """Like a browser, a request failing on a kept-alive connection the server closed goes out once more, counted."""

    async def scenario() -> TrafficReport:
        async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            # The first request of a connection is answered and kept alive; the second finds it closed.
            await reader.readuntil(b"\r\n\r\n")
            writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
            await writer.drain()
            await reader.readuntil(b"\r\n\r\n")
            writer.close()

        server = await asyncio.start_server(serve, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        async with server, httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
            traffic = Traffic(client, requests=10, duration=10, rate=None, seed=0)
            visitor = Visitor(traffic)
            first = await visitor.call("GET", "/ping", "/ping")
            second = await visitor.call("GET", "/ping", "/ping")
            assert first is not None and second is not None and second.text == "ok"
            return traffic.report

    report = asyncio.run(scenario())
    assert report.requests == 2 and report.by_status == {200: 2}
    assert not report.transport_errors
    assert sum(report.resent.values()) == 1
    assert "resent on a new connection" in report.summary()

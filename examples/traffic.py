"""A bounded traffic generator for the example shop, with the mix of a real shop.

Visitors arrive as one of a few kinds (window shoppers, new customers, returning
customers, load-balancer probes) and walk through the shop as people do.  About
3% of requests fail the way production requests fail: wrong passwords (401),
invalid input (422), sold-out products (409), declined cards (402), and a rare
server error from the LEGACY2019 coupon bug (500).  Payment timeouts and the
fallback provider come from the payments service's behaviour.  Some returning
customers look at their orders and get one refunded (the refund figures).

Always bounded: it stops at ``--requests`` requests or ``--duration`` seconds,
whichever comes first::

    python -m examples.traffic --url http://127.0.0.1:8000 --requests 2000 --duration 60 --concurrency 8
"""

from __future__ import annotations

import argparse
import asyncio
import math
import random
import sys
import time
import uuid
from collections import Counter, deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx

PASSWORD = "correct horse battery"
GOOD_CARD, DECLINED_CARD = "tok_visa", "tok_declined"
CATEGORIES = ("clothing", "shoes", "accessories", "home")
# A returning customer who looks at their orders asks for a refund of a paid one this often.
REFUND_CHANCE = 0.25


MAX_SAMPLES = 200_000

# A kept-alive connection closed by the server: the request fails before any answer.
STALE_CONNECTION = (httpx.ReadError, httpx.WriteError, httpx.RemoteProtocolError)


class BudgetSpent(Exception):
    """The request budget or the time is used up; the visitor leaves."""


@dataclass
class TrafficReport:
    requests: int = 0
    by_endpoint: Counter[str] = field(default_factory=Counter)
    # Requests that got an HTTP answer; the rest failed in transport (e.g. on a connection
    # the server closed after an unhandled error), mostly without reaching the app.
    answered_by_endpoint: Counter[str] = field(default_factory=Counter)
    by_status: Counter[int] = field(default_factory=Counter)
    transport_errors: Counter[str] = field(default_factory=Counter)
    # Requests sent a second time because the kept-alive connection was closed under them.
    resent: Counter[str] = field(default_factory=Counter)
    stopped_by: str = "requests"
    elapsed: float = 0.0
    # (wall-clock end in ns, latency in s, endpoint) of each answered request, the latest MAX_SAMPLES
    # of them: the generator's own rate and percentiles, to set beside what the monitoring shows.
    samples: deque[tuple[int, float, str]] = field(default_factory=lambda: deque(maxlen=MAX_SAMPLES))
    # Refunds the shop granted (200), and their amount: what its refund KPI should count.
    refunds: int = 0
    refunded_cents: int = 0

    def rate(self, start_ns: int, end_ns: int, endpoint: str | None = None) -> float | None:
        """Answered requests (to ``endpoint``, or any) per second that ended within (start, end]."""
        if end_ns <= start_ns:
            return None
        ended = sum(1 for t, _, e in self.samples if start_ns < t <= end_ns and endpoint in (None, e))
        return ended / ((end_ns - start_ns) / 1e9)

    def percentile(self, q: float, endpoint: str | None = None) -> float | None:
        """The q-th latency as the client measured it (ceil(q*n)-th smallest); q=0 is the minimum."""
        ordered = sorted(latency for _, latency, e in self.samples if endpoint in (None, e))
        return ordered[max(0, math.ceil(q * len(ordered)) - 1)] if ordered else None

    @property
    def failures(self) -> int:
        return sum(count for status, count in self.by_status.items() if status >= 400) + sum(
            self.transport_errors.values()
        )

    def summary(self) -> str:
        rate = self.requests / self.elapsed if self.elapsed else 0.0
        share = self.failures / self.requests if self.requests else 0.0
        lines = [
            f"{self.requests} requests in {self.elapsed:.1f}s ({rate:.1f}/s), stopped by {self.stopped_by}; "
            f"{self.failures} failed ({share:.1%})",
            "status: " + ", ".join(f"{status}: {n}" for status, n in sorted(self.by_status.items())),
        ]
        if self.transport_errors:
            lines.append("transport errors: " + ", ".join(f"{k}: {n}" for k, n in self.transport_errors.items()))
        if self.resent:
            lines.append("resent on a new connection: " + ", ".join(f"{k}: {n}" for k, n in self.resent.items()))
        if self.refunds:
            lines.append(f"refunds: {self.refunds} ({self.refunded_cents / 100:.2f} EUR)")
        lines += [f"  {n:6d}  {endpoint}" for endpoint, n in self.by_endpoint.most_common()]
        return "\n".join(lines)


class Visitor:
    """One simulated person; every request of theirs goes through the shared budget."""

    def __init__(self, traffic: Traffic) -> None:
        self.traffic = traffic
        self.chance = traffic.chance
        self.headers: dict[str, str] = {}

    async def call(self, method: str, endpoint: str, path: str, **kwargs: Any) -> httpx.Response | None:
        await self.traffic.take()
        report = self.traffic.report
        report.by_endpoint[f"{method} {endpoint}"] += 1
        try:
            try:
                response = await self.traffic.client.request(method, path, headers=self.headers, **kwargs)
            except STALE_CONNECTION as exc:
                # As browsers do: a kept-alive connection the server closed (uvicorn closes it
                # after an unhandled error's 500) fails before any answer; send once more on a
                # new connection.  The request never reached the app.
                report.resent[type(exc).__name__] += 1
                response = await self.traffic.client.request(method, path, headers=self.headers, **kwargs)
        except httpx.HTTPError as exc:
            report.transport_errors[type(exc).__name__] += 1
            return None
        report.by_status[response.status_code] += 1
        report.answered_by_endpoint[f"{method} {endpoint}"] += 1
        report.samples.append((time.time_ns(), response.elapsed.total_seconds(), f"{method} {endpoint}"))
        return response

    async def browse(self, category: str | None = None) -> list[dict[str, Any]]:
        params = {"category": category} if category else None
        response = await self.call("GET", "/api/products", "/api/products", params=params)
        products = response.json()["products"] if response is not None and response.status_code == 200 else []
        self.traffic.remember_products(products)
        return [p for p in products if p["in_stock"]]

    async def view(self, product_id: int) -> None:
        await self.call("GET", "/api/products/{id}", f"/api/products/{product_id}")

    async def add(self, product_id: int, quantity: int = 1) -> bool:
        response = await self.call(
            "POST", "/api/cart/items", "/api/cart/items", json={"product_id": product_id, "quantity": quantity}
        )
        return response is not None and response.status_code == 201

    def sign_in(self, token: str) -> None:
        self.headers = {"Authorization": f"Bearer {token}"}

    async def shop_and_maybe_buy(self, buy_chance: float) -> None:
        in_stock = await self.browse(self.chance.choice((None, *CATEGORIES)))
        if not in_stock:
            return
        for product in self.chance.sample(in_stock, k=min(len(in_stock), self.chance.randint(1, 3))):
            await self.view(product["id"])
        if self.chance.random() >= buy_chance:
            return
        picks = self.chance.sample(in_stock, k=min(len(in_stock), self.chance.randint(1, 2)))
        for product in picks:
            await self.add(product["id"], self.chance.randint(1, 2))
        roll = self.chance.random()
        if roll < 0.12 and self.traffic.sold_out:
            await self.add(self.chance.choice(self.traffic.sold_out))  # 409: shown sold out, tried anyway
        elif roll < 0.18:
            await self.add(picks[0]["id"], 0)  # 422: a quantity the form should not have allowed
        if self.chance.random() < 0.15:
            await self.call("DELETE", "/api/cart/items/{id}", f"/api/cart/items/{picks[-1]['id']}")
        await self.call("GET", "/api/cart", "/api/cart")
        await self.checkout()

    async def refund_one(self, orders: httpx.Response | None) -> None:
        """Ask for a refund of one of the paid orders listed, now and then (as a customer returning an item)."""
        if orders is None or orders.status_code != 200:
            return
        paid = [o for o in orders.json()["orders"] if o["status"] == "paid"]
        if not paid or self.chance.random() >= REFUND_CHANCE:
            return
        order_id = self.chance.choice(paid)["order_id"]
        response = await self.call("POST", "/api/orders/{id}/refund", f"/api/orders/{order_id}/refund")
        if response is not None and response.status_code == 200:
            self.traffic.report.refunds += 1
            self.traffic.report.refunded_cents += int(response.json()["refunded_cents"])

    async def checkout(self) -> None:
        roll = self.chance.random()
        body: dict[str, Any] = {"card_token": DECLINED_CARD if roll < 0.04 else GOOD_CARD}
        if 0.04 <= roll < 0.07:
            body["coupon"] = "LEGACY2019"  # the 500 bug
        elif roll < 0.25:
            body["coupon"] = self.chance.choice(("WELCOME10", "SPRING5"))
        await self.call("POST", "/api/checkout", "/api/checkout", json=body)


async def window_shopper(visitor: Visitor) -> None:
    await visitor.shop_and_maybe_buy(buy_chance=0.0)
    if visitor.chance.random() < 0.3:
        await visitor.browse(visitor.chance.choice(CATEGORIES))


async def new_customer(visitor: Visitor) -> None:
    chance = visitor.chance
    email = f"shopper-{uuid.UUID(int=chance.getrandbits(128)).hex[:16]}@example.com"
    if chance.random() < 0.08:
        email = email.replace("@", " at ")  # 422: a typo the form did not catch
    response = await visitor.call(
        "POST", "/api/signup", "/api/signup", json={"email": email, "password": PASSWORD, "name": "Shopper"}
    )
    if response is None or response.status_code != 201:
        return
    visitor.traffic.accounts.append(email)
    visitor.sign_in(response.json()["token"])
    await visitor.shop_and_maybe_buy(buy_chance=0.6)


async def returning_customer(visitor: Visitor) -> None:
    accounts = visitor.traffic.accounts
    if not accounts:
        await new_customer(visitor)
        return
    email = visitor.chance.choice(accounts)
    wrong = visitor.chance.random() < 0.15
    password = PASSWORD + "!" if wrong else PASSWORD  # 401: a mistyped password, then a retry
    response = await visitor.call("POST", "/api/login", "/api/login", json={"email": email, "password": password})
    if wrong:
        response = await visitor.call("POST", "/api/login", "/api/login", json={"email": email, "password": PASSWORD})
    if response is None or response.status_code != 200:
        return
    visitor.sign_in(response.json()["token"])
    if visitor.chance.random() < 0.3:
        await visitor.refund_one(await visitor.call("GET", "/api/orders", "/api/orders"))
    await visitor.shop_and_maybe_buy(buy_chance=0.4)


async def probe(visitor: Visitor) -> None:
    await visitor.call("GET", "/ping", "/ping")


Scenario = Callable[[Visitor], Awaitable[None]]
MIX: tuple[tuple[Scenario, float], ...] = (
    (window_shopper, 0.45),
    (new_customer, 0.15),
    (returning_customer, 0.30),
    (probe, 0.10),
)


class Traffic:
    """The shared state of one run: client, budget, pacing, what visitors learned."""

    def __init__(
        self, client: httpx.AsyncClient, requests: int, duration: float, rate: float | None, seed: int | None
    ) -> None:
        self.client = client
        self.chance = random.Random(seed)
        self.report = TrafficReport()
        self.accounts: list[str] = []
        self.sold_out: list[int] = []
        self._limit = requests
        self._rate = rate
        self.started = time.monotonic()
        self._deadline = self.started + duration

    async def take(self) -> None:
        """Count one request against the budget, pacing to the rate; raise when spent."""
        if self.report.requests >= self._limit:
            self.report.stopped_by = "requests"
            raise BudgetSpent
        if self._rate:
            delay = self.started + self.report.requests / self._rate - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
        if time.monotonic() >= self._deadline:
            self.report.stopped_by = "duration"
            raise BudgetSpent
        self.report.requests += 1

    def remember_products(self, products: list[dict[str, Any]]) -> None:
        if not self.sold_out:
            self.sold_out = [p["id"] for p in products if not p["in_stock"]]

    async def visitor_loop(self) -> None:
        scenarios, weights = zip(*MIX, strict=True)
        try:
            while True:
                scenario = self.chance.choices(scenarios, weights)[0]
                await scenario(Visitor(self))
        except BudgetSpent:
            return


async def run_traffic_async(
    base_url: str,
    *,
    requests: int = 1000,
    duration: float = 60.0,
    concurrency: int = 8,
    rate: float | None = None,
    seed: int | None = None,
    timeout: float = 10.0,
) -> TrafficReport:
    """Drive the shop with ``concurrency`` visitors until ``requests`` or ``duration`` is reached."""
    if requests < 0 or duration <= 0 or concurrency < 1:
        raise ValueError("requests must be 0 or more, duration greater than 0, concurrency at least 1")
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=base_url, timeout=timeout, limits=limits) as client:
        traffic = Traffic(client, requests, duration, rate, seed)
        workers = [asyncio.ensure_future(traffic.visitor_loop()) for _ in range(concurrency)]
        # In-flight requests may outlive the deadline by at most one timeout.
        done, pending = await asyncio.wait(workers, timeout=duration + timeout)
        for worker in pending:
            worker.cancel()
        for worker in done:
            worker.result()
        traffic.report.elapsed = time.monotonic() - traffic.started
        return traffic.report


def run_traffic(base_url: str, **options: Any) -> TrafficReport:
    """Blocking form of :func:`run_traffic_async`."""
    return asyncio.run(run_traffic_async(base_url, **options))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m examples.traffic", description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="http://127.0.0.1:8000", help="the shop's base URL")
    parser.add_argument("--requests", type=int, default=1000, help="stop after this many requests (default 1000)")
    parser.add_argument("--duration", type=float, default=60.0, help="stop after this many seconds (default 60)")
    parser.add_argument("--concurrency", type=int, default=8, help="visitors at a time (default 8)")
    parser.add_argument(
        "--rate", type=float, default=None, help="requests per second at most (default: as fast as served)"
    )
    parser.add_argument("--seed", type=int, default=None, help="random seed, for a repeatable mix")
    args = parser.parse_args(argv)
    try:
        report = run_traffic(
            args.url,
            requests=args.requests,
            duration=args.duration,
            concurrency=args.concurrency,
            rate=args.rate,
            seed=args.seed,
        )
    except ValueError as exc:
        parser.error(str(exc))
    print(report.summary())
    return 0 if report.requests and not report.transport_errors else 1


if __name__ == "__main__":
    sys.exit(main())

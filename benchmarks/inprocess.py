"""CPU cost per request of an ASGI app, driven in-process (no server, no socket).

Run it plain or under ``opentelemetry-instrument`` with the same arguments; the
difference of the two figures is what instrumentation adds per request, without
the noise of uvicorn, wrk and the loopback::

    python -m benchmarks.inprocess --path /ping
    opentelemetry-instrument python -m benchmarks.inprocess --path /ping

It runs the app's lifespan, then sends ``--requests`` GETs one after another
(``--warmup`` first, not counted) and prints the process CPU time and wall time
per request.  ``--profile`` writes a cProfile of the measured part.
``--failing`` expects every request to fail (a 500 and an unhandled
exception): the exception is logged as uvicorn logs it, through its logger
configured as ``uvicorn --log-level warning`` configures it.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import time
from collections import Counter
from typing import Any


def load_app(spec: str) -> Any:
    module_name, _, attribute = spec.partition(":")
    return getattr(importlib.import_module(module_name), attribute or "app")


async def _lifespan(app: Any) -> tuple[asyncio.Queue[dict[str, Any]], asyncio.Task[None]]:
    inbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    started = asyncio.Event()

    async def receive() -> dict[str, Any]:
        return await inbox.get()

    async def send(message: dict[str, Any]) -> None:
        if message["type"].startswith("lifespan.startup"):
            started.set()

    task = asyncio.ensure_future(app({"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}}, receive, send))
    await inbox.put({"type": "lifespan.startup"})
    await asyncio.wait_for(started.wait(), 30)
    return inbox, task


_server_log: Any = None  # uvicorn's "uvicorn.error" logger, set by --failing


def configure_server_logging() -> None:
    """The server's logging as ``uvicorn --log-level warning`` sets it up, to /dev/null."""
    global _server_log
    import logging
    import os

    from uvicorn.config import Config

    Config(app=None, log_level="warning", access_log=False).configure_logging()
    _server_log = logging.getLogger("uvicorn.error")
    null = open(os.devnull, "w")  # lives as long as the process
    for handler in logging.getLogger("uvicorn").handlers:
        if isinstance(handler, logging.StreamHandler):
            handler.setStream(null)


async def _request(app: Any, path: str, state: dict[str, Any]) -> int:
    status = 0
    body_sent = False

    async def receive() -> dict[str, Any]:
        nonlocal body_sent
        if body_sent:
            await asyncio.sleep(3600)
        body_sent = True
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]

    scope = {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": b"",
        "headers": [(b"host", b"127.0.0.1:8000"), (b"user-agent", b"inprocess")],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8000),
        "state": dict(state),
    }
    if _server_log is None:
        await app(scope, receive, send)
        return status
    try:
        await app(scope, receive, send)
    except Exception as exc:  # noqa: BLE001 - what uvicorn does with an app's unhandled exception
        _server_log.error("Exception in ASGI application\n", exc_info=exc)
    return status


async def _requests(app: Any, path: str, count: int, concurrency: int) -> Counter[int]:
    """``count`` requests, ``concurrency`` at a time, as a server with that many connections would see them."""
    left = count
    statuses: Counter[int] = Counter()

    async def worker() -> None:
        nonlocal left
        while left > 0:
            left -= 1
            statuses[await _request(app, path, {})] += 1

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return statuses


async def drive(
    app: Any, path: str, requests: int, warmup: int, concurrency: int, profile: str | None, failing: bool = False
) -> dict[str, Any]:
    inbox, lifespan = await _lifespan(app)
    status = await _request(app, path, {})
    if (status >= 500) is not failing:
        raise SystemExit(f"{path} answered {status}" + (" (--failing expects a 5xx)" if failing else ""))
    await _requests(app, path, warmup, concurrency)
    profiler = None
    if profile:
        import cProfile

        profiler = cProfile.Profile()
        profiler.enable()
    cpu, wall = time.process_time(), time.perf_counter()
    statuses = await _requests(app, path, requests, concurrency)
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    if profiler is not None:
        profiler.disable()
        profiler.dump_stats(profile)
    await inbox.put({"type": "lifespan.shutdown"})
    await asyncio.wait_for(lifespan, 30)
    return {"cpu_us": cpu / requests * 1e6, "wall_us": wall / requests * 1e6, "statuses": dict(statuses)}


def install_floor(profile: str) -> None:
    """The spans of otel-monitor's contract and nothing else: the floor under its per-request cost.

    The SDK's tracer provider with otel-monitor's sampler and no span processor
    (nothing is processed or exported, no metric SDK: instruments are the API's
    no-op ones), and the instrumentations loaded as otel-monitor loads them
    (FastAPI's own telemetry or the contrib middleware, the SQLAlchemy
    instrumentation without its connect spans, the logging instrumentation).
    ``production`` keeps a tenth of the traces and records the rest
    (RECORD_ONLY), as exact operation metrics and the keeping of failed and
    slow requests need; ``full`` keeps every trace; ``no-sdk`` sets no SDK
    at all, so the instrumentations' hooks run against the API's no-op tracer.
    The distro's environment defaults apply first (stable semantic
    conventions among them), as under the launcher.
    """
    from opentelemetry import trace
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.sampling import ALWAYS_ON, ParentBased, TraceIdRatioBased

    from otel_monitor.config.settings import resolve
    from otel_monitor.launcher.configurator import start_instrumentations
    from otel_monitor.launcher.distro import apply_defaults
    from otel_monitor.pipeline.tail_sampling import RecordAllSampler

    apply_defaults()
    if profile != "no-sdk":
        sampler = RecordAllSampler(ParentBased(ALWAYS_ON if profile == "full" else TraceIdRatioBased(0.1)))
        trace.set_tracer_provider(TracerProvider(sampler=sampler))
    start_instrumentations(resolve())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--app", default="examples.shop.app:app")
    parser.add_argument("--path", default="/ping")
    parser.add_argument("--requests", type=int, default=5000)
    parser.add_argument("--warmup", type=int, default=500)
    parser.add_argument("--concurrency", type=int, default=1, help="requests in flight at a time")
    parser.add_argument("--profile", default=None, help="write a cProfile of the measured requests here")
    parser.add_argument(
        "--floor",
        choices=("full", "production", "no-sdk"),
        default=None,
        help="run without the launcher, with only the spans otel-monitor creates (see install_floor)",
    )
    parser.add_argument(
        "--failing",
        action="store_true",
        help="every request is expected to fail with an unhandled exception, logged as uvicorn does",
    )
    args = parser.parse_args(argv)
    if not 0 < args.requests <= 1_000_000 or not 0 <= args.warmup <= 1_000_000 or not 0 < args.concurrency <= 1000:
        parser.error("--requests must be 1..1000000, --warmup 0..1000000 and --concurrency 1..1000")
    if args.floor:
        install_floor(args.floor)
    if args.failing:
        configure_server_logging()
    result = asyncio.run(
        drive(load_app(args.app), args.path, args.requests, args.warmup, args.concurrency, args.profile, args.failing)
    )
    print(
        f"{args.path}: {result['cpu_us']:.1f} µs CPU, {result['wall_us']:.1f} µs wall per request "
        f"({args.requests} requests, {args.concurrency} at a time; status {result['statuses']})"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

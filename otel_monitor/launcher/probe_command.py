"""``otel-monitor probe``: the URLs of the config file's ``uptime: probes:``, requested every
interval from where this command runs, reported over OTLP as the collector's httpcheck receiver
reports them (:mod:`otel_monitor.pipeline.probes`).

Run it outside the app's host (another machine, a cron container) so that a dead host, a
broken proxy or DNS shows as downtime. It sends to ``OTEL_EXPORTER_OTLP_ENDPOINT`` (the
collector, or ``otel-monitor console``), with every other ``OTEL_EXPORTER_OTLP_*`` variable
honoured; its service name is ``OTEL_SERVICE_NAME`` or ``otel-monitor-probe``.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

from otel_monitor.config.file import ConfigFileError, load_config_file
from otel_monitor.semantics.uptime import Uptime, load_uptime

DEFAULT_SERVICE_NAME = "otel-monitor-probe"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config",
        default=os.environ.get("OTEL_MONITOR_CONFIG"),
        help="the otel-monitor config file with the uptime: section (default: $OTEL_MONITOR_CONFIG)",
    )
    parser.add_argument("--once", action="store_true", help="probe every URL once, print, send, and exit")
    parser.add_argument(
        "--endpoint",
        help="OTLP/HTTP endpoint to send to, e.g. http://127.0.0.1:4318 (default: $OTEL_EXPORTER_OTLP_ENDPOINT)",
    )


def _exporter(endpoint: str | None) -> Any:
    from otel_monitor.fast.otlp_exporters import OTLPMetricExporter

    if endpoint:
        return OTLPMetricExporter(endpoint=endpoint.rstrip("/") + "/v1/metrics")
    return OTLPMetricExporter()


def _resource() -> Any:
    from opentelemetry.sdk.resources import Resource

    name = os.environ.get("OTEL_SERVICE_NAME") or DEFAULT_SERVICE_NAME
    return Resource.create({"service.name": name, "service.instance.id": socket.gethostname()})


def run_probes(
    uptime: Uptime,
    exporter: Any,
    resource: Any,
    *,
    stop: threading.Event,
    rounds: int | None = None,
    report: Callable[[str], None] = print,
) -> bool:
    """Probe every URL each ``uptime.interval`` and export, until ``stop`` is set or ``rounds`` are done.

    Reports a line per URL on the first round and on every change between up and down;
    returns whether every URL was up on the last round."""
    from otel_monitor.pipeline.probes import metrics_data, probe_all

    start_ns = time.time_ns()
    last: dict[tuple[str, str], bool] = {}
    all_up = True
    done = 0
    while not stop.is_set() and (rounds is None or done < rounds):
        began = time.monotonic()
        results = probe_all(uptime.probes, uptime.timeout)
        for r in results:
            key = (r.method, r.url)
            if last.get(key) != r.up:
                state = "up" if r.up else "down"
                answer = f"HTTP {r.status_code}" if r.status_code else f"no answer: {r.error}"
                report(f"{state:4} {r.method} {r.url}: {answer} in {r.duration_ms} ms")
            last[key] = r.up
        all_up = all(r.up for r in results)
        exporter.export(metrics_data(results, resource, start_ns))
        done += 1
        if rounds is not None and done >= rounds:
            break
        stop.wait(max(0.0, uptime.interval - (time.monotonic() - began)))
    return all_up


def run(args: argparse.Namespace) -> int:
    if not args.config:
        print("otel-monitor probe: no config file: pass --config or set OTEL_MONITOR_CONFIG", file=sys.stderr)
        return 2
    problems: list[str] = []
    try:
        uptime = load_uptime(load_config_file(args.config), problems=problems)
    except ConfigFileError as exc:
        print(f"otel-monitor probe: {exc}", file=sys.stderr)
        return 2
    if problems:
        for problem in problems:
            print(f"otel-monitor probe: {problem}", file=sys.stderr)
        return 2
    if not uptime.probes:
        print(f"otel-monitor probe: {args.config} lists no URL under uptime: probes:", file=sys.stderr)
        return 2
    exporter = _exporter(args.endpoint)
    stop = threading.Event()
    if not args.once:
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda *_: stop.set())
        print(
            f"otel-monitor probe: {len(uptime.probes)} URL(s) every {uptime.interval:g} s, timeout "
            f"{uptime.timeout:g} s; Ctrl-C stops",
            flush=True,
        )
    try:
        all_up = run_probes(
            uptime, exporter, _resource(), stop=stop, rounds=1 if args.once else None, report=_flushed_print
        )
    finally:
        exporter.shutdown()
    return 0 if all_up or not args.once else 1


def _flushed_print(line: str) -> None:
    print(line, flush=True)

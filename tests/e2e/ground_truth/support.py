"""Ground-truth support: a real ``otel-monitor console`` process, an app under
``opentelemetry-instrument`` sending to it, and a client that records, per
request, what it sent and what it saw.

The truth is the client's record (:class:`Call`): route, status, the latency it
measured, the server-side work the app reported (``Server-Timing``), and the
user and funnel step when a scenario sets them.  The helpers below turn that
record into the figures the console should show and check the console's
answers against them within the stated tolerances: counts and success rates
exact, throughput within 5 %, percentiles within the relative error the
console states and never outside the observed minimum and maximum.

Any app, any console arguments: scenarios of their own (a service that stops,
a restart, a dependency outage, another SDK) start what they need with
:func:`console` and :func:`monitored_app` (or their own process) and record
traffic with :class:`Recorder`.
"""

from __future__ import annotations

import json
import math
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from otel_monitor.semantics.slo import PERCENTILE_RELATIVE_ERROR
from tests.support.launch import LaunchedApp, launched

BIN = Path(sys.executable).parent
HERE = Path(__file__).resolve().parent
APP = "tests.e2e.ground_truth.app:app"
CONFIG = HERE / "otel-monitor.yaml"
# Short export intervals keep scenarios to a few seconds.
METRIC_EXPORT_INTERVAL_MS = 500
SPAN_EXPORT_DELAY_MS = 100
THROUGHPUT_TOLERANCE = 0.05


# --- the console ---------------------------------------------------------------
class ConsoleProcess:
    """A running ``otel-monitor console``: its URL, its API and ``otel-monitor status`` against it."""

    def __init__(self, process: subprocess.Popen[str], url: str, log: Path) -> None:
        self.process = process
        self.url = url
        self.log = log

    def api(self, path: str, **params: Any) -> Any:
        query = urllib.parse.urlencode({k: v for k, v in params.items() if v is not None})
        with urllib.request.urlopen(f"{self.url}{path}{'?' + query if query else ''}", timeout=10) as response:
            return json.loads(response.read())

    def operations(self, service: str, window: str = "15m") -> dict[str, dict[str, Any]]:
        """The operations page's rows of a service, by operation name."""
        return {r["operation"]: r for r in self.api("/api/operations", service=service, window=window)["operations"]}

    def summary(self, service: str, window: str = "15m") -> dict[str, Any]:
        rows = self.api("/api/summary", service=service, window=window)["services"]
        return next(r for r in rows if r["service"] == service)

    def status(self, *args: str) -> tuple[int, str]:
        """``otel-monitor status --url <console> args``: exit code and output."""
        done = subprocess.run(
            [str(BIN / "otel-monitor"), "status", "--url", self.url, *args], capture_output=True, text=True, timeout=60
        )
        return done.returncode, done.stdout + done.stderr

    def stop(self, timeout: float = 20.0) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def log_tail(self, chars: int = 4000) -> str:
        return self.log.read_text(errors="replace")[-chars:] if self.log.exists() else ""


@contextmanager
def console(workdir: Path, *args: str, config: Path | None = CONFIG) -> Iterator[ConsoleProcess]:
    """``otel-monitor console --port 0`` as a user runs it; stopped (SIGTERM) on exit."""
    log = workdir / "console.log"
    command = [str(BIN / "otel-monitor"), "console", "--port", "0", *args]
    if config is not None:
        command += ["--config", str(config)]
    with open(log, "w") as stderr:
        process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=stderr, text=True)
    assert process.stdout is not None
    line = process.stdout.readline()  # "otel-monitor console: http://127.0.0.1:PORT ..."
    match = re.search(r"(http://127\.0\.0\.1:\d+)", line)
    if match is None:
        process.kill()
        process.wait()
        raise RuntimeError(f"the console did not start: {line!r}\n{log.read_text(errors='replace')[-3000:]}")
    # Keep reading its output, so a full pipe can never block it.
    threading.Thread(target=lambda: [None for _ in process.stdout or ()], daemon=True).start()
    handle = ConsoleProcess(process, match.group(1), log)
    try:
        yield handle
    finally:
        handle.stop()


# --- the app ---------------------------------------------------------------------
def app_env(console_url: str, service: str, **extra: str) -> dict[str, str]:
    """What an app under otel-monitor needs to send to the console, fast enough for a short scenario."""
    return {
        "OTEL_EXPORTER_OTLP_ENDPOINT": console_url,
        "OTEL_SERVICE_NAME": service,
        "OTEL_METRIC_EXPORT_INTERVAL": str(METRIC_EXPORT_INTERVAL_MS),
        "OTEL_BSP_SCHEDULE_DELAY": str(SPAN_EXPORT_DELAY_MS),
        "OTEL_BLRP_SCHEDULE_DELAY": str(SPAN_EXPORT_DELAY_MS),
        "OTEL_MONITOR_CONFIG": str(CONFIG),
        **extra,
    }


@contextmanager
def monitored_app(console_url: str, service: str, app: str = APP, **env: str) -> Iterator[LaunchedApp]:
    """``opentelemetry-instrument uvicorn <app>`` sending to the console; stopped (SIGTERM) on exit."""
    with launched(app, app_env(console_url, service, **env), extra_args=("--no-access-log",)) as handle:
        yield handle


# --- the recording client --------------------------------------------------------------
@dataclass(frozen=True)
class Call:
    """One request as the client saw it."""

    route: str  # the operation the console should count it under
    path: str
    status: int | None  # None: no answer at all
    latency: float  # seconds, measured by the client
    started_ns: int  # wall clock, as the console's times
    ended_ns: int
    server: Mapping[str, float] = field(default_factory=dict)  # Server-Timing parts, seconds
    user: str | None = None
    step: str | None = None

    @property
    def failed(self) -> bool:
        """A failure as the product defines it: no answer or a 5xx; a 4xx is the caller's problem."""
        return self.status is None or self.status >= 500

    def fails(self, client_errors_fail: bool = False) -> bool:
        """:attr:`failed`, and with ``OTEL_MONITOR_CLIENT_ERRORS_FAIL`` (``--client-errors-fail``) a 4xx too."""
        return self.failed or (client_errors_fail and self.status is not None and 400 <= self.status < 500)


def _server_timing(header: str) -> dict[str, float]:
    parts = {}
    for item in header.split(","):
        name, _, rest = item.strip().partition(";")
        match = re.search(r"dur=([0-9.]+)", rest)
        if name and match:
            parts[name] = float(match.group(1)) / 1000
    return parts


Plan = Callable[[int], tuple[str, str]]  # request number -> (route, path)


class Recorder:
    """Sends requests and records each one; thread-safe, every loop bounded."""

    def __init__(self, base_url: str, timeout: float = 30.0) -> None:
        self.base_url = base_url
        self.client = httpx.Client(
            base_url=base_url, timeout=timeout, limits=httpx.Limits(max_connections=64, max_keepalive_connections=64)
        )
        self.calls: list[Call] = []
        self._lock = threading.Lock()

    def close(self) -> None:
        self.client.close()

    def __enter__(self) -> Recorder:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def call(
        self,
        route: str,
        path: str,
        *,
        headers: Mapping[str, str] | None = None,
        user: str | None = None,
        step: str | None = None,
    ) -> Call:
        started_ns = time.time_ns()
        started = time.perf_counter()
        status: int | None
        server: dict[str, float] = {}
        try:
            response = self.client.get(path, headers=dict(headers or {}))
            status = response.status_code
            server = _server_timing(response.headers.get("server-timing", ""))
        except httpx.HTTPError:
            status = None
        latency = time.perf_counter() - started
        call = Call(route, path, status, latency, started_ns, time.time_ns(), server, user, step)
        with self._lock:
            self.calls.append(call)
        return call

    def steady(self, rate: float, seconds: float, plan: Plan) -> list[Call]:
        """``rate`` requests a second for ``seconds``, one at a time, paced by the clock."""
        count = max(1, round(rate * seconds))
        first = time.perf_counter()
        out = []
        for i in range(count):
            delay = first + i / rate - time.perf_counter()
            if delay > 0:
                time.sleep(delay)  # pacing, not waiting for a result
            out.append(self.call(*plan(i)))
        return out

    def burst(self, count: int, concurrency: int, plan: Plan) -> list[Call]:
        """``count`` requests from ``concurrency`` threads, as fast as the app answers."""
        with ThreadPoolExecutor(concurrency) as pool:
            return list(pool.map(lambda i: self.call(*plan(i)), range(count)))

    def of(self, route: str) -> list[Call]:
        with self._lock:
            return [c for c in self.calls if c.route == route]


# --- truth and checks -------------------------------------------------------------------
def wait_for(predicate: Callable[[], Any], timeout: float = 30.0, what: str = "the condition") -> Any:
    """Poll until ``predicate()`` is truthy (bounded); its value."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = predicate()
        except (urllib.error.URLError, OSError, KeyError, StopIteration):
            last = None
        if last:
            return last
        time.sleep(0.1)
    raise AssertionError(f"{what} did not happen within {timeout:g}s (last: {last!r})")


def nearest_rank(values: Sequence[float], q: float) -> float:
    """The q-th percentile as the value of the ceil(q*n)-th smallest call."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


def wait_for_operation(
    handle: ConsoleProcess, service: str, operation: str, calls: int, source: str | None = None, timeout: float = 30.0
) -> dict[str, Any]:
    """The operation's row once it counts ``calls`` (from ``source`` when given)."""

    def ready() -> dict[str, Any] | None:
        row = handle.operations(service).get(operation)
        if row and row["calls"] == calls and (source is None or row["source"] == source):
            return row
        return None

    return wait_for(ready, timeout, f"{service}/{operation} counting {calls} calls")


def check_counts(row: Mapping[str, Any], calls: Sequence[Call], client_errors_fail: bool = False) -> None:
    """Calls, errors and success rate exact (a 4xx failing with ``client_errors_fail``)."""
    failed = sum(c.fails(client_errors_fail) for c in calls)
    assert row["calls"] == len(calls), (row["calls"], len(calls))
    assert row["errors"] == failed, (row["errors"], failed)
    assert row["success_rate"] == round((len(calls) - failed) / len(calls), 6), (row["success_rate"], failed)


def check_latency(row: Mapping[str, Any], inner: Sequence[float], outer: Sequence[float], slack: float = 2e-6) -> None:
    """p50/p95/p99, min and max against the truth.

    Each call's true duration (its span) lies between ``inner`` (work measured
    inside it) and ``outer`` (measured around it), call by call; so does each
    percentile of them.  The console's figure may be off by its stated
    relative error on top, and must lie within its own min and max.  ``slack``: how far a figure may be
    off by rounding alone (the API rounds to the microsecond, a page to its last digit shown).
    """
    error = row["percentile_error"]
    assert error is not None and 0 <= error <= PERCENTILE_RELATIVE_ERROR + 1e-4, f"relative error bound {error!r}"
    assert min(inner) - slack <= row["min"] <= min(outer) + slack, (row["min"], min(inner), min(outer))
    assert max(inner) - slack <= row["max"] <= max(outer) + slack, (row["max"], max(inner), max(outer))
    for name, q in (("p50", 0.5), ("p95", 0.95), ("p99", 0.99)):
        low, high = nearest_rank(inner, q), nearest_rank(outer, q)
        value = row[name]
        assert row["min"] - slack <= value <= row["max"] + slack, f"{name} {value} outside [{row['min']}, {row['max']}]"
        assert low * (1 - error) - slack <= value <= high * (1 + error) + slack, (
            f"{name} {value} not within {error:.1%} of the truth [{low}, {high}]"
        )


def calls_within(calls: Iterable[Call], window: Mapping[str, int]) -> int:
    """Calls that ended within the window (ms since the epoch, start exclusive)."""
    start_ns, end_ns = window["start"] * 1_000_000, window["end"] * 1_000_000
    return sum(1 for c in calls if start_ns < c.ended_ns <= end_ns + 1_000_000)


def check_throughput(row: Mapping[str, Any], calls: Sequence[Call], slack: float = 0.0) -> None:
    """The rate over the last minute (or since the first call) within 5 % of the calls the client made in it
    (``slack``: what rounding alone may add, a page's last digit)."""
    window = row["throughput_window"]
    assert window is not None and row["throughput_per_s"] is not None, row
    seconds = (window["end"] - window["start"]) / 1000
    assert 0 < seconds <= 60.0 + 1e-3, window
    first = min(c.started_ns for c in calls) // 1_000_000
    if (window["end"] - first) / 1000 < 60:  # younger than a minute: counted from the first call
        assert abs(window["start"] - first) <= 1000, (window, first)
    truth = calls_within(calls, window) / seconds
    assert abs(row["throughput_per_s"] - truth) <= THROUGHPUT_TOLERANCE * truth + slack, (
        row["throughput_per_s"],
        truth,
        window,
    )


STATUS_LINE = re.compile(
    r"^(?P<service>\S+)\s+(?P<status>[A-Z]+)\s+calls=(?P<calls>\d+)\s+errors=(?P<errors>\S+)"
    r"(?:\s+p95=(?P<p95>\d+)ms)?"
)


def status_row(handle: ConsoleProcess, service: str) -> dict[str, str]:
    """``otel-monitor status --service <service>``: its line for the service, parsed."""
    _, output = handle.status("--service", service)
    for line in output.splitlines():
        match = STATUS_LINE.match(line)
        if match and match.group("service") == service:
            return match.groupdict()
    raise AssertionError(f"no line for {service} in otel-monitor status:\n{output}")

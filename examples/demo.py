"""``make demo``: the example shop and its payment provider under ``opentelemetry-instrument``,
driven by the traffic generator, with the local console when it is available.

Runs from the project's virtual environment (``make demo`` creates it)::

    python -m examples.demo --duration 60

Services start with their output in log files (their paths are printed), stop
in order (shop, payments, console) so the last telemetry is flushed, and stop
on Ctrl-C or SIGTERM too.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import IO, Any

import httpx

from examples.traffic import TrafficReport, run_traffic

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
CONFIG_FILE = ROOT / "examples" / "shop" / "otel-monitor.yaml"


@dataclass
class Service:
    name: str
    process: subprocess.Popen[bytes]
    log_path: Path
    log: IO[bytes]

    def stop(self, timeout: float = 10.0) -> None:
        if self.process.poll() is None:
            # SIGINT lets uvicorn shut down gracefully and the SDK flush its last batch.
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.log.close()

    def log_tail(self, lines: int = 20) -> str:
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])


class DemoError(Exception):
    """The demo cannot run; the message says why and what to do."""


def port_is_free(port: int) -> bool:
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def console_available() -> bool:
    return importlib.util.find_spec("otel_monitor.console") is not None


def start(name: str, command: list[str], env: dict[str, str], log_dir: Path) -> Service:
    log_path = log_dir / f"{name}.log"
    log = log_path.open("wb")
    # A session of its own: Ctrl-C reaches only us, and we stop services in order.
    process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    return Service(name, process, log_path, log)


def wait_until_ready(service: Service, url: str | None, port: int, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if service.process.poll() is not None:
            raise DemoError(f"{service.name} exited with code {service.process.returncode}:\n{service.log_tail()}")
        try:
            if url is None:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                return
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except (OSError, httpx.HTTPError):
            pass
        time.sleep(0.2)
    raise DemoError(f"{service.name} did not become ready within {timeout:g}s; see {service.log_path}")


def service_env(args: argparse.Namespace, data_dir: Path) -> dict[str, str]:
    env = dict(os.environ)
    # What the user set wins; these only fill the gaps for a pleasant local demo.
    defaults = {
        "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://localhost:{args.console_port}",
        "OTEL_METRIC_EXPORT_INTERVAL": "5000",
        # Health checks every 5 s, so the console's Health page follows an outage closely.
        "OTEL_MONITOR_HEALTH_INTERVAL": "5",
        "OTEL_MONITOR_CONFIG": str(CONFIG_FILE),
        "OTEL_MONITOR_ENVIRONMENT": "demo",
        "OTEL_MONITOR_USER_ID_KEY": "demo-only-key-not-for-production",
        "DATABASE_URL": f"sqlite:///{data_dir / 'shop.db'}",
        "SHOP_PAYMENTS_PRIMARY_URL": f"http://127.0.0.1:{args.payments_port}/primary",
        "SHOP_PAYMENTS_FALLBACK_URL": f"http://127.0.0.1:{args.payments_port}/fallback",
        "SHOP_PAYMENTS_TIMEOUT": "1.0",
        # The primary provider hangs now and then, so the fallback has work to do.
        "PAYMENTS_DELAY_MS": "40",
        "PAYMENTS_SLOW_RATE": "0.05",
        "PAYMENTS_SLOW_MS": "3000",
        "PAYMENTS_FAILURE_RATE": "0.02",
    }
    for key, value in defaults.items():
        env.setdefault(key, value)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    return env


def instrumented_uvicorn(service_name: str, app: str, port: int) -> list[str]:
    launcher = BIN / "opentelemetry-instrument"
    if not launcher.exists():
        raise DemoError(f"{launcher} is missing: run `make install` (or pip install -e '.[dev]') first")
    return [
        str(launcher), "--service_name", service_name,
        str(BIN / "uvicorn"), app, "--host", "127.0.0.1", "--port", str(port), "--no-access-log",
    ]  # fmt: skip


def run_demo(args: argparse.Namespace) -> int:
    with_console = console_available() and not args.no_console
    ports = {"shop": args.shop_port, "payments": args.payments_port}
    if with_console:
        ports["console"] = args.console_port
    busy = [f"{name} port {port}" for name, port in ports.items() if not port_is_free(port)]
    if busy:
        raise DemoError(f"already in use: {', '.join(busy)}; stop what runs there or choose other ports (--help)")
    data_dir = Path(tempfile.mkdtemp(prefix="otel-monitor-demo-"))
    console_db = args.console_db or str(data_dir / "console.db")
    env = service_env(args, data_dir)
    services: list[Service] = []
    try:
        if with_console:
            console = start(
                "console",
                # With --db: a restart keeps the figures, and the 7d and 30d windows are there.
                [sys.executable, "-m", "otel_monitor", "console", "--port", str(args.console_port), "--db", console_db],
                env,
                data_dir,
            )
            services.append(console)
            wait_until_ready(console, None, args.console_port)
        payments = start(
            "payments", instrumented_uvicorn("payments", "examples.payments.app:app", args.payments_port), env, data_dir
        )
        services.append(payments)
        shop = start("shop", instrumented_uvicorn("shop", "examples.shop.app:app", args.shop_port), env, data_dir)
        services.append(shop)
        wait_until_ready(payments, f"http://127.0.0.1:{args.payments_port}/ping", args.payments_port)
        wait_until_ready(shop, f"http://127.0.0.1:{args.shop_port}/ping", args.shop_port)
        # The config file's uptime: probes, from outside the shop, to the same OTLP endpoint.
        probe = start("probe", [sys.executable, "-m", "otel_monitor", "probe"], env, data_dir)
        services.append(probe)

        print(f"shop:      http://127.0.0.1:{args.shop_port}/docs   (log {shop.log_path})")
        print(f"payments:  http://127.0.0.1:{args.payments_port}/docs   (log {payments.log_path})")
        print(f"probe:     the uptime: URLs of {CONFIG_FILE.name} every 30 s   (log {probe.log_path})")
        if with_console:
            print(f"console:   http://127.0.0.1:{args.console_port}/   (receiving OTLP there; kept in {console_db})")
        else:
            print(
                f"telemetry: OTLP to {env['OTEL_EXPORTER_OTLP_ENDPOINT']} (start `otel-monitor console` or the collector to see it)"
            )
        print(
            f"traffic:   {args.duration:g}s at up to {args.rate:g} requests/s, {args.concurrency} visitors at a time ...",
            flush=True,
        )

        report = run_traffic(
            f"http://127.0.0.1:{args.shop_port}",
            requests=args.requests, duration=args.duration, concurrency=args.concurrency, rate=args.rate, seed=args.seed,
        )  # fmt: skip
        print(report.summary(), flush=True)
        if with_console:
            print(side_by_side(report, f"http://127.0.0.1:{args.console_port}"), flush=True)
            print(refunds_side_by_side(report, f"http://127.0.0.1:{args.console_port}"), flush=True)
        if with_console and not args.exit and sys.stdin.isatty():
            print(f"The console stays up at http://127.0.0.1:{args.console_port}/ - press Ctrl-C to stop.", flush=True)
            signal.pause()
        return 0
    finally:
        # Shop first, so its last spans reach a console that is still listening.
        for service in reversed(services):
            service.stop()


def operation_names(config: Path = CONFIG_FILE) -> dict[str, str]:
    """Endpoint ("GET /api/products/{}") -> the operation the shop's rules name it; others keep their route."""
    import yaml

    rules = (yaml.safe_load(config.read_text()) or {}).get("operations") or []
    return {f"{r['method']} {_route_shape(r['route'])}": r["name"] for r in rules if "route" in r and "method" in r}


def _route_shape(route: str) -> str:
    return re.sub(r"\{[^}]*\}", "{}", route)


def console_operations(
    console_url: str, report: TrafficReport, service: str = "shop", timeout: float = 20.0
) -> dict[str, dict[str, Any]]:
    """The console's operation rows of the service once they cover the last answered request (bounded wait)."""
    last_ms = report.samples[-1][0] // 1_000_000 if report.samples else 0
    deadline = time.monotonic() + timeout
    rows: dict[str, dict[str, Any]] = {}
    while time.monotonic() < deadline:
        try:
            answer = httpx.get(f"{console_url}/api/operations", params={"service": service}, timeout=5).json()
            rows = {r["operation"]: r for r in answer["operations"]}
        except (httpx.HTTPError, ValueError, KeyError):
            rows = {}
        if any((r.get("throughput_window") or {}).get("end", 0) >= last_ms for r in rows.values()):
            return rows
        time.sleep(0.5)
    return rows


def side_by_side(report: TrafficReport, console_url: str, service: str = "shop", top: int = 4) -> str:
    """The traffic generator's own figures beside the console's, for the busiest endpoints.

    Each rate is over the same span for both: the console's last minute of data
    for that operation (the ``throughput_window`` it reports).  Latencies differ
    by what lies between them: the generator measures on the client, the
    console the server's spans.
    """
    rows = console_operations(console_url, report, service)
    if not rows:
        return f"console: no figures for {service} yet"
    names = operation_names()
    endpoints = Counter(e for _, _, e in report.samples)

    def ms(value: float | None) -> str:
        return "-" if value is None else f"{value * 1000:.1f}"

    lines = [
        f"{service}: the traffic generator (client) / the console (server spans), busiest endpoints first",
        f"  {'endpoint':<26}{'operation':<16}{'calls':>11}{'rate/s':>15}"
        f"{'p50 ms':>15}{'p95 ms':>15}{'p99 ms':>15}{'max ms':>17}",
    ]
    for endpoint, answered in endpoints.most_common(top):
        method, _, route = endpoint.partition(" ")
        operation = names.get(f"{method} {_route_shape(route)}", endpoint)
        row = rows.get(operation)
        if row is None:
            lines.append(f"  {endpoint:<26}{operation:<16}{answered:>5} / -")
            continue
        window = row.get("throughput_window")
        own = report.rate(window["start"] * 1_000_000, window["end"] * 1_000_000, endpoint) if window else None
        rate = row.get("throughput_per_s")
        cells = [
            f"{answered} / {row['calls']}",
            f"{'-' if own is None else f'{own:.2f}'} / {'-' if rate is None else f'{rate:.2f}'}",
        ]
        cells += [
            f"{ms(report.percentile(q, endpoint))} / {ms(row.get(name))}"
            for name, q in (("p50", 0.5), ("p95", 0.95), ("p99", 0.99), ("max", 1.0))
        ]
        lines.append(
            f"  {endpoint[:25]:<26}{operation[:15]:<16}{cells[0]:>11}{cells[1]:>15}"
            f"{cells[2]:>15}{cells[3]:>15}{cells[4]:>15}{cells[5]:>17}"
        )
    errors = [r["percentile_error"] for r in rows.values() if r.get("percentile_error") is not None]
    if errors:
        lines.append(f"  the console's percentiles are within {max(errors):.1%} of its spans' true durations")
    return "\n".join(lines)


def console_refunds(console_url: str, service: str = "shop", window: str = "1h") -> tuple[float, float] | None:
    """(refunds, amount) of the service's ``refund`` KPI in the console's business figures; None before any."""
    try:
        answer = httpx.get(
            f"{console_url}/api/summary", params={"service": service, "window": window}, timeout=5
        ).json()
        amounts = answer["services"][0]["business"]["amounts"]
    except (httpx.HTTPError, ValueError, KeyError, IndexError):
        return None
    found = [a for a in amounts if a["kpi"] == "refund"]
    return (sum(a["count"] for a in found), sum(a["total"] for a in found)) if found else None


def refunds_side_by_side(report: TrafficReport, console_url: str, timeout: float = 20.0) -> str:
    """Refunds the generator was granted beside the console's refund figures (waits, bounded, for them)."""
    deadline = time.monotonic() + timeout
    seen = console_refunds(console_url)
    while (seen is None or seen[0] < report.refunds) and time.monotonic() < deadline:
        time.sleep(0.5)
        seen = console_refunds(console_url)
    console = "-" if seen is None else f"{seen[0]:g} ({seen[1]:.2f} EUR)"
    return f"refunds: the traffic generator / the console: {report.refunds} ({report.refunded_cents / 100:.2f} EUR) / {console}"


def _exit_on_sigterm(_signum: int, _frame: FrameType | None) -> None:
    raise SystemExit(143)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m examples.demo", description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=60.0, help="seconds of traffic (default 60)")
    parser.add_argument("--rate", type=float, default=20.0, help="requests per second at most (default 20)")
    parser.add_argument("--concurrency", type=int, default=4, help="visitors at a time (default 4)")
    parser.add_argument("--requests", type=int, default=1_000_000, help="stop traffic after this many requests")
    parser.add_argument("--seed", type=int, default=None, help="random seed of the traffic mix")
    parser.add_argument("--shop-port", type=int, default=8000)
    parser.add_argument("--payments-port", type=int, default=8081)
    parser.add_argument("--console-port", type=int, default=4318, help="where the console receives OTLP (default 4318)")
    parser.add_argument(
        "--console-db",
        help="the console's SQLite file (default: one in the demo's temporary folder); reuse it to keep weeks",
    )
    parser.add_argument("--no-console", action="store_true", help="do not start the console even when it is installed")
    parser.add_argument("--exit", action="store_true", help="stop everything when the traffic ends")
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    try:
        return run_demo(args)
    except DemoError as exc:
        print(f"demo: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\nstopped", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())

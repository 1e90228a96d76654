"""App latency while the OTLP receiver misbehaves: ``python -m benchmarks.faults``.

The example shop's trivial endpoint runs under otel-monitor (every trace kept,
fast export intervals) on one core; wrk loads it from the other while the
receiver is healthy, absent, hung, slow, answering 503/429 with Retry-After,
or answering garbage. Each fault's p99 and throughput are printed as ratios to
the healthy run, with the export warnings the app logged and the telemetry it
counted as dropped. ``tests/integration/test_faults.py`` proves the behaviour (every
request served, telemetry resumes); this measures the cost.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from otel_monitor.testing import RECEIVER_FAULTS, OTLPSink, faulty_receiver

from .loadgen import run_wrk
from .processes import AppServer, clean_environment, free_port

ROOT = Path(__file__).resolve().parents[1]
FAULTS = ("healthy", *RECEIVER_FAULTS)


def measure(kind: str, app: str, path: str, duration: float, log_dir: Path) -> dict[str, float | int | str]:
    port = free_port()
    env = clean_environment(
        {
            "OTEL_SERVICE_NAME": "bench-faults",
            "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{port}",
            "OTEL_EXPORTER_OTLP_TIMEOUT": "1",
            "OTEL_BSP_SCHEDULE_DELAY": "200",
            "OTEL_BLRP_SCHEDULE_DELAY": "200",
            "OTEL_METRIC_EXPORT_INTERVAL": "1000",
            "DATABASE_URL": f"sqlite:///{log_dir / 'faults-shop.db'}",
        }
    )
    bin_dir = Path(sys.executable).parent
    command = [
        str(bin_dir / "opentelemetry-instrument"),
        str(bin_dir / "uvicorn"),
        app,
        "--host",
        "127.0.0.1",
        "--port",
        str(free_port()),
        "--no-access-log",
        "--log-level",
        "warning",
    ]
    server_port = int(command[command.index("--port") + 1])
    with OTLPSink(port=port) if kind == "healthy" else faulty_receiver(kind, port):
        server = AppServer(command, env, server_port, 0, log_dir / f"faults-{kind}.log")
        with server.start(ready_path="/ping"):
            run_wrk(server.base_url + path, 1.0, 16, 1, 1)  # warm-up
            result = run_wrk(server.base_url + path, duration, 16, 1, 1)
        log = server.log_tail(10_000)
    warnings = sum(1 for line in log.splitlines() if "export" in line.lower() and "fail" in line.lower())
    return {
        "fault": kind,
        "rps": result.rps,
        "p99_ms": result.p99 * 1000,
        "non_2xx": result.non_2xx,
        "socket_errors": result.socket_errors,
        "export_warnings": warnings,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--app", default="examples.shop.app:app")
    parser.add_argument("--path", default="/ping")
    parser.add_argument("--duration", type=float, default=8.0, help="seconds of load per fault")
    parser.add_argument("--faults", default=",".join(FAULTS))
    args = parser.parse_args(argv)
    log_dir = ROOT / "benchmarks" / "results" / "logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    rows = []
    for kind in args.faults.split(","):
        rows.append(measure(kind, args.app, args.path, args.duration, log_dir))
        time.sleep(0.5)
    healthy = next((r for r in rows if r["fault"] == "healthy"), rows[0])
    print("| receiver | req/s | p99 ms | p99 vs healthy | req/s vs healthy | non-2xx | export warnings |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['fault']} | {r['rps']:,.0f} | {r['p99_ms']:.1f} | {float(r['p99_ms']) / float(healthy['p99_ms']):.2f}x "
            f"| {float(r['rps']) / float(healthy['rps']):.2f}x | {r['non_2xx']} | {r['export_warnings']} |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())

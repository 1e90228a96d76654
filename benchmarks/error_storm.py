"""An error storm: every request fails, for a minute; what monitoring costs and what it delivers.

    python -m benchmarks.error_storm [--seconds 60] [--configurations monitor-production]

Serves ``benchmarks.request_path_app:app`` (``/fail`` raises an unhandled
``TimeoutError``) under each configuration in turn and loads ``/fail`` with
wrk (16 connections, loopback) for ``--seconds``. Per configuration it
reports the app's CPU (from /proc, as a share of one core and per failed
request), p99 and throughput, its peak and final resident memory, and the
telemetry delivered against produced:

* produced: the failures the server handled (uvicorn logs each one);
* delivered: the error log records (FastAPI's ``http.server.request.exception``)
  the OTLP sink received, after the server's SIGTERM flush;
* dropped: ``monitor.sdk.dropped`` for logs as the app exported it, plus what
  its exit line on stderr says it could not deliver;
* unaccounted: produced - delivered - dropped, which must be 0.

The sink decodes every log and metric export on the other core.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from benchmarks.configurations import Configuration, build_configurations, ensure_vanilla_venv
from benchmarks.loadgen import run_wrk
from benchmarks.processes import ROOT, AppServer, SinkProcess, clean_environment, free_port

APP = "benchmarks.request_path_app:app"
ERROR_EVENT = "http.server.request.exception"
_EXIT_LINE = re.compile(r"exiting without (\d+) log records")
_TICKS = 100  # os.sysconf("SC_CLK_TCK") on Linux


@dataclass
class StormResult:
    configuration: str
    seconds: float
    requests: int
    rps: float
    p99_ms: float
    cpu_share: float  # of one core, over the storm
    cpu_ms_per_failure: float
    rss_start_kib: int
    rss_end_kib: int
    rss_peak_kib: int
    produced: int
    delivered: int | None  # None: this configuration exports no error log records
    dropped_counted: int
    dropped_at_exit: int

    @property
    def unaccounted(self) -> int | None:
        if self.delivered is None:
            return None
        return self.produced - self.delivered - self.dropped_counted - self.dropped_at_exit

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "unaccounted": self.unaccounted}


def _cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _TICKS  # utime, stime


def _memory_kib(pid: int) -> tuple[int, int]:
    """(VmRSS, VmHWM): resident now and at its peak."""
    found = {}
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith(("VmRSS:", "VmHWM:")):
                found[line[:5]] = int(line.split()[1])
    return found.get("VmRSS", 0), found.get("VmHWM", 0)


def storm(
    configuration: Configuration,
    seconds: float,
    connections: int,
    sink: SinkProcess,
    server_cpu: int | None,
    load_cpu: int | None,
    log_dir: Path,
) -> StormResult:
    """One configuration under ``seconds`` of failures; the server stopped (and flushed) before counting."""
    port = free_port()
    env = clean_environment(configuration.environment(sink.endpoint, service=f"storm-{configuration.key}"))
    log_path = log_dir / f"storm-{configuration.key}.log"
    server = AppServer(configuration.server_command(APP, port), env, port, server_cpu, log_path)
    server.start(ready_path="/ok")
    before = sink.stats()
    try:
        run_wrk(server.base_url + "/fail", 2, connections, 1, load_cpu)  # warm-up: the error site seen once
        rss_start, _ = _memory_kib(server.pid)
        cpu_start, wall_start = _cpu_seconds(server.pid), time.monotonic()
        outcome = run_wrk(server.base_url + "/fail", seconds, connections, 1, load_cpu)
        cpu, wall = _cpu_seconds(server.pid) - cpu_start, time.monotonic() - wall_start
        rss_end, rss_peak = _memory_kib(server.pid)
    finally:
        server.stop(timeout=120)
    after = _settled(sink)
    log = log_path.read_text(errors="replace")
    produced = log.count("Exception in ASGI application")
    failures = outcome.non_2xx or outcome.requests
    received = after["records"].get(ERROR_EVENT, 0) - before["records"].get(ERROR_EVENT, 0)
    dropped = int(sum(v for k, v in after["dropped"].items() if "logs" in k))
    at_exit = sum(int(n) for n in _EXIT_LINE.findall(log))
    exports_logs = configuration.key.startswith("monitor")
    return StormResult(
        configuration.key,
        wall,
        outcome.requests,
        outcome.rps,
        outcome.p99 * 1000,
        cpu / wall,
        cpu * 1000 / max(1, failures),
        rss_start,
        rss_end,
        rss_peak,
        produced,
        received if exports_logs else None,
        dropped if exports_logs else 0,
        at_exit,
    )


def _settled(sink: SinkProcess, quiet: float = 2.0, bound: float = 60.0) -> dict[str, Any]:
    """The sink's counts once nothing has arrived for ``quiet`` seconds (at most ``bound``)."""
    last, since, deadline = sink.stats(), time.monotonic(), time.monotonic() + bound
    while time.monotonic() < deadline:
        time.sleep(0.2)
        now = sink.stats()
        if now["requests"] != last["requests"]:
            last, since = now, time.monotonic()
        elif time.monotonic() - since >= quiet:
            break
    return last


def run_storms(
    configurations: list[Configuration],
    seconds: int,
    connections: int,
    server_cpu: int | None,
    load_cpu: int | None,
    log_dir: Path,
) -> list[StormResult]:
    """:func:`storm` for each configuration, with a sink of its own that decodes and counts."""
    results = []
    with SinkProcess(sys.executable, cpu=load_cpu, count_records=True) as sink:
        for configuration in configurations:
            print(f"error storm: {configuration.key}, {seconds} s", flush=True)
            results.append(storm(configuration, seconds, connections, sink, server_cpu, load_cpu, log_dir))
    return results


def render(results: list[StormResult], seconds: float) -> str:
    lines = [
        f"## Error storm: {seconds:g} s of 100% failures (`{APP}` /fail, wrk 16 connections)",
        "",
        "| configuration | req/s | p99 ms | app CPU (of one core) | CPU ms per failure "
        "| RSS start / end / peak MiB | error logs produced | delivered | dropped (counted) | dropped at exit "
        "| unaccounted |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        delivered = "-" if r.delivered is None else f"{r.delivered:,}"
        unaccounted = "-" if r.unaccounted is None else f"{r.unaccounted:,}"
        lines.append(
            f"| {r.configuration} | {r.rps:,.0f} | {r.p99_ms:.1f} | {r.cpu_share:.2f} | {r.cpu_ms_per_failure:.2f} "
            f"| {r.rss_start_kib / 1024:.0f} / {r.rss_end_kib / 1024:.0f} / {r.rss_peak_kib / 1024:.0f} "
            f"| {r.produced:,} | {delivered} | {r.dropped_counted:,} | {r.dropped_at_exit:,} | {unaccounted} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.error_storm", description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=60, help="seconds of failures per configuration (whole)")
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument(
        "--configurations",
        default="monitor-production",
        help="comma-separated, of: uninstrumented, vanilla, monitor-full, monitor-production",
    )
    parser.add_argument("--output", type=Path, default=ROOT / "benchmarks" / "results")
    args = parser.parse_args(argv)
    if not 1 <= args.seconds <= 3600 or not 1 <= args.connections <= 1000:
        parser.error("--seconds must be 1..3600 and --connections 1..1000")
    wanted = [key.strip() for key in args.configurations.split(",") if key.strip()]
    vanilla_bin = ensure_vanilla_venv() if "vanilla" in wanted else None
    known = {c.key: c for c in build_configurations(Path(sys.executable).parent, vanilla_bin)}
    unknown = [key for key in wanted if key not in known]
    if unknown or not wanted:
        parser.error(f"--configurations: unknown {', '.join(unknown) or '(none given)'}; known: {', '.join(known)}")
    from benchmarks.run import cpu_plan  # here: benchmarks.run imports this module

    server_cpu, load_cpu = cpu_plan()
    args.output.mkdir(parents=True, exist_ok=True)
    results = run_storms(
        [known[key] for key in wanted], args.seconds, args.connections, server_cpu, load_cpu, args.output / "logs"
    )
    markdown = render(results, args.seconds)
    print(markdown)
    (args.output / "error_storm.json").write_text(json.dumps([r.as_dict() for r in results], indent=2))
    (args.output / "error_storm.md").write_text(markdown + "\n")
    return 1 if any(r.unaccounted for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())

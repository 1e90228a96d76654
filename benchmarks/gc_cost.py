"""What the cyclic garbage collector costs the server per request, with and without the freeze.

Under the launcher otel-monitor freezes (``gc.freeze()``) what exists once it
has set up: the SDK and its exporters, its own objects and the modules loaded
before the app, which live as long as the process (``OTEL_MONITOR_GC_FREEZE``). This serves the example app
with one uvicorn worker pinned to one core, uninstrumented and in the
production profile with the freeze on and off, interleaved, loads each with
``wrk`` from the other core and reports, over the loaded seconds only: req/s,
how many collections of each generation ran (also per 1,000 requests: the
count does not depend on the machine's speed, the time does) and how long a
full (generation 2) collection took, and the collector's time per request::

    python -m benchmarks.gc_cost --path /ping --seconds 8 --rounds 3

The server is ``python -m benchmarks.gc_cost --serve APP PORT``: uvicorn with
``gc.callbacks`` timing each collection, which it writes to the file named by
``GC_COST_STATS`` on SIGUSR1.
"""

from __future__ import annotations

import argparse
import dataclasses
import gc
import json
import os
import signal
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the --serve process, measured, imports nothing of the harness
    from benchmarks.configurations import Configuration

STATS_ENV = "GC_COST_STATS"


def serve(app: str, port: int) -> None:
    """uvicorn, with each collection timed; SIGUSR1 writes the totals so far."""
    import uvicorn

    counts, seconds = [0, 0, 0], [0.0, 0.0, 0.0]
    started: dict[int, float] = {}

    def timed(phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            started[threading.get_ident()] = time.perf_counter()
            return
        begun = started.pop(threading.get_ident(), None)
        if begun is not None:
            counts[info["generation"]] += 1
            seconds[info["generation"]] += time.perf_counter() - begun

    def report(*_: Any) -> None:
        target = Path(os.environ[STATS_ENV])
        written = target.with_suffix(".tmp")
        written.write_text(json.dumps({"counts": counts, "seconds": seconds, "frozen": gc.get_freeze_count()}))
        os.replace(written, target)

    gc.callbacks.append(timed)
    signal.signal(signal.SIGUSR1, report)
    uvicorn.run(app, host="127.0.0.1", port=port, workers=1, access_log=False, log_level="warning")


def _snapshot(pid: int, path: Path) -> dict[str, Any]:
    path.unlink(missing_ok=True)
    os.kill(pid, signal.SIGUSR1)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            return dict(json.loads(path.read_text()))
        except (OSError, ValueError):
            time.sleep(0.05)
    raise RuntimeError(f"server {pid} wrote no GC figures to {path}")


def measure(configuration: Configuration, args: argparse.Namespace, sink_endpoint: str,
            server_cpu: int | None, load_cpu: int | None, work: Path) -> dict[str, Any]:
    from benchmarks.loadgen import run_wrk
    from benchmarks.processes import AppServer, clean_environment, free_port

    variant, bin_dir = configuration.key, configuration.bin_dir
    port = free_port()
    command = [str(bin_dir / "python"), "-m", "benchmarks.gc_cost", "--serve", args.app, str(port)]
    if configuration.instrumented:
        command = [str(bin_dir / "opentelemetry-instrument"), *command]
    stats_path = work / f"{variant}.json"
    server_env = clean_environment(configuration.environment(sink_endpoint, service="bench-gc-cost"))
    server_env[STATS_ENV] = str(stats_path)
    server = AppServer(command, server_env, port, server_cpu, work / f"{variant}.log").start(args.path)
    try:
        run_wrk(server.base_url + args.path, args.warmup, cpu=load_cpu)
        before = _snapshot(server.pid, stats_path)
        load = run_wrk(server.base_url + args.path, args.seconds, cpu=load_cpu)
        after = _snapshot(server.pid, stats_path)
    finally:
        server.stop()
    counts = [b - a for a, b in zip(before["counts"], after["counts"], strict=True)]
    seconds = [b - a for a, b in zip(before["seconds"], after["seconds"], strict=True)]
    per_thousand = [1000 * count / load.requests if load.requests else None for count in counts]
    return {"variant": variant, "rps": load.rps, "requests": load.requests, "collections": counts,
            **{f"gen{generation}_per_1000": value for generation, value in enumerate(per_thousand)},
            "frozen_objects": after["frozen"],
            "full_ms": 1000 * seconds[2] / counts[2] if counts[2] else None,
            "gc_us_per_request": 1e6 * sum(seconds) / load.requests if load.requests else None}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.gc_cost", description=__doc__.splitlines()[0])
    parser.add_argument("--serve", nargs=2, metavar=("APP", "PORT"), help=argparse.SUPPRESS)
    parser.add_argument("--app", default="examples.shop.app:app")
    parser.add_argument("--path", default="/ping")
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--warmup", type=float, default=2.0)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)
    if args.serve:
        serve(args.serve[0], int(args.serve[1]))
        return 0

    from benchmarks.configurations import build_configurations
    from benchmarks.processes import SinkProcess
    from benchmarks.run import cpu_plan

    by_key = {c.key: c for c in build_configurations(Path(sys.executable).parent, None)}
    production = by_key["monitor-production"]
    variants = [by_key["uninstrumented"]] + [
        dataclasses.replace(production, key=f"production, {name}", env={**production.env, "OTEL_MONITOR_GC_FREEZE": value})
        for name, value in (("frozen", "true"), ("not frozen", "false"))]
    server_cpu, load_cpu = cpu_plan()
    results: dict[str, list[dict[str, Any]]] = {c.key: [] for c in variants}
    with SinkProcess(sys.executable, cpu=load_cpu) as sink, tempfile.TemporaryDirectory() as work:
        for round_number in range(args.rounds):
            for configuration in variants:
                name = configuration.key
                result = measure(configuration, args, sink.endpoint, server_cpu, load_cpu, Path(work))
                results[name].append(result)
                full = f"{result['full_ms']:.1f} ms" if result["full_ms"] is not None else "none ran"
                print(f"round {round_number + 1} {name}: {result['rps']:,.0f} req/s, "
                      f"{result['requests']:,} requests, collections "
                      f"{result['collections']}, full collection {full}, "
                      f"GC {result['gc_us_per_request'] or 0:.1f} µs/request, "
                      f"{result['frozen_objects']:,} objects frozen", flush=True)

    def median(name: str, key: str) -> float:
        values = [r[key] for r in results[name] if r[key] is not None]
        return statistics.median(values) if values else float("nan")

    base = median("uninstrumented", "rps")
    print(f"\n{args.path}, medians of {args.rounds} interleaved rounds of {args.seconds:g} s:")
    print("| server | req/s | vs uninstrumented | collections per 1,000 requests (generation 0, 1, 2) "
          "| full collection ms | GC µs/request |\n|---|---|---|---|---|---|")
    for name in results:
        per_thousand = ", ".join(f"{median(name, f'gen{generation}_per_1000'):.{2 if generation else 0}f}"
                                 for generation in range(3))
        print(f"| {name} | {median(name, 'rps'):,.0f} | {median(name, 'rps') / base:.2f}x | {per_thousand} | "
              f"{median(name, 'full_ms'):.1f} | {median(name, 'gc_us_per_request'):.1f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""`make bench`: otel-monitor's overhead, side by side with vanilla OpenTelemetry.

    python -m benchmarks.run [--duration 10] [--repetitions 3] [--quick]

Runs the example app uninstrumented, under vanilla `opentelemetry-instrument`
(opentelemetry-distro, in its own venv) and under otel-monitor (every trace
kept; production profile), interleaved, on loopback; the same side by side
on an endpoint whose every request fails (:mod:`benchmarks.failing`: also
instructions per failed request, by valgrind); then startup time,
per-item pipeline costs, memory with the collector down, and metric
cardinality under 100,000 distinct paths, and an error storm
(:mod:`benchmarks.error_storm`). Prints a markdown report and writes
it, with the raw numbers as JSON, to benchmarks/results/.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from benchmarks import error_storm, failing
from benchmarks.census import Census, take_census
from benchmarks.configurations import (
    Configuration,
    build_configurations,
    ensure_vanilla_venv,
    sqlalchemy_instrumentation_conflict,
    startup_floors,
)
from benchmarks.footprint import (
    StartupResult,
    compile_bytecode,
    measure_cardinality,
    measure_item_costs,
    measure_memory,
    measure_startups,
)
from benchmarks.processes import ROOT, SinkProcess
from benchmarks.profiling import Profile, profile_under_load
from benchmarks.report import README_END, README_START, Row, machine_facts, render, update_readme
from benchmarks.throughput import Endpoint, LoadSettings, ThroughputResults, measure_throughput

DEFAULT_APP = "examples.shop.app:app"
STANDIN_APP = "benchmarks.standin_app:app"
RESULTS = ROOT / "benchmarks" / "results"
README = ROOT / "benchmarks" / "README.md"
T = TypeVar("T")


def choose_app(requested: str) -> tuple[str, str | None]:
    """The app to serve, and a note when the default shop is absent and the stand-in serves."""
    module = requested.split(":", 1)[0]
    try:
        found = importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:
        found = False
    if found or requested != DEFAULT_APP:
        return requested, None
    return STANDIN_APP, f"{DEFAULT_APP} not found: measured the stand-in {STANDIN_APP} (same endpoints)"


def cpu_plan() -> tuple[int | None, int | None]:
    """Server on one core, wrk and the sink on another, when two are ours."""
    cores = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    if len(cores) >= 2:
        return cores[0], cores[1]
    return None, None


def attempt(notes: list[str], label: str, measure: Callable[..., T], *args: Any) -> T | None:
    """Run one measurement; a failure becomes a note instead of ending the benchmark."""
    try:
        return measure(*args)
    except (RuntimeError, OSError, subprocess.SubprocessError) as exc:
        notes.append(f"{label} failed: {str(exc).splitlines()[0][:300] if str(exc) else type(exc).__name__}")
        print(f"  {label} failed: {exc}", flush=True)
        return None


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.run", description=__doc__.splitlines()[0])
    parser.add_argument("--app", default=DEFAULT_APP, help="module:attribute of the ASGI app")
    parser.add_argument("--trivial-path", default="/ping")
    parser.add_argument("--database-path", default="/api/products/1")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds of load per case")
    parser.add_argument("--warmup", type=float, default=2.0, help="seconds of load before each case")
    parser.add_argument("--repetitions", type=int, default=3, help="interleaved rounds; medians are reported")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument(
        "--census-requests",
        type=int,
        default=20,
        help="requests per endpoint whose exported spans are counted (0 skips)",
    )
    parser.add_argument("--startup-runs", type=int, default=10)
    parser.add_argument("--span-count", type=int, default=20000, help="items per per-item cost measurement")
    parser.add_argument("--memory-seconds", type=float, default=60.0, help="0 skips the memory run")
    parser.add_argument("--paths", type=int, default=100_000, help="distinct paths for the cardinality run; 0 skips")
    parser.add_argument("--paths-seconds", type=float, default=300.0, help="upper bound on the cardinality run")
    parser.add_argument("--cardinality-limit", type=int, default=2000)
    parser.add_argument(
        "--profile-seconds",
        type=float,
        default=0.0,
        help="py-spy the otel-monitor-full server this long per endpoint (0: no profile)",
    )
    parser.add_argument("--no-vanilla", action="store_true", help="skip the vanilla venv and configuration")
    parser.add_argument("--no-failing", action="store_true", help="skip the failing endpoint")
    parser.add_argument(
        "--no-failing-instructions",
        action="store_true",
        help="skip the valgrind count of instructions per failed request (minutes per configuration)",
    )
    parser.add_argument(
        "--storm-seconds",
        type=int,
        default=60,
        help="seconds of the error storm (100%% failures, otel-monitor production profile); 0 skips",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="a short development run: 2 s cases, 1 repetition, short memory and 5,000 paths",
    )
    parser.add_argument("--output", type=Path, default=RESULTS)
    parser.add_argument(
        "--update-readme",
        action="store_true",
        help=f"also replace the README block between {README_START} and {README_END}",
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.duration, args.warmup, args.repetitions = 2.0, 0.5, 1
        args.startup_runs, args.span_count = 3, 3000
        args.memory_seconds, args.paths, args.paths_seconds = 10.0, 5000, 30.0
        args.storm_seconds = min(args.storm_seconds, 10)
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    facts = machine_facts()
    print(
        f"machine: {facts['cores']} cores, {facts['cpu']}, Python {facts['python']}, "
        f"load average {facts['load_average']:.2f}",
        flush=True,
    )
    app, app_note = choose_app(args.app)
    notes = [app_note] if app_note else []
    server_cpu, load_cpu = cpu_plan()
    if server_cpu is None:
        notes.append("fewer than two cores available: nothing pinned")
    monitor_bin = Path(sys.executable).parent
    vanilla_bin = None if args.no_vanilla else ensure_vanilla_venv()
    if vanilla_bin is not None:
        conflict = sqlalchemy_instrumentation_conflict(vanilla_bin)
        if conflict:
            notes.append(f"vanilla emits no database spans: the launcher skips SQLAlchemy ({conflict})")
        notes.append(
            "vanilla exports uncompressed (its default), and its log bridge leaves the root logger at "
            "WARNING, so it exports none of the app's INFO records; otel-monitor gzips by default"
        )
    monitor_conflict = sqlalchemy_instrumentation_conflict(monitor_bin)
    if monitor_conflict:
        notes.append(
            "otel-monitor's venv has the same conflict; whether its distro still traces SQLAlchemy "
            "shows in the spans per request"
        )
    configurations = build_configurations(monitor_bin, vanilla_bin)
    by_key: dict[str, Configuration] = {c.key: c for c in configurations}
    endpoints = [Endpoint("trivial", args.trivial_path), Endpoint("database", args.database_path)]
    load = LoadSettings(args.duration, args.warmup, args.connections, args.repetitions, server_cpu, load_cpu)
    args.output.mkdir(parents=True, exist_ok=True)
    log_dir = args.output / "logs"

    census: list[Census] = []
    if args.census_requests > 0:
        print("census: spans exported per request", flush=True)
        for configuration in configurations:
            if configuration.instrumented:
                census += (
                    attempt(
                        notes,
                        f"census of {configuration.key}",
                        take_census,
                        configuration,
                        app,
                        {e.name: e.path for e in endpoints},
                        args.census_requests,
                        log_dir,
                    )
                    or []
                )
    spans = {(c.configuration, c.endpoint): c.spans_per_request for c in census}
    startup: list[StartupResult] = []
    costs: dict[str, dict[str, Any]] = {}
    with SinkProcess(sys.executable, cpu=load_cpu) as sink:
        print(
            f"throughput: {len(configurations)} configurations x {len(endpoints)} endpoints x "
            f"{args.repetitions} repetitions of {args.duration:g} s",
            flush=True,
        )
        results: ThroughputResults = measure_throughput(configurations, endpoints, app, load, sink, log_dir)
        notes += [f"{key} did not start: {message}" for key, message in results.failures.items()]
        failing_results = None
        if not args.no_failing:
            failing_results = attempt(
                notes,
                "failing endpoint",
                failing.measure_failing,
                configurations,
                load,
                sink,
                log_dir,
                not args.no_failing_instructions,
            )
        print("startup and per-item costs", flush=True)
        starting = [by_key[key] for key in ("uninstrumented", "vanilla", "monitor-full") if key in by_key]
        starting += startup_floors(monitor_bin)
        if starting and args.startup_runs > 0:
            compile_bytecode(sys.executable, ROOT / "otel_monitor")
            startup = (
                attempt(notes, "startup", measure_startups, starting, sink.endpoint, args.startup_runs, server_cpu)
                or []
            )
        for configuration in configurations:
            if configuration.instrumented and args.span_count > 0:
                cost = attempt(
                    notes,
                    f"per-item costs of {configuration.key}",
                    measure_item_costs,
                    configuration,
                    sink.endpoint,
                    args.span_count,
                    server_cpu,
                )
                if cost is not None:
                    costs[configuration.key] = cost
        sink_totals = sink.stats()
        profiles: list[Profile] = []
        if args.profile_seconds > 0:
            for endpoint in endpoints:
                print(f"profiling monitor-full on {endpoint.path}", flush=True)
                profile = attempt(
                    notes,
                    f"profile of {endpoint.path}",
                    profile_under_load,
                    by_key["monitor-full"],
                    app,
                    endpoint.path,
                    args.profile_seconds,
                    args.connections,
                    server_cpu,
                    load_cpu,
                    sink.endpoint,
                    args.output,
                )
                if profile is not None:
                    profiles.append(profile)
    print(f"sink received: {json.dumps(sink_totals)}", flush=True)

    memory = None
    if args.memory_seconds > 0:
        print(f"memory: {args.memory_seconds:g} s of load with the collector unreachable", flush=True)
        memory = attempt(
            notes,
            "memory run",
            measure_memory,
            by_key["monitor-full"],
            app,
            args.trivial_path,
            args.memory_seconds,
            args.connections,
            server_cpu,
            load_cpu,
            log_dir,
        )
    storms: list[error_storm.StormResult] = []
    if args.storm_seconds > 0 and "monitor-production" in by_key:
        print(f"error storm: {args.storm_seconds} s of failures", flush=True)
        storms = (
            attempt(
                notes,
                "error storm",
                error_storm.run_storms,
                [by_key["monitor-production"]],
                args.storm_seconds,
                failing.CONNECTIONS,
                server_cpu,
                load_cpu,
                log_dir,
            )
            or []
        )
    cardinality = None
    if args.paths > 0:
        print(f"cardinality: {args.paths:,} distinct paths (at most {args.paths_seconds:g} s)", flush=True)
        cardinality = attempt(
            notes,
            "cardinality run",
            measure_cardinality,
            by_key["monitor-full"],
            app,
            args.trivial_path,
            args.paths,
            args.paths_seconds,
            args.cardinality_limit,
            sys.executable,
            server_cpu,
            load_cpu,
            log_dir,
        )

    rows = [
        Row(
            key,
            endpoint,
            case.rps,
            *case.rps_spread,
            case.p99,
            case.failed_requests,
            spans.get((key, endpoint)),
            dict(zip(case.repetitions, (run.rps for run in case.runs), strict=False)),
        )
        for (key, endpoint), case in results.cases.items()
    ]
    rows.sort(
        key=lambda row: (
            [e.name for e in endpoints].index(row.endpoint),
            [c.key for c in configurations].index(row.configuration),
        )
    )
    markdown = render(
        facts, app, notes, rows, results.telemetry_bytes, census, startup, costs, memory, cardinality, profiles, args
    )
    if failing_results is not None:
        markdown += "\n\n" + failing.render(failing_results) + "\n"
    if storms:
        markdown += "\n" + error_storm.render(storms, args.storm_seconds) + "\n"
    print()
    print(markdown)
    (args.output / "latest.md").write_text(markdown)
    raw = {
        "machine": facts,
        "app": app,
        "notes": notes,
        "throughput": results.as_dict(),
        "census": [c.as_dict() for c in census],
        "startup": [s.as_dict() for s in startup],
        "item_costs": costs,
        "sink": sink_totals,
        "memory": memory.as_dict() if memory else None,
        "cardinality": cardinality.as_dict() if cardinality else None,
        "profiles": [p.as_dict() for p in profiles],
        "failing": failing_results.as_dict() if failing_results else None,
        "error_storm": [s.as_dict() for s in storms],
    }
    (args.output / "latest.json").write_text(json.dumps(raw, indent=2))
    print(f"written: {args.output / 'latest.md'}, {args.output / 'latest.json'}")
    if args.update_readme:
        update_readme(markdown, README)
        print(f"updated the results block of {README}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

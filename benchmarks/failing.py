"""`make bench`'s failing endpoint: what each configuration costs a request that fails.

``benchmarks.request_path_app:app`` ``/fail`` raises an unhandled
``TimeoutError`` on every request. Side by side, interleaved as the other
endpoints are: throughput and p99 under wrk (16 connections, loopback),
then instructions per failed request counted by valgrind
(:mod:`benchmarks.instructions` ``--failing``: telemetry exported to a
local sink at exit, so what an error costs on its way out is counted).
The targets: otel-monitor (production profile) serves at least 1.2x
vanilla's throughput, with no more instructions per failed request.
"""

from __future__ import annotations

import dataclasses
import os
import re
import statistics
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchmarks.configurations import Configuration
from benchmarks.loadgen import run_wrk
from benchmarks.processes import ROOT, AppServer, SinkProcess, clean_environment, free_port
from benchmarks.throughput import LoadSettings

APP = "benchmarks.request_path_app:app"
PATH = "/fail"
CONNECTIONS = 16
MONITOR = "monitor-production"
_COUNT_LINE = re.compile(r"^\S+\s+(?P<name>[\w-]+)\s+(?P<n>[\d,]+) instructions per request", re.MULTILINE)


@dataclass
class ElsewhereConfiguration(Configuration):
    """A configuration whose server runs in another checkout's directory (``opentelemetry-instrument`` puts the
    working directory first on the path, so its ``otel_monitor`` is the one imported)."""

    directory: Path = ROOT

    def server_command(self, app: str, port: int) -> list[str]:
        return ["env", "-C", str(self.directory), *super().server_command(app, port)]


@dataclass
class FailingRun:
    rps: float
    p99: float
    requests: int
    cpu_seconds: float  # the server's user + system CPU over the measured load

    @property
    def per_cpu_second(self) -> float:
        return self.requests / self.cpu_seconds if self.cpu_seconds > 0 else 0.0


@dataclass
class FailingResults:
    runs: dict[str, list[FailingRun]] = field(default_factory=dict)
    instructions: dict[str, float] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def median(self, key: str, what: str) -> float:
        return statistics.median(getattr(run, what) for run in self.runs[key])

    def as_dict(self) -> dict[str, Any]:
        return {
            "runs": {
                key: [dataclasses.asdict(run) | {"per_cpu_second": run.per_cpu_second} for run in runs]
                for key, runs in self.runs.items()
            },
            "instructions": self.instructions,
            "notes": self.notes,
        }


def count_instructions(names: list[str], few: int, many: int, timeout: float) -> tuple[dict[str, float], str]:
    """Instructions per failed request of each named configuration (valgrind; minutes per configuration)."""
    command = [
        sys.executable,
        "-m",
        "benchmarks.instructions",
        "--app",
        APP,
        "--path",
        PATH,
        "--failing",
        "--no-floors",
        "--few",
        str(few),
        "--many",
        str(many),
        "--timeout",
        str(timeout),
        "--only",
        ",".join(names),
    ]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=timeout * 2 * (len(names) + 1))
    counts = {m["name"]: float(m["n"].replace(",", "")) for m in _COUNT_LINE.finditer(done.stdout)}
    problem = (
        "" if done.returncode == 0 else (f"benchmarks.instructions failed ({done.returncode}): {done.stderr[-300:]}")
    )
    return counts, problem


def _cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime, stime


def measure_failing(
    configurations: list[Configuration],
    load: LoadSettings,
    sink: SinkProcess,
    log_dir: Path,
    instructions: bool,
    few: int = 40,
    many: int = 160,
    timeout: float = 1800,
) -> FailingResults:
    """Interleaved rounds (A B C A B C ...) on /fail: req/s, p99, and requests per CPU-second of the server.

    Requests per CPU-second is what the server would serve with its core to itself: on a shared machine
    other processes take a varying part of that core, and req/s moves with it.
    """
    print(f"failing endpoint: {APP} {PATH}, {CONNECTIONS} connections", flush=True)
    results = FailingResults()
    for repetition in range(1, load.repetitions + 1):
        for configuration in configurations:
            port = free_port()
            env = clean_environment(configuration.environment(sink.endpoint))
            server = AppServer(
                configuration.server_command(APP, port),
                env,
                port,
                load.server_cpu,
                log_dir / f"failing-{configuration.key}-{repetition}.log",
            )
            try:
                server.start(ready_path="/ok")
            except RuntimeError as exc:
                results.notes.append(f"{configuration.key} did not start: {str(exc).splitlines()[0][:200]}")
                continue
            try:
                if load.warmup > 0:
                    run_wrk(server.base_url + PATH, load.warmup, CONNECTIONS, 1, load.load_cpu)
                cpu = _cpu_seconds(server.pid)
                outcome = run_wrk(server.base_url + PATH, load.duration, CONNECTIONS, 1, load.load_cpu)
                run = FailingRun(outcome.rps, outcome.p99, outcome.requests, _cpu_seconds(server.pid) - cpu)
            finally:
                server.stop()
            results.runs.setdefault(configuration.key, []).append(run)
            print(
                f"  rep {repetition} {configuration.key:<26} {run.rps:7.0f} req/s  p99 {run.p99 * 1000:7.1f} ms  "
                f"{run.per_cpu_second:7.0f} req per CPU-second",
                flush=True,
            )
    if instructions:
        names = [c.key for c in configurations if c.key in ("uninstrumented", "vanilla", MONITOR)]
        print(f"failing endpoint: instructions per failed request (valgrind) of {', '.join(names)}", flush=True)
        results.instructions, problem = count_instructions(names, few, many, timeout)
        if problem:
            results.notes.append(problem)
    return results


def render(results: FailingResults) -> str:
    keys = list(results.runs)
    lines = [
        f"## Failing endpoint (`{APP}` {PATH}: an unhandled TimeoutError, {CONNECTIONS} connections)",
        "",
        "Medians of the interleaved rounds; req per CPU-second: requests over the server's CPU time.",
        "",
        "| configuration | req/s | x uninstrumented | x vanilla | p99 ms | req per CPU-second | x vanilla "
        "| instructions per failed request |",
        "|---|---|---|---|---|---|---|---|",
    ]

    def ratio(key: str, other: str, what: str) -> str:
        return f"{results.median(key, what) / results.median(other, what):.2f}x" if other in results.runs else "-"

    for key in keys:
        count = results.instructions.get(key)
        lines.append(
            f"| {key} | {results.median(key, 'rps'):,.0f} | {ratio(key, 'uninstrumented', 'rps')} "
            f"| {ratio(key, 'vanilla', 'rps')} | {results.median(key, 'p99') * 1000:.1f} "
            f"| {results.median(key, 'per_cpu_second'):,.0f} | {ratio(key, 'vanilla', 'per_cpu_second')} "
            f"| {f'{count / 1e6:.2f} M' if count else '-'} |"
        )
    if MONITOR in results.runs and "vanilla" in results.runs:
        rps = results.median(MONITOR, "rps") / results.median("vanilla", "rps")
        per_cpu = results.median(MONITOR, "per_cpu_second") / results.median("vanilla", "per_cpu_second")
        lines += [
            "",
            f"Target: {MONITOR} throughput at least 1.2x vanilla: {rps:.2f}x "
            f"({per_cpu:.2f}x per CPU-second), {'met' if rps >= 1.2 else 'NOT met'}.",
        ]
    if MONITOR in results.instructions and "vanilla" in results.instructions:
        ours, theirs = results.instructions[MONITOR], results.instructions["vanilla"]
        lines.append(
            f"Target: instructions per failed request at or below vanilla's: {ours / 1e6:.2f} M against "
            f"{theirs / 1e6:.2f} M, {'met' if ours <= theirs else 'NOT met'}."
        )
    lines += [f"Note: {note}" for note in results.notes]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """The failing endpoint alone: ``python -m benchmarks.failing [--duration 10] [--before DIR]``."""
    import argparse

    from benchmarks.configurations import build_configurations, ensure_vanilla_venv
    from benchmarks.run import cpu_plan

    parser = argparse.ArgumentParser(prog="python -m benchmarks.failing", description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=int, default=10, help="seconds of load per case")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--repetitions", type=int, default=3)
    parser.add_argument("--instructions", action="store_true", help="also count instructions (valgrind; slow)")
    parser.add_argument(
        "--before",
        type=Path,
        default=None,
        metavar="DIR",
        help="another checkout of otel-monitor (e.g. a git archive of an older commit) whose "
        "otel_monitor also serves, as monitor-production-before, in the same rounds",
    )
    parser.add_argument("--output", type=Path, default=ROOT / "benchmarks" / "results")
    args = parser.parse_args(argv)
    if not 1 <= args.duration <= 600 or not 0 <= args.warmup <= 60 or not 1 <= args.repetitions <= 20:
        parser.error("--duration must be 1..600, --warmup 0..60 and --repetitions 1..20")
    if args.before is not None and not (args.before / "otel_monitor" / "__init__.py").exists():
        parser.error(f"--before {args.before}: no otel_monitor package there")
    configurations = [
        c for c in build_configurations(Path(sys.executable).parent, ensure_vanilla_venv()) if c.key != "monitor-full"
    ]
    if args.before is not None:
        monitor = next(c for c in configurations if c.key == MONITOR)
        configurations.append(
            ElsewhereConfiguration(
                f"{MONITOR}-before",
                f"{monitor.label}, from {args.before}",
                monitor.bin_dir,
                True,
                dict(monitor.env),
                args.before.resolve(),
            )
        )
    server_cpu, load_cpu = cpu_plan()
    load = LoadSettings(args.duration, args.warmup, CONNECTIONS, args.repetitions, server_cpu, load_cpu)
    with SinkProcess(sys.executable, cpu=load_cpu) as sink:
        results = measure_failing(configurations, load, sink, args.output / "logs", args.instructions)
    print(render(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())

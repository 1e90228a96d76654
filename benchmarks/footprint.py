"""Startup time, per-item costs, memory under an outage, metric cardinality."""

from __future__ import annotations

import json
import statistics
import subprocess
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from benchmarks.configurations import Configuration
from benchmarks.loadgen import WrkResult, run_distinct_paths, run_wrk
from benchmarks.processes import ROOT, AppServer, SinkProcess, clean_environment, free_port, pinned, rss_kib


@dataclass
class StartupResult:
    configuration: str
    command: str
    seconds: list[float]

    @property
    def median(self) -> float:
        return statistics.median(self.seconds)

    @property
    def best(self) -> float:
        return min(self.seconds)

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "median": self.median, "best": self.best}


def _startup_once(command: list[str], env: dict[str, str], cpu: int | None) -> float:
    start = time.perf_counter()
    done = subprocess.run(pinned(command, cpu), env=env, cwd=ROOT, capture_output=True, timeout=120)
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed: {done.stderr.decode(errors='replace')[-500:]}")
    return elapsed


def compile_bytecode(python: str, package_dir: Path) -> None:
    """Write the package's bytecode, as installing its wheel does (pip compiles at install).

    The benchmark runs otel-monitor from the working tree; with PYTHONDONTWRITEBYTECODE set
    in the environment its modules would be compiled on every start while vanilla's, installed
    by pip, are not.
    """
    subprocess.run([python, "-m", "compileall", "-q", str(package_dir)], check=True, capture_output=True, timeout=300)


def measure_startups(
    configurations: list[Configuration], endpoint: str, runs: int, cpu: int | None
) -> list[StartupResult]:
    """Wall time of `[opentelemetry-instrument] python -c pass`, `runs` times each, interleaved (A B C A B C ...)."""
    commands = [(c, c.startup_command(), clean_environment(c.environment(endpoint))) for c in configurations]
    for _, command, env in commands:
        _startup_once(command, env, cpu)  # warm the page cache, not counted
    seconds: dict[str, list[float]] = {c.key: [] for c in configurations}
    for _ in range(runs):
        for configuration, command, env in commands:
            seconds[configuration.key].append(_startup_once(command, env, cpu))
    return [
        StartupResult(c.key, " ".join(Path(part).name for part in command), seconds[c.key])
        for c, command, _ in commands
    ]


def measure_item_costs(configuration: Configuration, endpoint: str, count: int, cpu: int | None) -> dict[str, Any]:
    """Run ``benchmarks.micro span-cost`` under the configuration's launcher; its JSON line."""
    python = str(configuration.bin_dir / "python")
    command = [python, "-m", "benchmarks.micro", "span-cost", "--count", str(count)]
    if configuration.instrumented:
        command = [str(configuration.bin_dir / "opentelemetry-instrument"), *command]
    env = clean_environment(configuration.environment(endpoint))
    done = subprocess.run(pinned(command, cpu), env=env, cwd=ROOT, capture_output=True, text=True, timeout=300)
    for line in reversed(done.stdout.splitlines()):
        if line.startswith("{"):
            return dict(json.loads(line))
    raise RuntimeError(f"span_cost printed no result ({done.returncode}): {done.stderr[-500:]}")


@dataclass
class MemoryResult:
    """RSS samples (KiB), one per second, of a server loaded with its collector down."""

    samples_kib: list[int]
    load: WrkResult | None = None
    endpoint: str = ""

    @property
    def plateaued(self) -> bool:
        """True when the last quarter grew less than 5% (or 4 MiB) over the second quarter's peak."""
        n = len(self.samples_kib)
        if n < 8:
            return False
        second_quarter = max(self.samples_kib[n // 4 : n // 2])
        last_quarter = max(self.samples_kib[3 * n // 4 :])
        return last_quarter - second_quarter <= max(0.05 * second_quarter, 4096)

    def curve(self, points: int = 12) -> str:
        """A compact 't=Ns: MiB' list, evenly spaced, always including the last sample."""
        if not self.samples_kib:
            return "no samples"
        step = max(1, len(self.samples_kib) // points)
        indexes = list(range(0, len(self.samples_kib), step))
        if indexes[-1] != len(self.samples_kib) - 1:
            indexes.append(len(self.samples_kib) - 1)
        return ", ".join(f"{i}s {self.samples_kib[i] / 1024:.0f}" for i in indexes) + " (MiB)"

    def as_dict(self) -> dict[str, Any]:
        return {
            "samples_kib": self.samples_kib,
            "plateaued": self.plateaued,
            "endpoint": self.endpoint,
            "load": self.load.as_dict() if self.load else None,
        }


def measure_memory(
    configuration: Configuration,
    app: str,
    path: str,
    seconds: float,
    connections: int,
    server_cpu: int | None,
    load_cpu: int | None,
    log_dir: Path,
) -> MemoryResult:
    """Load the server for `seconds` with OTLP pointed at a closed port; sample RSS each second."""
    closed_endpoint = f"http://127.0.0.1:{free_port()}"
    port = free_port()
    server = AppServer(
        configuration.server_command(app, port),
        clean_environment(configuration.environment(closed_endpoint)),
        port,
        server_cpu,
        log_dir / f"memory-{configuration.key}.log",
    )
    result = MemoryResult(samples_kib=[], endpoint=path)
    with server.start(ready_path=path):
        stop = threading.Event()

        def sample() -> None:
            while not stop.is_set():
                kib = rss_kib(server.pid)
                if kib is not None:
                    result.samples_kib.append(kib)
                stop.wait(1.0)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        try:
            result.load = run_wrk(server.base_url + path, seconds, connections, 1, load_cpu)
        finally:
            stop.set()
            sampler.join()
    return result


@dataclass
class CardinalityResult:
    paths_sent: int
    series: dict[str, int] = field(default_factory=dict)
    limit: int = 0

    @property
    def largest(self) -> tuple[str, int]:
        if not self.series:
            return ("", 0)
        return max(self.series.items(), key=lambda item: item[1])

    @property
    def bounded(self) -> bool:
        """No metric gained anywhere near one series per distinct path."""
        return bool(self.series) and self.largest[1] <= self.limit + 1

    def as_dict(self) -> dict[str, Any]:
        return {"paths_sent": self.paths_sent, "series": self.series, "limit": self.limit, "bounded": self.bounded}


def measure_cardinality(
    configuration: Configuration,
    app: str,
    ready_path: str,
    paths: int,
    max_seconds: float,
    limit: int,
    python: str,
    server_cpu: int | None,
    load_cpu: int | None,
    log_dir: Path,
) -> CardinalityResult:
    """`paths` requests to never-seen paths (404s), then count the series the receiver got."""
    with SinkProcess(python, count_series=True, cpu=load_cpu) as sink:
        port = free_port()
        server = AppServer(
            configuration.server_command(app, port),
            clean_environment(configuration.environment(sink.endpoint)),
            port,
            server_cpu,
            log_dir / f"cardinality-{configuration.key}.log",
        )
        with server.start(ready_path=ready_path):
            load = run_distinct_paths(server.base_url, "/bench-unknown/", paths, max_seconds, cpu=load_cpu)
        # Stopped: the SDK flushed its last metric export at exit.
        stats = sink.stats()
    return CardinalityResult(paths_sent=min(load.requests, paths), series=stats["series"], limit=limit)

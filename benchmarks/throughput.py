"""Interleaved throughput and latency runs: A B C A B C, medians per case."""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchmarks.configurations import Configuration
from benchmarks.loadgen import WrkResult, run_wrk
from benchmarks.processes import AppServer, SinkProcess, clean_environment, free_port


@dataclass
class Endpoint:
    name: str
    path: str


@dataclass
class LoadSettings:
    duration: float = 10.0
    warmup: float = 2.0
    connections: int = 32
    repetitions: int = 3
    server_cpu: int | None = None
    load_cpu: int | None = None


@dataclass
class CaseResult:
    """Every repetition of one configuration on one endpoint."""

    configuration: str
    endpoint: str
    runs: list[WrkResult] = field(default_factory=list)
    repetitions: list[int] = field(default_factory=list)  # the repetition of each run (a failed start leaves a gap)

    @property
    def rps(self) -> float:
        return statistics.median(run.rps for run in self.runs)

    @property
    def p99(self) -> float:
        return statistics.median(run.p99 for run in self.runs)

    @property
    def rps_spread(self) -> tuple[float, float]:
        return min(run.rps for run in self.runs), max(run.rps for run in self.runs)

    @property
    def failed_requests(self) -> int:
        return sum(run.non_2xx + run.socket_errors for run in self.runs)

    def as_dict(self) -> dict[str, Any]:
        return {
            "configuration": self.configuration,
            "endpoint": self.endpoint,
            "rps_median": self.rps,
            "p99_median_s": self.p99,
            "runs": [run.as_dict() for run in self.runs],
        }


@dataclass
class ThroughputResults:
    cases: dict[tuple[str, str], CaseResult] = field(default_factory=dict)
    telemetry_bytes: dict[str, dict[str, int]] = field(default_factory=dict)
    failures: dict[str, str] = field(default_factory=dict)

    def case(self, configuration: str, endpoint: str) -> CaseResult | None:
        return self.cases.get((configuration, endpoint))

    def as_dict(self) -> dict[str, Any]:
        return {
            "cases": [case.as_dict() for case in self.cases.values()],
            "telemetry_bytes": self.telemetry_bytes,
            "failures": self.failures,
        }


def _add_bytes(total: dict[str, int], before: dict[str, Any], after: dict[str, Any]) -> None:
    for signal_name, count in after["bytes"].items():
        total[signal_name] = total.get(signal_name, 0) + count - before["bytes"].get(signal_name, 0)


def measure_throughput(
    configurations: list[Configuration],
    endpoints: list[Endpoint],
    app: str,
    load: LoadSettings,
    sink: SinkProcess,
    log_dir: Path,
    ready_path: str | None = None,
) -> ThroughputResults:
    """Each repetition starts every configuration's server in turn and loads each endpoint.

    A server is ready once ``ready_path`` (the first endpoint's path by default) answers 200.
    """
    results = ThroughputResults()
    for repetition in range(1, load.repetitions + 1):
        for configuration in configurations:
            port = free_port()
            env = clean_environment(configuration.environment(sink.endpoint))
            server = AppServer(
                configuration.server_command(app, port),
                env,
                port,
                load.server_cpu,
                log_dir / f"{configuration.key}-{repetition}.log",
            )
            before = sink.stats()
            try:
                server.start(ready_path=ready_path or endpoints[0].path)
            except RuntimeError as exc:
                # One broken configuration must not cost the others their numbers.
                results.failures[configuration.key] = str(exc).splitlines()[0][:300]
                print(f"  rep {repetition} {configuration.key}: server did not start, see {server.log_path}")
                continue
            try:
                for endpoint in endpoints:
                    url = server.base_url + endpoint.path
                    if load.warmup > 0:
                        run_wrk(url, load.warmup, load.connections, 1, load.load_cpu)
                    outcome = run_wrk(url, load.duration, load.connections, 1, load.load_cpu)
                    case = results.cases.setdefault(
                        (configuration.key, endpoint.name), CaseResult(configuration.key, endpoint.name)
                    )
                    case.runs.append(outcome)
                    case.repetitions.append(repetition)
                    print(
                        f"  rep {repetition} {configuration.key:<20} {endpoint.name:<9} "
                        f"{outcome.rps:9.0f} req/s  p99 {outcome.p99 * 1000:7.2f} ms"
                        + (f"  ({outcome.non_2xx} non-2xx)" if outcome.non_2xx else ""),
                        flush=True,
                    )
            finally:
                server.stop()
            _add_bytes(results.telemetry_bytes.setdefault(configuration.key, {}), before, sink.stats())
    return results

"""The collector's own cost: spans per second through agent -> gateway, and the memory each holds.

The shipped Kubernetes configs (collector/k8s/otelcol-agent.yaml, otelcol-gateway.yaml) run as
processes on loopback, each collector pinned to a core of its own with ``taskset``: the agent
(memory_limiter, transform/node, transform/redact, load_balancing by trace id) sends to one gateway
(memory_limiter, tail_sampling, file-backed sending queue), which exports what it keeps to a third
collector that only counts it. Senders are Python processes using the OpenTelemetry SDK's
BatchSpanProcessor and OTLP/gRPC exporter, each emitting traces of SPANS_PER_TRACE spans (1 in 100
with an error, so tail sampling keeps those and about 10% of the rest) as fast as they can.

memory_limiter's percentages are of the pod's memory limit; outside a pod they would be of the
host's memory, so they are turned into the same figures in MiB from the shipped DaemonSet and
StatefulSet (limits.memory), and GOMEMLIMIT is set as those manifests set it.

Figures, from the collectors' own counters (otelcol_receiver_accepted_spans) and /proc:
  spans/s        spans each collector accepted per second of the measured window
  core use       CPU seconds per second of that collector (1.0 = its whole core)
  CPU wait       seconds per second its threads were runnable but waited for the core (schedstat):
                 above 0 the core was not its own (senders and other processes share it)
  spans/CPU-s    spans per CPU second: what one core sustains if the collector had it to itself
  RSS, peak RSS  at the end of the window, and the high-water mark (VmHWM)

    .venv/bin/python -m benchmarks.collector_cost [--senders 3] [--seconds 30]

Needs the collector built (``make collector``) and taskset (util-linux).
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.support.otelcol import AGENT, COLLECTOR, GATEWAY, Collector, collector_binary, free_port, local_config  # noqa: E402

SPANS_PER_TRACE = 4
ERROR_EVERY = 100  # one trace in this many ends with an error status
_MEMORY = re.compile(r"^(\d+)(Mi|Gi)$")


@dataclass
class Sample:
    at: float
    accepted: float
    cpu_seconds: float
    waiting_seconds: float


def _pod_memory(manifest: str) -> tuple[int, str]:
    """(limits.memory in MiB, GOMEMLIMIT) of the collector container in a shipped manifest."""
    for document in yaml.safe_load_all((COLLECTOR / "k8s" / manifest).read_text()):
        if document and document.get("kind") in ("DaemonSet", "StatefulSet"):
            container = document["spec"]["template"]["spec"]["containers"][0]
            match = _MEMORY.match(container["resources"]["limits"]["memory"])
            assert match, container["resources"]
            mib = int(match.group(1)) * (1024 if match.group(2) == "Gi" else 1)
            gomemlimit = next(e["value"] for e in container["env"] if e["name"] == "GOMEMLIMIT")
            return mib, gomemlimit
    raise SystemExit(f"no collector container in {manifest}")


def _limit_in_mib(config: dict, pod_mib: int) -> dict:
    """The shipped memory_limiter percentages, as MiB of the pod's limit."""
    limiter = config["processors"]["memory_limiter"]
    limiter["limit_mib"] = pod_mib * limiter.pop("limit_percentage") // 100
    limiter["spike_limit_mib"] = pod_mib * limiter.pop("spike_limit_percentage") // 100
    return limiter


def _sink_config(grpc_port: int, health_port: int, metrics_port: int) -> dict:
    return {
        "extensions": {"health_check": {"endpoint": f"127.0.0.1:{health_port}"}},
        "receivers": {"otlp": {"protocols": {"grpc": {"endpoint": f"127.0.0.1:{grpc_port}"}}}},
        "exporters": {"debug": {"verbosity": "basic", "sampling_initial": 1, "sampling_thereafter": 1000000}},
        "service": {
            "extensions": ["health_check"],
            "pipelines": {"traces": {"receivers": ["otlp"], "exporters": ["debug"]}},
            "telemetry": {
                "metrics": {
                    "readers": [{"pull": {"exporter": {"prometheus": {"host": "127.0.0.1", "port": metrics_port}}}}]
                }
            },
        },
    }


def _metrics_port(config: dict) -> int:
    return int(config["service"]["telemetry"]["metrics"]["readers"][0]["pull"]["exporter"]["prometheus"]["port"])


def _counter(port: int, prefix: str) -> float:
    """Sum of every series of the collector's own metric whose name starts with prefix."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        text = response.read().decode()
    total = 0.0
    for line in text.splitlines():
        if line.startswith(prefix) and not line.startswith("#"):
            total += float(line.rsplit(" ", 1)[1])
    return total


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _waiting_seconds(pid: int) -> float:
    """Time the process's threads spent runnable but waiting for a CPU (schedstat's second field)."""
    total = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            total += int((task / "schedstat").read_text().split()[1])
        except (OSError, IndexError, ValueError):  # a thread that just exited
            continue
    return total / 1e9


def _rss_mib(pid: int) -> tuple[float, float]:
    """(VmRSS, VmHWM) in MiB."""
    status = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines() if ":" in line)
    return int(status["VmRSS"].split()[0]) / 1024, int(status["VmHWM"].split()[0]) / 1024


def _pin(collector: Collector, core: int) -> None:
    assert collector.process is not None
    subprocess.run(
        ["taskset", "-a", "-p", "-c", str(core), str(collector.process.pid)], check=True, capture_output=True
    )


SENDER = """
import sys, time
from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace import Status, StatusCode

endpoint, seconds, index = sys.argv[1], float(sys.argv[2]), int(sys.argv[3])
spans_per_trace, error_every = int(sys.argv[4]), int(sys.argv[5])
provider = TracerProvider(resource=Resource.create({"service.name": f"sender-{index}"}))
provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=endpoint, insecure=True),
                                               max_queue_size=65536, max_export_batch_size=1024,
                                               schedule_delay_millis=200))
tracer = provider.get_tracer("collector_cost")
deadline, traces = time.monotonic() + seconds, 0
while time.monotonic() < deadline and traces < 10_000_000:
    with tracer.start_as_current_span("GET /api/products/{id}", kind=trace.SpanKind.SERVER,
                                      attributes={"http.route": "/api/products/{id}", "user.email": "a@b.example"}) as root:
        for child in range(spans_per_trace - 1):
            with tracer.start_as_current_span(f"SELECT products {child}", attributes={"db.system": "sqlite"}):
                pass
        if traces % error_every == 0:
            root.set_status(Status(StatusCode.ERROR))
    traces += 1
provider.shutdown()
print(traces * spans_per_trace)
"""


def run(senders: int, seconds: float, warmup: float) -> int:
    binary = collector_binary()
    if binary is None:
        raise SystemExit("the collector is not built: run `make collector` (needs Go)")
    if shutil.which("taskset") is None:
        raise SystemExit("taskset not found (util-linux)")
    cores = os.cpu_count() or 1
    work = Path(tempfile.mkdtemp(prefix="collector-cost-"))
    started: list[Collector] = []
    try:
        sink_ports = {name: free_port() for name in ("grpc", "health", "metrics")}
        sink = Collector(
            binary,
            _sink_config(sink_ports["grpc"], sink_ports["health"], sink_ports["metrics"]),
            work,
            "sink",
            sink_ports["health"],
        )
        started.append(sink.start())

        gateway_config, gateway_ports = local_config(GATEWAY, work / "gateway")
        gateway_mib, gateway_gomemlimit = _pod_memory("gateway-statefulset.yaml")
        gateway_limiter = _limit_in_mib(gateway_config, gateway_mib)
        gateway_config["exporters"]["otlp_grpc/jaeger"]["endpoint"] = f"127.0.0.1:{sink_ports['grpc']}"
        gateway = Collector(
            binary,
            gateway_config,
            work,
            "gateway",
            gateway_ports[13133],
            {"POD_IP": "127.0.0.1", "GOMEMLIMIT": gateway_gomemlimit},
        )
        started.append(gateway.start())

        agent_config, agent_ports = local_config(AGENT, work / "agent")
        agent_mib, agent_gomemlimit = _pod_memory("agent-daemonset.yaml")
        agent_limiter = _limit_in_mib(agent_config, agent_mib)
        agent_config["exporters"]["load_balancing"]["resolver"] = {
            "static": {"hostnames": [f"127.0.0.1:{gateway_ports[4317]}"]}
        }
        agent_config["exporters"]["otlp_grpc/gateway"]["endpoint"] = f"127.0.0.1:{gateway_ports[4317]}"
        agent = Collector(
            binary,
            agent_config,
            work,
            "agent",
            agent_ports[13133],
            {"POD_IP": "127.0.0.1", "K8S_NODE_NAME": "node-1", "GOMEMLIMIT": agent_gomemlimit},
        )
        started.append(agent.start())
        _pin(agent, 0)
        _pin(gateway, 1 % cores)

        measured = {"agent": (agent, _metrics_port(agent_config)), "gateway": (gateway, _metrics_port(gateway_config))}
        endpoint = f"http://127.0.0.1:{agent_ports[4317]}"
        env = {**os.environ, "OTEL_SDK_DISABLED": "false"}
        processes = [
            subprocess.Popen(
                [
                    sys.executable,
                    "-c",
                    SENDER,
                    endpoint,
                    str(warmup + seconds),
                    str(i),
                    str(SPANS_PER_TRACE),
                    str(ERROR_EVERY),
                ],
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
                env=env,
                text=True,
            )
            for i in range(senders)
        ]
        time.sleep(warmup)  # senders ramp up and the pipelines fill before the window opens

        def sample() -> dict[str, Sample]:
            now = time.monotonic()
            return {
                name: Sample(
                    now,
                    _counter(port, "otelcol_receiver_accepted_spans"),
                    _cpu_seconds(collector.process.pid),  # type: ignore[union-attr]
                    _waiting_seconds(collector.process.pid),
                )  # type: ignore[union-attr]
                for name, (collector, port) in measured.items()
            }

        first = sample()
        time.sleep(seconds)
        last = sample()
        rss = {name: _rss_mib(collector.process.pid) for name, (collector, _) in measured.items()}  # type: ignore[union-attr]
        produced = sum(int(p.communicate(timeout=120)[0].strip() or 0) for p in processes)
        refused = {name: _counter(port, "otelcol_receiver_refused_spans") for name, (_, port) in measured.items()}
        exported = _counter(sink_ports["metrics"], "otelcol_receiver_accepted_spans")
        # Why anything was refused, in the collector's own words (the first few distinct messages).
        reasons = {
            name: sorted(
                {
                    line.split("\t")[-2] if line.count("\t") >= 2 else line
                    for line in collector.log().splitlines()
                    if "error" in line.lower()
                }
            )[:3]
            for name, (collector, _) in measured.items()
        }
    finally:
        for collector in reversed(started):
            collector.stop()
        shutil.rmtree(work, ignore_errors=True)

    limits = {
        "agent": (agent_limiter, agent_gomemlimit, agent_mib),
        "gateway": (gateway_limiter, gateway_gomemlimit, gateway_mib),
    }
    print(
        f"{senders} Python senders (SDK BatchSpanProcessor, OTLP/gRPC), {SPANS_PER_TRACE} spans a trace, "
        f"{seconds:.0f} s window after {warmup:.0f} s warm-up; {cores} cores, agent on core 0, gateway on "
        f"core {1 % cores}"
    )
    print(
        f"{'collector':<9} {'spans/s':>9} {'core use':>9} {'CPU wait':>9} {'spans/CPU-s':>12} {'RSS MiB':>8} "
        f"{'peak MiB':>9}"
        f"  memory_limiter (pod limit, GOMEMLIMIT)"
    )
    for name in ("agent", "gateway"):
        a, b = first[name], last[name]
        spans, cpu = b.accepted - a.accepted, b.cpu_seconds - a.cpu_seconds
        limiter, gomemlimit, pod_mib = limits[name]
        wait = (b.waiting_seconds - a.waiting_seconds) / (b.at - a.at)
        print(
            f"{name:<9} {spans / (b.at - a.at):>9,.0f} {cpu / (b.at - a.at):>9.2f} {wait:>9.2f} "
            f"{spans / cpu if cpu else 0:>12,.0f} {rss[name][0]:>8.0f} {rss[name][1]:>9.0f}"
            f"  limit {limiter['limit_mib']} MiB, spike {limiter['spike_limit_mib']} MiB "
            f"({pod_mib} MiB, {gomemlimit})"
        )
    print(
        f"spans the senders made: {produced:,}; refused by agent/gateway: {refused['agent']:.0f}/"
        f"{refused['gateway']:.0f}; kept by tail sampling and exported by the end: {exported:,.0f} "
        f"(traces still in the {gateway_config['processors']['tail_sampling']['decision_wait']} decision wait "
        "are not counted)"
    )
    for name, lines in reasons.items():
        for line in lines:
            print(f"{name} log: {line[:300]}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--senders", type=int, default=3, help="sender processes (default 3)")
    parser.add_argument("--seconds", type=float, default=30.0, help="measured window (default 30)")
    parser.add_argument("--warmup", type=float, default=10.0, help="warm-up before the window (default 10)")
    args = parser.parse_args(argv)
    return run(args.senders, args.seconds, args.warmup)


if __name__ == "__main__":
    raise SystemExit(main())

"""Instructions per request, counted by valgrind: a cost figure far steadier than time on a shared machine.

On a shared 2-core machine wall and CPU times of the same run vary by a third;
instruction counts, with the string hash seed fixed, by well under one per
cent (threads that wait for work wake by timing, and valgrind changes timing).  This runs :mod:`benchmarks.inprocess` under
``valgrind --tool=callgrind`` twice per configuration, with ``--few`` and
``--many`` requests, and reports ``(instructions(many) - instructions(few)) /
(many - few)``: the per-request count, with start-up and exit cancelled out::

    python -m benchmarks.instructions --path /api/products/1

Configurations: the app uninstrumented, and under ``opentelemetry-instrument``
with otel-monitor in the production profile and with every trace kept; then
the floors under those two (``--floor`` of :mod:`benchmarks.inprocess`, no
launcher): the same spans, created by the SDK, with nothing processed,
measured or exported; and the instrumentations' hooks alone, with no SDK.
``vanilla`` is ``opentelemetry-distro`` in the venv :mod:`benchmarks.configurations`
builds (counted when that venv exists, or with ``--vanilla``).

``--failing`` counts requests that fail with an unhandled exception
(``benchmarks.request_path_app:app``, ``/fail``): the exception logged as
uvicorn logs it, and every span and log record exported, to a local sink,
in one batch at exit, so that what an error costs on its way out (its
traceback, encoding, sending) is counted too, the same way in each run.
Needs valgrind (Debian: ``apt-get install valgrind``); a run takes minutes.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

from benchmarks.configurations import VANILLA_VENV, ensure_vanilla_venv
from benchmarks.processes import ROOT, SinkProcess

_COLLECTED = re.compile(r"==\d+== Collected : (\d+)")

_MONITOR = {
    "OTEL_PYTHON_DISTRO": "otel_monitor",
    "OTEL_PYTHON_CONFIGURATOR": "otel_monitor",
    "OTEL_SERVICE_NAME": "instructions",
    # Nothing is exported during the run: the export threads would count, and their timing varies.
    "OTEL_TRACES_EXPORTER": "otlp",
    "OTEL_METRICS_EXPORTER": "otlp",
    "OTEL_LOGS_EXPORTER": "otlp",
    "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:9",
    "OTEL_METRIC_EXPORT_INTERVAL": "3600000",
    "OTEL_BSP_SCHEDULE_DELAY": "3600000",
    "OTEL_BSP_MAX_QUEUE_SIZE": "100000",
    "OTEL_BSP_MAX_EXPORT_BATCH_SIZE": "100000",
    "OTEL_MONITOR_SHUTDOWN_TIMEOUT": "1",
}
# Floors: `benchmarks.inprocess --floor`, no launcher; the spans otel-monitor creates and nothing else.
FLOORS = {"floor-production": "production", "floor-full": "full", "floor-no-sdk": "no-sdk"}
_VANILLA = {
    "OTEL_PYTHON_DISTRO": "distro",
    "OTEL_PYTHON_CONFIGURATOR": "configurator",
    "OTEL_PYTHON_LOGGING_AUTO_INSTRUMENTATION_ENABLED": "true",
    # opentelemetry-distro's default protocol is gRPC, whose exporter the vanilla venv does not have.
    "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
    **{k: v for k, v in _MONITOR.items() if not k.startswith(("OTEL_PYTHON_", "OTEL_MONITOR_"))},
}
# --failing: exported at exit in one batch, to a sink that answers; the flush is given time to finish.
_EXPORT_AT_EXIT = {
    "OTEL_BLRP_SCHEDULE_DELAY": "3600000",
    "OTEL_BLRP_MAX_QUEUE_SIZE": "100000",
    "OTEL_BLRP_MAX_EXPORT_BATCH_SIZE": "100000",
    "OTEL_MONITOR_SHUTDOWN_TIMEOUT": "600",
}
CONFIGURATIONS = {
    "uninstrumented": None,
    "vanilla": _VANILLA,
    "monitor-production": {
        **_MONITOR,
        "OTEL_TRACES_SAMPLER": "parentbased_traceidratio",
        "OTEL_TRACES_SAMPLER_ARG": "0.1",
        "OTEL_MONITOR_LOG_LEVEL": "INFO",
    },
    "monitor-full": {**_MONITOR, "OTEL_TRACES_SAMPLER": "parentbased_always_on"},
}


def count(
    environment: dict[str, str] | None,
    app: str,
    path: str,
    requests: int,
    timeout: float,
    floor: str | None = None,
    extra: dict[str, str] | None = None,
    concurrency: int = 1,
    bin_dir: Path | None = None,
    failing: bool = False,
) -> int:
    """Instructions of one whole run (every process and thread) of ``requests`` requests.

    Under ``opentelemetry-instrument`` with ``environment`` unless it is None;
    ``floor`` runs :func:`benchmarks.inprocess.install_floor` instead.
    ``bin_dir`` is the venv to run in (otel-monitor's by default).
    """
    bin_dir = bin_dir or Path(sys.executable).parent
    command = [
        str(bin_dir / "python"),
        "-m",
        "benchmarks.inprocess",
        "--app",
        app,
        "--path",
        path,
        "--requests",
        str(requests),
        "--warmup",
        "50",
        "--concurrency",
        str(concurrency),
    ]
    if floor is not None:
        command += ["--floor", floor]
    if failing:
        command.append("--failing")
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    # Background health checks would add work per second of the (slow, valgrind) run, not per request.
    env["OTEL_MONITOR_HEALTH_INTERVAL"] = "86400"
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    if environment is not None:
        command = [str(bin_dir / "opentelemetry-instrument"), *command]
        env.update(environment)
    env.update(extra or {})
    return callgrind_total(command, env, timeout)


def callgrind_total(command: list[str], env: dict[str, str] | None, timeout: float) -> int:
    """Instructions of ``command`` and every process it starts, counted by valgrind's callgrind.

    With a fixed string hash seed (unless ``env`` names one): with a random one
    the same run's count varies by about 3% (dict and set layouts change with
    it), with a fixed one by about 0.3%.
    """
    env = dict(os.environ if env is None else env)
    env.setdefault("PYTHONHASHSEED", "0")
    done = subprocess.run(
        ["valgrind", "--tool=callgrind", "--trace-children=yes", "--callgrind-out-file=/dev/null", *command],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    totals = [int(n) for n in _COLLECTED.findall(done.stderr)]
    if done.returncode != 0 or not totals:
        raise RuntimeError(f"{' '.join(command)} failed ({done.returncode}): {done.stderr[-800:]}")
    return sum(totals)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--app", default="examples.shop.app:app")
    parser.add_argument("--path", default="/ping")
    parser.add_argument("--few", type=int, default=100)
    parser.add_argument("--many", type=int, default=400)
    parser.add_argument("--timeout", type=float, default=900.0, help="seconds per valgrind run at most")
    parser.add_argument(
        "--disable",
        default="",
        metavar="NAMES",
        help="OTEL_PYTHON_DISABLED_INSTRUMENTATIONS for the instrumented runs, e.g. sqlalchemy",
    )
    parser.add_argument("--no-floors", action="store_true", help="skip the floor configurations")
    parser.add_argument(
        "--concurrency",
        type=int,
        default=1,
        help="requests in flight at a time (a loaded server has many: uvicorn under wrk's 32 connections)",
    )
    parser.add_argument(
        "--env",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="an environment variable for the instrumented runs (repeatable), e.g. OTEL_MONITOR_LEAN_REQUESTS=false",
    )
    parser.add_argument(
        "--failing",
        action="store_true",
        help="every request fails (e.g. --app benchmarks.request_path_app:app --path /fail); "
        "telemetry is exported to a local sink at exit and counted",
    )
    parser.add_argument(
        "--vanilla",
        action="store_true",
        help="build the vanilla venv if it is missing (otherwise vanilla runs only when it exists)",
    )
    parser.add_argument(
        "--only",
        default="",
        metavar="NAMES",
        help="comma-separated configurations to count (default: all), e.g. uninstrumented,monitor-production",
    )
    args = parser.parse_args(argv)
    if not 0 < args.few < args.many <= 100_000:
        parser.error("need 0 < --few < --many <= 100000")
    given = {}
    for item in args.env:
        key, equals, value = item.partition("=")
        if not equals or not key.strip():
            parser.error(f"--env {item!r}: expected KEY=VALUE")
        given[key.strip()] = value
    if shutil.which("valgrind") is None:
        parser.error("valgrind is not installed (Debian: apt-get install valgrind)")
    vanilla_bin = ensure_vanilla_venv() if args.vanilla else VANILLA_VENV / "bin"
    runs: list[tuple[str, dict[str, str] | None, str | None]] = [
        (name, environment, None)
        for name, environment in CONFIGURATIONS.items()
        if name != "vanilla" or (vanilla_bin / "opentelemetry-instrument").exists()
    ]
    if not args.no_floors:
        runs += [(name, None, floor) for name, floor in FLOORS.items()]
    if args.only:
        wanted = {name.strip() for name in args.only.split(",")} | {"uninstrumented"}
        unknown = wanted - {name for name, _, _ in runs}
        if unknown:
            parser.error(
                f"--only: unknown configuration(s) {', '.join(sorted(unknown))} "
                f"(known: {', '.join(name for name, _, _ in runs)})"
            )
        runs = [run for run in runs if run[0] in wanted]
    per_request: dict[str, float] = {}
    sink = SinkProcess(sys.executable).start() if args.failing else None
    try:
        for name, environment, floor in runs:
            instrumented = environment is not None or floor is not None
            extra = {"OTEL_PYTHON_DISABLED_INSTRUMENTATIONS": args.disable} if instrumented and args.disable else {}
            if sink is not None and environment is not None:
                extra.update({**_EXPORT_AT_EXIT, "OTEL_EXPORTER_OTLP_ENDPOINT": sink.endpoint})
            if instrumented:
                extra.update(given)
            venv = vanilla_bin if name == "vanilla" else None
            few, many = (
                count(
                    environment,
                    args.app,
                    args.path,
                    n,
                    args.timeout,
                    floor,
                    extra,
                    args.concurrency,
                    venv,
                    args.failing,
                )
                for n in (args.few, args.many)
            )
            per_request[name] = (many - few) / (args.many - args.few)
            report(args.path, name, per_request)
    finally:
        if sink is not None:
            sink.stop()
    return 0


def report(path: str, name: str, per_request: dict[str, float]) -> None:
    """One line: the configuration's instructions per request, and what it adds to the uninstrumented app's."""
    base = per_request["uninstrumented"]
    added = f"  (+{per_request[name] - base:,.0f}, {per_request[name] / base:.2f}x)" if name != "uninstrumented" else ""
    print(f"{path}  {name:20s} {per_request[name]:12,.0f} instructions per request{added}", flush=True)


if __name__ == "__main__":
    raise SystemExit(main())

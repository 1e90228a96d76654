"""Smoke tests of the benchmark harness: its parsing, its tables, a one-second run."""

from __future__ import annotations

import json
import shutil
import sys
import urllib.request
from pathlib import Path

import pytest

from benchmarks.footprint import CardinalityResult, MemoryResult
from benchmarks.loadgen import WrkError, parse_duration, parse_wrk_output, run_distinct_paths, run_wrk
from benchmarks.processes import ROOT, AppServer, SinkProcess, clean_environment, free_port
from benchmarks.profiling import summarize_collapsed
from benchmarks.report import Row, target_lines, throughput_table

WRK_OUTPUT = """\
Running 10s test @ http://127.0.0.1:8000/ping
  1 threads and 32 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     4.15ms    1.02ms  31.87ms   91.20%
    Req/Sec     7.77k   412.33     8.21k    88.00%
  Latency Distribution
     50%    3.98ms
     75%    4.21ms
     90%    4.77ms
     99%    8.12ms
  77359 requests in 10.01s, 10.48MB read
  Socket errors: connect 0, read 2, write 0, timeout 1
  Non-2xx or 3xx responses: 5
Requests/sec:   7728.35
Transfer/sec:      1.05MB
"""

needs_wrk = pytest.mark.skipif(shutil.which("wrk") is None, reason="wrk is not installed: apt-get install wrk")


def test_wrk_report_is_read_into_seconds_and_counts():
    """The --latency report gives throughput, percentiles in seconds and failure counts."""
    result = parse_wrk_output(WRK_OUTPUT)
    assert result.rps == 7728.35
    assert result.requests == 77359
    assert result.seconds == pytest.approx(10.01)
    assert result.p50 == pytest.approx(0.00398)
    assert result.p99 == pytest.approx(0.00812)
    assert result.latency_avg == pytest.approx(0.00415)
    assert result.non_2xx == 5
    assert result.socket_errors == 3


def test_wrk_durations_in_every_unit():
    """wrk's us, ms, s and m suffixes all become seconds."""
    assert parse_duration("250.00us") == pytest.approx(0.00025)
    assert parse_duration("1.50s") == pytest.approx(1.5)
    assert parse_duration("2.00m") == pytest.approx(120)


def test_wrk_report_without_latency_distribution_is_rejected():
    """A report lacking --latency's percentiles raises an error that says so."""
    without = "\n".join(line for line in WRK_OUTPUT.splitlines() if "%" not in line or "Latency " in line)
    with pytest.raises(WrkError, match="--latency"):
        parse_wrk_output(without)


def _rows() -> list[Row]:
    return [
        Row("uninstrumented", "trivial", 1000.0, 990.0, 1010.0, 0.010),
        Row("vanilla", "trivial", 400.0, 390.0, 410.0, 0.030),
        Row("monitor-full", "trivial", 800.0, 780.0, 820.0, 0.015, spans_per_request=2.0),
    ]


def test_table_shows_ratios_against_uninstrumented_and_vanilla():
    """Each row carries its throughput ratios, its p99 ratio and the added time per request and per span."""
    table = throughput_table(_rows())
    full = next(line for line in table if "monitor-full" in line)
    cells = [cell.strip() for cell in full.strip("|").split("|")]
    assert cells[0:2] == ["trivial", "monitor-full"]
    assert cells[2].startswith("800 (780–820)")
    assert cells[3] == "15.00"
    assert cells[4:7] == ["0.80x", "2.00x", "1.50x"]
    # 1/800 s - 1/1000 s = 250 µs of extra work per request, over 2 spans.
    assert cells[7:10] == ["250", "2.0", "125"]


def test_targets_report_met_missed_and_unmeasured():
    """Target lines say met or NOT met from the ratios, and not measured when a side is absent."""
    lines = target_lines(_rows(), {"vanilla": 1.0, "monitor": 0.4})
    assert any("monitor-full trivial: 2.00x of vanilla" in line and line.endswith(": met") for line in lines)
    assert any("monitor-full database" in line and "not measured" in line for line in lines)
    assert any("startup" in line and "0.40x" in line and line.endswith(": met") for line in lines)
    assert not any("startup" in line for line in target_lines(_rows(), {"vanilla": 1.0}))


def test_targets_show_the_ratio_of_each_repetition_beside_the_ratio_of_medians():
    """The verdict stays on the medians' ratio; the paired ratios show how far the repetitions scatter."""
    rows = [
        Row("uninstrumented", "trivial", 1000.0, 800.0, 1200.0, 0.010, runs={1: 1200.0, 2: 1000.0, 3: 800.0}),
        Row("monitor-production", "trivial", 720.0, 600.0, 960.0, 0.012, runs={1: 960.0, 2: 720.0, 3: 600.0}),
    ]
    (line,) = [line for line in target_lines(rows, None) if "monitor-production trivial" in line]
    assert line == (
        "- monitor-production trivial: 0.72x of uninstrumented (target ≥ 0.75x): NOT met "
        "(for information, the ratio repetition by repetition: 0.80, 0.72, 0.75; median 0.75x)"
    )
    # A repetition one side missed: only the repetitions both ran are paired.
    rows[0].runs = {1: 1200.0, 3: 800.0}
    rows[1].runs = {1: 960.0, 2: 720.0, 3: 600.0}
    (line,) = [line for line in target_lines(rows, None) if "monitor-production trivial" in line]
    assert line.endswith("repetition by repetition: 0.80, 0.75; median 0.78x)")


def test_memory_plateau_is_told_from_growth():
    """A curve that levels off counts as plateaued; one that keeps climbing does not."""
    flat = MemoryResult(samples_kib=[80_000 + min(n, 5) * 4000 for n in range(40)])
    growing = MemoryResult(samples_kib=[80_000 + n * 4000 for n in range(40)])
    assert flat.plateaued
    assert not growing.plateaued
    assert flat.curve().endswith("(MiB)") and "39s" in flat.curve()


def test_cardinality_is_bounded_only_under_the_limit():
    """One series per distinct path is unbounded; a few series are bounded."""
    assert CardinalityResult(5000, {"http.server.duration": 2}, limit=2000).bounded
    assert not CardinalityResult(5000, {"monitor.operation.duration": 5000}, limit=2000).bounded


def test_profile_summary_counts_leaves_and_leaves_out_lock_waits():
    """Self time goes to the leaf frame and its innermost package; lock waits are counted apart."""
    collapsed = (
        "run (/v/site-packages/uvicorn/main.py);encode (/v/site-packages/opentelemetry/exporter/x.py) 7\n"
        "run (/v/site-packages/uvicorn/main.py);handle (/v/site-packages/starlette/routing.py) 3\n"
        "worker (/v/lib/python3.11/threading.py);Condition.wait (/v/lib/python3.11/threading.py) 50\n"
    )
    busy, top, groups = summarize_collapsed(collapsed)
    assert busy == 10
    assert top[0] == ("encode (opentelemetry/exporter/x.py)", 7)
    # Each sample belongs to its innermost known package.
    assert groups == {"opentelemetry (sdk, exporters, instrumentation)": 7, "starlette": 3, "waiting": 50}


@pytest.mark.slow
def test_sink_counts_bytes_per_signal():
    """The sink process answers 200 to /v1/* and counts each signal's bytes; other paths get 404."""
    with SinkProcess(sys.executable) as sink:
        for signal_name, body in (("traces", b"x" * 100), ("logs", b"y" * 7)):
            request = urllib.request.Request(
                f"{sink.endpoint}/v1/{signal_name}",
                data=body,
                method="POST",
                headers={"Content-Type": "application/x-protobuf"},
            )
            with urllib.request.urlopen(request, timeout=10) as reply:
                assert reply.status == 200
        with pytest.raises(urllib.error.HTTPError):
            urllib.request.urlopen(urllib.request.Request(f"{sink.endpoint}/other", data=b"z"), timeout=10)
        stats = sink.stats()
    assert stats["bytes"] == {"traces": 100, "metrics": 0, "logs": 7}
    assert stats["requests"]["traces"] == 1


@pytest.mark.slow
def test_sink_counts_distinct_metric_series():
    """With --count-series, the sink counts distinct attribute sets per metric over repeated exports."""
    from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest

    message = ExportMetricsServiceRequest()
    metric = message.resource_metrics.add().scope_metrics.add().metrics.add()
    metric.name = "http.server.duration"
    for route in ("/a", "/b"):
        point = metric.sum.data_points.add()
        point.as_int = 1
        attribute = point.attributes.add()
        attribute.key, attribute.value.string_value = "http.route", route
    body = message.SerializeToString()
    with SinkProcess(sys.executable, count_series=True) as sink:
        for _ in range(2):
            request = urllib.request.Request(
                f"{sink.endpoint}/v1/metrics",
                data=body,
                method="POST",
                headers={"Content-Type": "application/x-protobuf"},
            )
            urllib.request.urlopen(request, timeout=10).close()
        stats = sink.stats()
    assert stats["series"] == {"http.server.duration": 2}


@pytest.fixture
def standin_server(tmp_path):
    port = free_port()
    command = [
        sys.executable,
        "-m",
        "uvicorn",
        "benchmarks.standin_app:app",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--no-access-log",
        "--log-level",
        "warning",
    ]
    server = AppServer(
        command, clean_environment({"BENCH_STANDIN_DB": str(tmp_path)}), port, None, tmp_path / "server.log"
    )
    with server.start(ready_path="/ping"):
        yield server


@pytest.mark.slow
@needs_wrk
def test_one_second_run_on_the_standin_app(standin_server):
    """A one-second wrk run against both stand-in endpoints completes with only 200s."""
    for path in ("/ping", "/api/products/1"):
        result = run_wrk(standin_server.base_url + path, duration=1, connections=4)
        assert result.requests > 0
        assert result.non_2xx == 0 and result.socket_errors == 0
    with urllib.request.urlopen(standin_server.base_url + "/api/products/1", timeout=10) as reply:
        assert json.load(reply)["id"] == 1


@pytest.mark.slow
@needs_wrk
def test_distinct_paths_run_stops_after_its_count(standin_server):
    """The distinct-path script ends the run once `count` requests went to unknown paths, all 404s."""
    result = run_distinct_paths(standin_server.base_url, "/bench-unknown/", count=200, max_seconds=60, connections=4)
    # The stop is asynchronous: up to one request per connection may be cut off, or slip past the count.
    assert 200 - 4 <= result.requests <= 200 + 4
    assert result.non_2xx == result.requests
    assert result.seconds < 60


def test_harness_runs_from_the_repository_root():
    """`python -m benchmarks.run` resolves paths from the repository root."""
    assert (ROOT / "benchmarks" / "run.py").exists()


def test_readme_block_is_replaced_between_its_markers(tmp_path):
    """--update-readme swaps only the text between the bench-results markers."""
    from benchmarks.report import README_END, README_START, update_readme

    readme = tmp_path / "README.md"
    readme.write_text(f"# title\n\n{README_START}\nold table\n{README_END}\n\nafter\n")
    update_readme("### Latest results\n\nnew table\n", readme)
    assert readme.read_text() == f"# title\n\n{README_START}\n### Latest results\n\nnew table\n{README_END}\n\nafter\n"


@pytest.mark.slow
@needs_wrk
def test_whole_harness_writes_a_report_with_every_configuration(tmp_path, capsys):
    """A one-second, one-round run prints and writes the table, with a row per configuration and endpoint."""
    from benchmarks.run import main

    code = main(
        [
            "--app",
            "benchmarks.standin_app:app",
            "--no-vanilla",
            "--duration",
            "1",
            "--warmup",
            "0",
            "--repetitions",
            "1",
            "--connections",
            "4",
            "--startup-runs",
            "1",
            "--span-count",
            "200",
            "--census-requests",
            "2",
            "--memory-seconds",
            "0",
            "--paths",
            "0",
            "--no-failing",
            "--storm-seconds",
            "0",
            "--output",
            str(tmp_path),
        ]
    )
    assert code == 0
    report = (tmp_path / "latest.md").read_text()
    assert report in capsys.readouterr().out
    for configuration in ("uninstrumented", "monitor-full", "monitor-production"):
        for endpoint in ("trivial", "database"):
            assert f"| {endpoint} | {configuration} |" in report
    raw = json.loads((tmp_path / "latest.json").read_text())
    assert {case["configuration"] for case in raw["throughput"]["cases"]} == {
        "uninstrumented",
        "monitor-full",
        "monitor-production",
    }
    assert [s["configuration"] for s in raw["startup"]] == [
        "uninstrumented",
        "monitor-full",
        "floor-launcher",
        "floor-sdk",
        "floor-otlp",
    ]
    assert "The floors run no otel-monitor code" in report


@pytest.mark.slow
def test_server_that_cannot_start_reports_its_log(tmp_path):
    """A server that exits during start-up raises an error carrying the end of its log."""
    port = free_port()
    command = [sys.executable, "-m", "uvicorn", "benchmarks.no_such_module:app", "--port", str(port)]
    server = AppServer(command, clean_environment({}), port, None, tmp_path / "server.log")
    with pytest.raises(RuntimeError, match="no_such_module"):
        server.start(ready_path="/ping", timeout=30)


def test_in_process_driver_counts_every_request_and_its_status():
    """benchmarks.inprocess runs the lifespan, sends the requests `concurrency` at a time and reports statuses."""
    import asyncio
    from contextlib import asynccontextmanager

    from fastapi import FastAPI, HTTPException

    from benchmarks.inprocess import drive

    started = []

    @asynccontextmanager
    async def lifespan(_app: FastAPI):
        started.append(True)
        yield

    app = FastAPI(lifespan=lifespan)

    @app.get("/ok")
    def ok() -> dict[str, bool]:
        return {"ok": True}

    @app.get("/missing")
    def missing() -> None:
        raise HTTPException(404)

    result = asyncio.run(drive(app, "/ok", requests=50, warmup=5, concurrency=4, profile=None))
    assert started == [True]
    assert result["statuses"] == {200: 50} and result["cpu_us"] > 0 and result["wall_us"] > 0
    assert asyncio.run(drive(app, "/missing", requests=7, warmup=0, concurrency=3, profile=None))["statuses"] == {
        404: 7
    }


def test_startup_floors_run_the_sdk_configurator_and_no_otel_monitor_code():
    """floor-launcher: no SDK; floor-sdk: the SDK's providers, no exporter; floor-otlp: its OTLP/HTTP exporters
    on urllib3. None imports us."""
    import subprocess

    from benchmarks.configurations import startup_floors

    probe = (
        "import sys\n"
        "from opentelemetry import _logs, metrics, trace\n"
        "def exporters(processor):\n"
        "    inner = getattr(processor, '_batch_processor', processor)\n"
        "    e = getattr(inner, '_exporter', None)\n"
        "    return [type(e).__name__, type(getattr(getattr(e, '_client', None), '_transport', None)).__name__] if e else []\n"
        "active = getattr(trace.get_tracer_provider(), '_active_span_processor', None)\n"
        "spans = [x for p in getattr(active, '_span_processors', ()) for x in exporters(p)]\n"
        "readers = [x for r in getattr(metrics.get_meter_provider(), '_metric_readers', ()) for x in exporters(r)]\n"
        "lp = _logs.get_logger_provider()\n"
        "logs = [x for p in getattr(getattr(lp, '_multi_log_record_processor', None), '_log_record_processors', ())\n"
        "        for x in exporters(p)]\n"
        "print(type(trace.get_tracer_provider()).__name__, spans, readers, logs, 'requests' in sys.modules,\n"
        "      any(name.split('.')[0] == 'otel_monitor' for name in sys.modules))\n"
    )
    seen = {}
    with SinkProcess(sys.executable) as sink:
        for floor in startup_floors(Path(sys.executable).parent):
            command = [*floor.startup_command()[:-2], "-c", probe]
            done = subprocess.run(
                command,
                env=clean_environment(floor.environment(sink.endpoint)),
                cwd=ROOT,
                capture_output=True,
                text=True,
                timeout=120,
            )
            assert done.returncode == 0, done.stderr
            seen[floor.key] = done.stdout.strip()
    assert seen["floor-launcher"] == "ProxyTracerProvider [] [] [] False False"
    assert seen["floor-sdk"] == "TracerProvider [] [] [] False False"
    transport = "Urllib3HTTPTransport"
    assert seen["floor-otlp"] == (
        f"TracerProvider ['OTLPSpanExporter', '{transport}'] "
        f"['OTLPMetricExporter', '{transport}'] ['OTLPLogExporter', '{transport}'] "
        "False False"
    )


@pytest.mark.parametrize("profile", ["production", "full", "no-sdk"])
def test_span_floor_records_what_otel_monitor_records_and_processes_nothing(profile):
    """benchmarks.inprocess --floor: otel-monitor's sampler and instrumentation loading, no span processor."""
    import subprocess

    probe = (
        "import os, sys\n"
        "from benchmarks.inprocess import install_floor\n"
        f"install_floor({profile!r})\n"
        "from opentelemetry import trace\n"
        "from otel_monitor.launcher.instrumentations import REPORT\n"
        "provider = trace.get_tracer_provider()\n"
        "tracer = trace.get_tracer('floor')\n"
        "spans = [tracer.start_span('s') for _ in range(200)]\n"
        "sampled = sum(s.get_span_context().trace_flags.sampled for s in spans)\n"
        "processors = getattr(getattr(provider, '_active_span_processor', None), '_span_processors', None)\n"
        "print(type(provider).__name__, processors, all(s.is_recording() for s in spans), sampled,\n"
        "      REPORT['fastapi'].state, REPORT['sqlalchemy'].state, os.environ['OTEL_SEMCONV_STABILITY_OPT_IN'],\n"
        "      sep='|')\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], env=clean_environment({}), cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    provider, processors, recording, sampled, fastapi, sqlalchemy, semconv = done.stdout.strip().split("|")
    # As under the launcher: FastAPI's own telemetry, SQLAlchemy traced once imported, stable semconv.
    assert (fastapi, sqlalchemy, semconv) == ("native", "waiting for import", "http,database")
    if profile == "no-sdk":
        assert (provider, recording, sampled) == ("ProxyTracerProvider", "False", "0")
        return
    assert (provider, processors, recording) == ("TracerProvider", "()", "True")
    if profile == "full":
        assert sampled == "200"
    else:
        assert 0 < int(sampled) < 100


def test_server_span_drives_the_sdk_span_as_fastapi_does_and_reports_both_costs(capsys):
    """micro server-span: the SDK's and otel-monitor's spans end up with FastAPI's route name and attributes; all timings printed."""
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.trace import SpanKind

    from benchmarks import micro
    from otel_monitor.fast import spans as lean_spans

    provider = TracerProvider()
    tracer = provider.get_tracer("fastapi")
    lean_provider = TracerProvider()
    lean_spans.install(lean_provider)
    lean_tracer = lean_provider.get_tracer("fastapi")
    spans = []
    for each in (tracer, lean_tracer):
        micro.request_lifecycle(
            lambda each=each: (
                spans.append(each.start_span("GET", kind=SpanKind.SERVER, attributes=micro.START_ATTRIBUTES))
                or spans[-1]
            )
        )
    assert type(spans[1]) is lean_spans.MonitorSpan
    bare = []
    micro.request_lifecycle(lambda: bare.append(micro.BareSpan("GET", micro.START_ATTRIBUTES)) or bare[-1])
    for span in (*spans, bare[0]):
        assert span.name == "GET /ping"
        assert dict(span.attributes) == {
            "url.scheme": "http",
            "http.request.method": "GET",
            "network.protocol.version": "1.1",
            "server.address": "127.0.0.1",
            "server.port": 8000,
            "url.path": "/ping",
            "http.route": "/ping",
            "http.response.status_code": 200,
        }
        assert span.end_time >= span.start_time > 0

    assert micro.main(["server-span", "--number", "50", "--repeat", "1"]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["sdk_span_us"] > 0 and result["otel_monitor_span_us"] > 0 and result["bare_span_us"] > 0
    assert result["most_a_span_type_could_save_us"] == pytest.approx(result["sdk_span_us"] - result["bare_span_us"])


@needs_wrk
def test_gc_cost_times_each_servers_collections_under_load(capsys):
    """micro gc-cost: each server served the load and reported its collections over the loaded seconds only."""
    from benchmarks import micro

    assert micro.main(["gc-cost", "--rounds", "1", "--seconds", "1", "--warmup", "1"]) == 0
    out = capsys.readouterr().out
    rounds = [line for line in out.splitlines() if line.startswith("round 1 ")]
    assert [line.split(":")[0] for line in rounds] == [
        "round 1 uninstrumented",
        "round 1 production, frozen",
        "round 1 production, not frozen",
    ]
    frozen = {}
    for line in rounds:
        collections = [int(n) for n in line.split("collections [")[1].split("]")[0].split(",")]
        assert collections[0] > 0, line  # a second of load allocates enough for young collections
        frozen[line.split(":")[0]] = int(line.rsplit(", ", 1)[1].split(" objects frozen")[0].replace(",", ""))
    # The setting reached each server: only the frozen one froze anything.
    assert frozen["round 1 production, frozen"] > 10_000
    assert frozen["round 1 uninstrumented"] == frozen["round 1 production, not frozen"] == 0
    assert "| production, frozen |" in out and "| production, not frozen |" in out
    # Collections per 1,000 requests, generation by generation: young ones ran under load.
    row = next(line for line in out.splitlines() if line.startswith("| uninstrumented |"))
    per_thousand = [float(n) for n in row.split("|")[4].split(",")]
    first = rounds[0]
    collections = [int(n) for n in first.split("collections [")[1].split("]")[0].split(",")]
    requests = int(first.split(" requests, ")[0].rsplit(" ", 1)[1].replace(",", ""))
    assert per_thousand[0] == pytest.approx(1000 * collections[0] / requests, abs=0.5), (row, first)


@needs_wrk
def test_paired_rounds_alternate_the_two_servers_and_pair_each_rounds_ratio(capsys):
    """benchmarks.paired: both servers served every round, in alternating order, and each ratio is the round's own."""
    from benchmarks import paired

    assert paired.main(["--path", "/ping", "--rounds", "2", "--seconds", "1", "--warmup", "1"]) == 0
    out = capsys.readouterr().out
    rounds = [line for line in out.splitlines() if line.startswith("round ")]
    assert [line.split(":")[0] for line in rounds] == [
        "round 1 (uninstrumented first)",
        "round 2 (monitor-production first)",
    ]
    _check_paired_rounds(rounds)
    assert "median of the round ratios" in out and "ratio of the medians" in out
    assert "requests per CPU-second: median of the round ratios" in out
    assert "while the other was loaded, uninstrumented used" in out


def _check_paired_rounds(rounds: list[str]) -> None:
    """Each round's ratios are its own: of its req/s, and of its requests per CPU-second."""
    for line in rounds:
        served = line.split(": ", 1)[1]
        first, second = (served.split(f"{key} ")[1] for key in ("uninstrumented", "monitor-production"))
        first_rps, second_rps = (float(side.split(" req/s")[0].replace(",", "")) for side in (first, second))
        first_cpu = float(first.split("(")[1].split(" per CPU-second")[0].replace(",", ""))
        second_cpu = float(second.split("(")[1].split(")")[0].replace(",", ""))
        assert first_rps > 0 and second_rps > 0 and first_cpu > 0 and second_cpu > 0, line
        ratio, per_cpu = line.rsplit("ratio ", 1)[1].split(", per CPU-second ")
        assert float(ratio) == pytest.approx(second_rps / first_rps, rel=0.01)
        assert float(per_cpu) == pytest.approx(second_cpu / first_cpu, rel=0.01)


@needs_wrk
def test_paired_together_loads_both_servers_in_every_round(capsys):
    """benchmarks.paired --together: both servers loaded at once each round, each with its own figures."""
    from benchmarks import paired

    assert paired.main(["--path", "/ping", "--rounds", "2", "--seconds", "1", "--warmup", "1", "--together"]) == 0
    out = capsys.readouterr().out
    rounds = [line for line in out.splitlines() if line.startswith("round ")]
    assert [line.split(":")[0] for line in rounds] == ["round 1 (both at once)", "round 2 (both at once)"]
    _check_paired_rounds(rounds)
    assert "2 rounds with both loaded at once" in out and "requests per CPU-second: median" in out
    assert "while the other was loaded" not in out  # neither is idle


@pytest.mark.parametrize(
    "arguments",
    [
        ["--second", "monitor-fast"],
        ["--second", "uninstrumented"],
        ["--seconds", "0"],
        ["--seconds", "2.5"],
        ["--rounds", "0"],
    ],
    ids=["unknown", "same-twice", "no-seconds", "fraction", "no-rounds"],
)
def test_paired_refuses_arguments_it_cannot_measure(arguments, capsys):
    from benchmarks import paired

    with pytest.raises(SystemExit) as stopped:
        paired.main(arguments)
    assert stopped.value.code == 2
    assert "error:" in capsys.readouterr().err


def test_micro_lists_its_cases_and_refuses_an_unknown_one(capsys):
    """benchmarks.micro --list names every case with its one-line summary; an unknown case is an error."""
    from benchmarks import micro

    assert micro.main(["--list"]) == 0
    listed = [line.split()[0] for line in capsys.readouterr().out.splitlines()]
    assert listed == ["span-cost", "server-span", "processors", "encoding", "runtime-metrics", "gc-cost"]
    assert micro.main(["no-such-case"]) == 2
    assert "unknown case 'no-such-case'" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("case", "arguments", "expected"),
    [
        ("encoding", ["--spans", "8", "--rounds", "1"], "encode  otel-monitor"),
        ("runtime-metrics", ["--collections", "2"], "runtime metrics cost:"),
        ("processors", ["--spans", "20", "--requests", "5"], "otel-monitor   "),
    ],
)
def test_micro_cases_run_and_print_their_figures(case, arguments, expected, capsys):
    """Each in-process case runs with small counts and prints its figure."""
    from benchmarks import micro

    assert micro.main([case, *arguments]) == 0
    assert expected in capsys.readouterr().out


def test_span_cost_runs_as_the_harness_runs_it_and_prints_one_json_line():
    """micro span-cost, started as the harness starts it, prints per-item figures for the installed provider."""
    import subprocess

    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.micro", "span-cost", "--count", "50"],
        env=clean_environment({}),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["span_pair_us"] > 0 and result["histogram_record_us"] > 0 and result["log_record_us"] > 0
    assert result["tracer_provider"] == "ProxyTracerProvider"  # no launcher: the API's no-op provider

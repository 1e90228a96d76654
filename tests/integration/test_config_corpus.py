"""Bad configuration: a corpus of malformed settings and config files.

Every case must give exactly one clear message naming the variable or the
file and line, leave the app running on defaults, and stop the process (exit
status 2) under ``OTEL_MONITOR_STRICT=true``.  The in-process cases run the
same steps as the configurator (settings, config file, processor pipeline,
health section); a sample of them also runs in a real process.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk.metrics import MeterProvider

from otel_monitor.config.settings import BY_ENV, ConfigError, Settings, report_problem
from otel_monitor.health.checks import load_health_config
from otel_monitor.launcher.configurator import load_configuration
from otel_monitor.pipeline.processors import build_pipeline

CORPUS = Path(__file__).resolve().parents[1] / "support" / "corpus" / "config"

# file -> (line the message must name, words it must contain)
FILES: dict[str, tuple[int, str]] = {
    "bad_yaml_indent.yaml": (3, "invalid YAML"),
    "bad_yaml_tab.yaml": (2, "invalid YAML"),
    "bad_yaml_unclosed_quote.yaml": (2, "invalid YAML"),
    "bad_yaml_unclosed_flow.yaml": (2, "invalid YAML"),
    "top_level_list.yaml": (1, "expected a mapping of sections"),
    "top_level_scalar.yaml": (1, "expected a mapping of sections"),
    "unknown_section.yaml": (2, "unknown section 'alerts'"),
    "settings_not_a_mapping.yaml": (1, "'settings' must be a mapping"),
    "settings_unknown_key.yaml": (3, "unknown setting 'cardinality_limt'"),
    "settings_wrong_type.yaml": (2, "cardinality_limit='lots' is invalid: expected an integer"),
    "settings_out_of_range.yaml": (2, "slow_threshold_ms='-1' is invalid: expected at least 0"),
    "settings_bad_regex.yaml": (2, "invalid regular expression '/api/(v1'"),
    "settings_bad_bool.yaml": (2, "keep_errors='sometimes' is invalid: expected true or false"),
    "operations_not_a_list.yaml": (1, "'operations' must be a list"),
    "operation_without_condition.yaml": (4, "operation 'everything' has no condition"),
    "operation_unknown_key.yaml": (3, "unknown key 'path'"),
    "operation_bad_kind.yaml": (3, "kind 'database' is not one of"),
    "operation_bad_regex.yaml": (3, "invalid regular expression"),
    "operation_attributes_not_mapping.yaml": (4, "'attributes' must be a mapping"),
    "errors_not_a_list.yaml": (1, "'errors' must be a list"),
    "error_rule_without_category.yaml": (2, "an error rule needs 'category'"),
    "error_rule_bad_regex.yaml": (3, "invalid regular expression"),
    "funnels_not_a_mapping.yaml": (1, "'funnels' must map funnel names"),
    "funnel_without_steps.yaml": (2, "funnel 'purchase' needs a non-empty 'steps' list"),
    "redaction_not_a_mapping.yaml": (1, "'redaction' must be a mapping"),
    "redaction_unknown_key.yaml": (2, "unknown key 'pattern'"),
    "redaction_bad_pattern.yaml": (4, "invalid regular expression '[unclosed'"),
    "redaction_keys_not_strings.yaml": (2, "'keys' must be a list of non-empty strings"),
    "slo_latency_critical_below_warning.yaml": (3, "latency.critical (1.0) must not be below warning (2.0)"),
    "slo_success_critical_above_warning.yaml": (3, "success_rate.critical (0.99) must not exceed warning (0.9)"),
    "slo_objective_of_one.yaml": (3, "objective must be between 0 and 1 exclusive"),
    "slo_fraction_out_of_range.yaml": (4, "error_rate.critical must be a number between 0 and 1"),
    "slo_negative_latency.yaml": (3, "latency.warning must be a positive number of seconds"),
    "slo_buckets_not_increasing.yaml": (2, "slos.buckets must be strictly increasing"),
    "slo_unknown_key.yaml": (3, "unknown SLO key 'latency_ms'"),
    "slo_bad_duration.yaml": (3, "error_rate.for must be a duration"),
    "health_unknown_key.yaml": (2, "unknown key 'intervall' under health"),
    "health_check_without_type.yaml": (3, "'type' must be one of"),
    "health_endpoints_not_bool.yaml": (2, "'endpoints' must be true or false"),
    "yaml_alias_bomb.yaml": (2, "refused: its aliases expand to more than 100,000 nodes"),
    "yaml_too_many_aliases.yaml": (104, "refused: more than 100 YAML aliases"),
}

# variable -> (bad value, words the message must contain)
VARIABLES: dict[str, tuple[str, str]] = {
    "OTEL_MONITOR_CARDINALITY_LIMIT": ("many", "expected an integer"),
    "OTEL_MONITOR_HEALTH_INTERVAL": ("0", "expected at least 0.1"),
    "OTEL_MONITOR_SLOW_THRESHOLD_MS": ("nan", "expected a finite number"),
    "OTEL_MONITOR_SHUTDOWN_TIMEOUT": ("inf", "expected a finite number"),
    "OTEL_MONITOR_EXPORT_WARNING_INTERVAL": ("1e9", "expected at most 86400"),
    "OTEL_MONITOR_KEEP_ERRORS": ("maybe", "expected true or false"),
    "OTEL_MONITOR_REDACT": ("2", "expected true or false"),
    "OTEL_MONITOR_HEALTH_ENDPOINTS": ("yes please", "expected true or false"),
    "OTEL_MONITOR_LOG_LEVEL": ("LOUD", "expected a logging level"),
    "OTEL_MONITOR_EXCLUDED_URLS": ("/health,/api/(v1", "invalid regular expression '/api/(v1'"),
    "OTEL_MONITOR_REDACT_PATTERNS": ("[a-", "invalid regular expression '[a-'"),
    "OTEL_MONITOR_USER_ID_KEY": ("", "expected a non-empty value"),
}


def unreadable_files(tmp_path: Path) -> dict[str, tuple[str, str]]:
    """Config paths that cannot be read at all -> words of the message."""
    binary = tmp_path / "binary.yaml"
    binary.write_bytes(b"\xff\xfe\x00operations: \x9c\x80\n")
    fifo = str(tmp_path / "fifo.yaml")  # nothing ever writes to it: reading would wait forever
    os.mkfifo(fifo)
    big = tmp_path / "big.yaml"
    big.write_bytes(b"#" * (1024 * 1024) + b"\n")
    return {
        "missing": (str(tmp_path / "no-such-dir" / "otel-monitor.yaml"), "cannot read the config file"),
        "directory": (str(tmp_path), "cannot read the config file"),
        "not utf-8": (str(binary), "cannot read the config file"),
        "fifo": (fifo, "cannot read the config file: it is a FIFO"),
        "device": ("/dev/zero", "cannot read the config file: it is a device"),
        "oversized": (str(big), "cannot read the config file: it is 1,048,577 bytes"),
    }


def configure_like_the_configurator(environ: dict[str, str]) -> tuple[Settings, list[str]]:
    """Settings, config file, processor pipeline and health section, as the configurator reads them."""
    settings, config = load_configuration(environ=environ)
    problems = list(settings.problems)
    pipeline = build_pipeline(settings, config, MeterProvider(), LoggerProvider())
    problems += pipeline.problems
    for problem in load_health_config(config).problems:  # the configurator reports these the same way
        report_problem(problem, strict=bool(settings.strict), problems=problems)
    return settings, problems


def warnings_logged(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "otel_monitor" and r.levelno >= logging.WARNING]


def test_corpus_is_large_enough():
    """The corpus holds at least 30 malformed configurations, and every file has its expectation."""
    files = {p.name for p in CORPUS.glob("*.yaml")}
    assert files == set(FILES)
    assert len(FILES) + len(VARIABLES) + 3 >= 30


@pytest.mark.parametrize("name", sorted(FILES))
def test_bad_config_file_gives_one_message_with_file_and_line(name, caplog):
    """A malformed config file gives exactly one logged message naming file:line and what is wrong."""
    path = str(CORPUS / name)
    line, words = FILES[name]
    with caplog.at_level(logging.WARNING, logger="otel_monitor"):
        _, problems = configure_like_the_configurator({"OTEL_MONITOR_CONFIG": path})
    assert len(problems) == 1, problems
    assert problems[0].startswith(f"{path}:{line}: ") and words in problems[0], problems[0]
    assert warnings_logged(caplog) == [f"otel-monitor: {problems[0]}"]


@pytest.mark.parametrize("name", sorted(FILES))
def test_bad_config_file_stops_the_process_in_strict_mode(name):
    """Under OTEL_MONITOR_STRICT=true the same problem raises ConfigError (the configurator exits 2)."""
    path = str(CORPUS / name)
    line, words = FILES[name]
    with pytest.raises(ConfigError) as raised:
        configure_like_the_configurator({"OTEL_MONITOR_CONFIG": path, "OTEL_MONITOR_STRICT": "true"})
    assert str(raised.value).startswith(f"{path}:{line}: ") and words in str(raised.value)


@pytest.mark.parametrize("variable", sorted(VARIABLES))
def test_bad_variable_gives_one_message_and_the_default(variable, caplog):
    """A bad OTEL_MONITOR_* value gives one message naming the variable, and the default is used."""
    raw, words = VARIABLES[variable]
    setting = BY_ENV[variable]
    with caplog.at_level(logging.WARNING, logger="otel_monitor"):
        settings, problems = configure_like_the_configurator({variable: raw})
    assert len(problems) == 1, problems
    assert problems[0].startswith(f"{variable}=") and words in problems[0], problems[0]
    assert warnings_logged(caplog) == [f"otel-monitor: {problems[0]}"]
    default = setting.parse(setting.default) if setting.default is not None else None
    assert getattr(settings, setting.key) == default


@pytest.mark.parametrize("variable", sorted(VARIABLES))
def test_bad_variable_stops_the_process_in_strict_mode(variable):
    """Under OTEL_MONITOR_STRICT=true a bad OTEL_MONITOR_* value raises ConfigError naming it."""
    raw, _words = VARIABLES[variable]
    with pytest.raises(ConfigError, match=variable):
        configure_like_the_configurator({variable: raw, "OTEL_MONITOR_STRICT": "true"})


@pytest.mark.parametrize("case", ["missing", "directory", "not utf-8", "fifo", "device", "oversized"])
def test_unreadable_config_file_gives_one_message_and_runs_without_it(case, tmp_path, caplog):
    """A missing, directory, non-UTF-8, FIFO, device or oversized config path: one message, the defaults."""
    path, words = unreadable_files(tmp_path)[case]
    with caplog.at_level(logging.WARNING, logger="otel_monitor"):
        settings, problems = configure_like_the_configurator({"OTEL_MONITOR_CONFIG": path})
    assert len(problems) == 1 and problems[0].startswith(f"{path}: {words}"), problems
    assert warnings_logged(caplog) == [f"otel-monitor: {problems[0]}"]
    assert settings.cardinality_limit == 2000
    with pytest.raises(ConfigError, match="cannot read the config file"):
        configure_like_the_configurator({"OTEL_MONITOR_CONFIG": path, "OTEL_MONITOR_STRICT": "true"})


def deeply_nested(kind: str) -> str:
    """YAML nested 50,000 levels deep (flow style), or 600 (block style: its indentation grows as the square)."""
    if kind == "flow":
        return "settings: " + "[" * 50_000 + "]" * 50_000 + "\n"
    return "settings:\n" + "".join("  " * (i + 1) + "a:\n" for i in range(600))


@pytest.mark.parametrize("kind", ["flow", "block"])
def test_deep_nesting_gives_one_message_and_runs_without_it(kind, tmp_path, caplog):
    """YAML nested thousands of levels deep: one message naming file and line, no RecursionError, defaults."""
    path = tmp_path / "deep.yaml"
    path.write_text(deeply_nested(kind))
    with caplog.at_level(logging.WARNING, logger="otel_monitor"):
        settings, problems = configure_like_the_configurator({"OTEL_MONITOR_CONFIG": str(path)})
    assert len(problems) == 1 and problems[0].startswith(f"{path}:") and "nested more than 64 levels" in problems[0]
    assert warnings_logged(caplog) == [f"otel-monitor: {problems[0]}"]
    assert settings.cardinality_limit == 2000
    with pytest.raises(ConfigError, match="nested more than 64 levels"):
        configure_like_the_configurator({"OTEL_MONITOR_CONFIG": str(path), "OTEL_MONITOR_STRICT": "true"})


def test_alias_walk_does_not_expand_aliases():
    """Lines are indexed once per node: a file whose aliases stay under the limit is indexed in linear time."""
    from otel_monitor.config.file import parse_config_text

    text = "settings:\n  x: &x {a: 1, b: [1, 2, 3]}\n  y: [" + ", ".join(["*x"] * 90) + "]\n"
    config = parse_config_text(text, "aliases.yaml")
    assert len(config.lines) < 120 and len(config.data["settings"]["y"]) == 90


# Standard variables the SDK refuses (it raises while it configures, or as it is imported)
# -> (bad value, words the message must contain)
SDK_VARIABLES: dict[str, tuple[str, str]] = {
    "OTEL_BSP_MAX_QUEUE_SIZE": ("-1", "expected a number above 0; using the SDK's default '2048'"),
    "OTEL_BSP_SCHEDULE_DELAY": ("0", "expected a finite number above 0; using the SDK's default '5000'"),
    "OTEL_BSP_MAX_EXPORT_BATCH_SIZE": ("0", "expected a number above 0; using the SDK's default '512'"),
    "OTEL_BLRP_MAX_QUEUE_SIZE": ("-1", "expected a number above 0; using the SDK's default '2048'"),
    "OTEL_BLRP_SCHEDULE_DELAY": ("0", "expected a finite number above 0; using the SDK's default '1000'"),
    "OTEL_BLRP_MAX_EXPORT_BATCH_SIZE": ("0", "expected a number above 0; using the SDK's default '512'"),
    "OTEL_EXPORTER_OTLP_PROTOCOL": (
        "carrier-pigeon",
        "expected one of grpc, http/protobuf; using otel-monitor's default 'http/protobuf'",
    ),
    "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": ("carrier-pigeon", "expected one of grpc, http/protobuf"),
    "OTEL_EXPORTER_OTLP_METRICS_PROTOCOL": ("smoke", "expected one of grpc, http/protobuf"),
    "OTEL_EXPORTER_OTLP_LOGS_PROTOCOL": ("http/xml", "expected one of grpc, http/protobuf"),
    "OTEL_METRIC_EXPORT_INTERVAL": ("0", "expected a finite number above 0; using the SDK's default '60000'"),
    "OTEL_TRACES_EXPORTER": ("zipkin-over-fax", "no traces exporter named 'zipkin-over-fax' is installed"),
    "OTEL_METRICS_EXPORTER": ("otlp,bogus", "no metrics exporter named 'bogus' is installed"),
    "OTEL_LOGS_EXPORTER": ("bogus", "no logs exporter named 'bogus' is installed"),
    "OTEL_METRICS_EXEMPLAR_FILTER": (
        "bogus",
        "expected one of always_on, always_off, trace_based; using otel-monitor's default 'always_off'",
    ),
    "OTEL_PYTHON_ID_GENERATOR": ("bogus", "no id generator named 'bogus' is installed"),
    "OTEL_ATTRIBUTE_COUNT_LIMIT": ("-1", "expected a number of at least 0; using the SDK's default '128'"),
    "OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT": ("-1", "using the SDK's default (no limit)"),
    "OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT": ("lots", "expected a whole number"),
    "OTEL_SPAN_ATTRIBUTE_VALUE_LENGTH_LIMIT": ("-5", "expected a number of at least 0"),
    "OTEL_SPAN_EVENT_COUNT_LIMIT": ("-1", "expected a number of at least 0"),
    "OTEL_SPAN_LINK_COUNT_LIMIT": ("-1", "expected a number of at least 0"),
    "OTEL_EVENT_ATTRIBUTE_COUNT_LIMIT": ("-1", "expected a number of at least 0"),
    "OTEL_LINK_ATTRIBUTE_COUNT_LIMIT": ("-1", "expected a number of at least 0"),
    "OTEL_LOGRECORD_ATTRIBUTE_COUNT_LIMIT": ("-1", "expected a number of at least 0"),
    "OTEL_LOGRECORD_ATTRIBUTE_VALUE_LENGTH_LIMIT": ("-1", "expected a number of at least 0"),
}


@pytest.mark.parametrize("variable", sorted(SDK_VARIABLES))
def test_bad_sdk_variable_gives_one_message_and_the_default(variable, caplog):
    """A standard OTEL_* value the SDK would refuse: one message naming it and the default, which is put back."""
    from otel_monitor.launcher.distro import DEFAULTS
    from otel_monitor.launcher.sdk_env import check_sdk_environment

    raw, words = SDK_VARIABLES[variable]
    environ = {variable: raw}
    problems: list[str] = []
    with caplog.at_level(logging.WARNING, logger="otel_monitor"):
        check_sdk_environment(environ, strict=False, problems=problems, defaults=DEFAULTS)
    assert len(problems) == 1 and problems[0].startswith(f"{variable}={raw!r} is invalid: "), problems
    assert words in problems[0], problems[0]
    assert warnings_logged(caplog) == [f"otel-monitor: {problems[0]}"]
    assert environ == ({variable: DEFAULTS[variable]} if variable in DEFAULTS else {})
    with pytest.raises(ConfigError, match=variable):
        check_sdk_environment({variable: raw}, strict=True, defaults=DEFAULTS)


def test_batch_larger_than_queue_is_cut_to_the_queue(caplog):
    """A batch size above the queue size (which the SDK refuses) becomes the queue size, with one message."""
    from otel_monitor.launcher.sdk_env import check_sdk_environment

    environ = {"OTEL_BSP_MAX_QUEUE_SIZE": "100", "OTEL_BSP_MAX_EXPORT_BATCH_SIZE": "100000"}
    problems: list[str] = []
    check_sdk_environment(environ, strict=False, problems=problems)
    assert problems == [
        "OTEL_BSP_MAX_EXPORT_BATCH_SIZE=100000 is invalid: it must not exceed OTEL_BSP_MAX_QUEUE_SIZE (100); using 100"
    ]
    assert environ["OTEL_BSP_MAX_EXPORT_BATCH_SIZE"] == "100"


def test_good_sdk_variables_are_left_alone():
    """Valid values, and the ones the SDK copes with itself, are not touched."""
    from otel_monitor.launcher.sdk_env import check_sdk_environment

    environ = {
        "OTEL_BSP_MAX_QUEUE_SIZE": "4096",
        "OTEL_TRACES_EXPORTER": "otlp,console",
        "OTEL_PROPAGATORS": "tracecontext",
        "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc",
        "OTEL_METRIC_EXPORT_INTERVAL": "1500.5",
        "OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT": "0",
        "OTEL_TRACES_SAMPLER": "bogus",
    }
    problems: list[str] = []
    check_sdk_environment(dict(environ), strict=True, problems=problems)
    assert problems == []


# --- the same in real processes: the app runs on defaults, strict mode exits 2 -----------------

APP = (
    "import otel_monitor\n"
    "otel_monitor.configure()\n"
    "from otel_monitor.launcher.configurator import current\n"
    "state = current()\n"
    "print('app ran; pipeline built:', state.pipeline is not None)\n"
)
SAMPLE = {
    "variable": {"OTEL_MONITOR_CARDINALITY_LIMIT": "many"},
    "bad YAML": {"OTEL_MONITOR_CONFIG": str(CORPUS / "bad_yaml_tab.yaml")},
    "bad rule": {"OTEL_MONITOR_CONFIG": str(CORPUS / "operation_bad_regex.yaml")},
    "impossible SLO": {"OTEL_MONITOR_CONFIG": str(CORPUS / "slo_latency_critical_below_warning.yaml")},
    "bad health check": {"OTEL_MONITOR_CONFIG": str(CORPUS / "health_check_without_type.yaml")},
}
# configurator._initialize catches ConfigError around the processor pipeline but
# not around install_from_config: a strict-mode health problem ends in a traceback.
STRICT_XFAIL: set[str] = set()


def run_app(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    quiet = {
        "OTEL_TRACES_EXPORTER": "none",
        "OTEL_METRICS_EXPORTER": "none",
        "OTEL_LOGS_EXPORTER": "none",
        "OTEL_MONITOR_RAISE_INTERNAL_ERRORS": "false",
    }
    return subprocess.run(
        [sys.executable, "-c", APP], env={**os.environ, **quiet, **env}, capture_output=True, text=True, timeout=120
    )


@pytest.mark.slow
@pytest.mark.parametrize("case", sorted(SAMPLE))
def test_app_runs_on_defaults_with_one_message(case):
    """In a real process the app starts with its full pipeline, and stderr has the one message, no traceback."""
    proc = run_app(SAMPLE[case])
    assert proc.returncode == 0, proc.stderr
    assert "app ran; pipeline built: True" in proc.stdout
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("otel-monitor: "), proc.stderr
    assert "Traceback" not in proc.stderr


@pytest.mark.slow
@pytest.mark.parametrize(
    "case",
    [
        pytest.param(
            c, marks=pytest.mark.xfail(strict=True, reason="configurator must catch ConfigError from health setup")
        )
        if c in STRICT_XFAIL
        else c
        for c in sorted(SAMPLE)
    ],
)
def test_strict_mode_exits_non_zero_with_the_message(case):
    """In a real process under OTEL_MONITOR_STRICT=true the app never runs, exits 2, and says why."""
    proc = run_app({**SAMPLE[case], "OTEL_MONITOR_STRICT": "true"})
    assert proc.returncode == 2, proc.stderr
    assert "app ran" not in proc.stdout
    assert proc.stderr.startswith("otel-monitor: ") and "Traceback" not in proc.stderr


EXPORTING_APP = (
    "import otel_monitor\n"
    "otel_monitor.configure()\n"
    "from opentelemetry import trace\n"
    "with trace.get_tracer('corpus').start_as_current_span('still-exporting'):\n"
    "    pass\n"
    "trace.get_tracer_provider().force_flush()\n"
    "print('app ran')\n"
)
STALLS = [
    "alias bomb",
    "deep nesting",
    "fifo",
    "/dev/zero",
    *(
        f"{v}={SDK_VARIABLES[v][0]}"
        for v in (
            "OTEL_BSP_MAX_QUEUE_SIZE",
            "OTEL_EXPORTER_OTLP_PROTOCOL",
            "OTEL_METRIC_EXPORT_INTERVAL",
            "OTEL_TRACES_EXPORTER",
            "OTEL_METRICS_EXEMPLAR_FILTER",
            "OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT",
        )
    ),
    # Read by the instrumentation package as it is first imported: configure() checks it before that.
    "OTEL_PROPAGATORS=bogus",
]


def stall_env(case: str, tmp_path: Path) -> dict[str, str]:
    if "=" in case:
        variable, value = case.split("=", 1)
        return {variable: value}
    if case == "alias bomb":
        return {"OTEL_MONITOR_CONFIG": str(CORPUS / "yaml_alias_bomb.yaml")}
    if case == "deep nesting":
        path = tmp_path / "deep.yaml"
        path.write_text(deeply_nested("flow"))
        return {"OTEL_MONITOR_CONFIG": str(path)}
    if case == "fifo":
        os.mkfifo(tmp_path / "fifo.yaml")
        return {"OTEL_MONITOR_CONFIG": str(tmp_path / "fifo.yaml")}
    return {"OTEL_MONITOR_CONFIG": "/dev/zero"}


@pytest.mark.slow
@pytest.mark.parametrize("case", STALLS)
def test_nothing_stalls_the_start_and_exporting_goes_on(case, tmp_path):
    """A real process: one line on stderr, no traceback, and its span still reaches a real OTLP receiver."""
    from otel_monitor.testing import OTLPSink

    with OTLPSink() as sink:
        env = {
            **os.environ,
            **sink.env(),
            "OTEL_METRICS_EXPORTER": "none",
            "OTEL_LOGS_EXPORTER": "none",
            "OTEL_MONITOR_RAISE_INTERNAL_ERRORS": "false",
            **stall_env(case, tmp_path),
        }
        proc = subprocess.run(
            [sys.executable, "-c", EXPORTING_APP], env=env, capture_output=True, text=True, timeout=60
        )
        assert proc.returncode == 0, proc.stderr[-2000:]
        lines = [line for line in proc.stderr.splitlines() if line.strip()]
        assert len(lines) == 1 and lines[0].startswith("otel-monitor: ") and "Traceback" not in proc.stderr, lines
        assert sink.wait_for(lambda s: any(span["name"] == "still-exporting" for span in s.spans), timeout=20)


@pytest.mark.slow
@pytest.mark.parametrize("case", STALLS)
def test_nothing_stalls_strict_mode_either(case, tmp_path):
    """Under OTEL_MONITOR_STRICT=true the same cases exit 2 at once with one line."""
    env = {
        **os.environ,
        "OTEL_TRACES_EXPORTER": "none",
        "OTEL_METRICS_EXPORTER": "none",
        "OTEL_LOGS_EXPORTER": "none",
        **stall_env(case, tmp_path),
        "OTEL_MONITOR_STRICT": "true",
    }
    proc = subprocess.run([sys.executable, "-c", EXPORTING_APP], env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2, proc.stderr[-2000:]
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("otel-monitor: ") and "app ran" not in proc.stdout, lines

"""INFO records reach OTLP while the app prints exactly what it printed without otel-monitor."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.slow

BIN = Path(sys.executable).parent

# Each mode is one way an app sets up (or does not set up) logging, after the launcher ran.
APP = textwrap.dedent("""
    import logging, logging.config, sys
    mode = sys.argv[1]
    if mode == "basicConfig":
        logging.basicConfig()
    elif mode == "basicConfig-info":
        logging.basicConfig(level=logging.INFO)
    elif mode == "addHandler":
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("own:%(name)s:%(message)s"))
        logging.getLogger("app").addHandler(handler)
    elif mode == "dictConfig-no-root":  # what uvicorn does: its own loggers, the root left alone
        logging.config.dictConfig({"version": 1, "disable_existing_loggers": False,
            "formatters": {"f": {"format": "lib:%(message)s"}},
            "handlers": {"h": {"class": "logging.StreamHandler", "formatter": "f"}},
            "loggers": {"lib": {"handlers": ["h"], "level": "INFO", "propagate": False}}})
    elif mode == "dictConfig-root":
        logging.config.dictConfig({"version": 1, "disable_existing_loggers": False,
            "handlers": {"h": {"class": "logging.StreamHandler"}},
            "root": {"handlers": ["h"], "level": "INFO"}})
    logging.getLogger("app").info("app-info")
    logging.getLogger("app.sub").warning("app-warning")
    logging.getLogger("lib").info("lib-info")
    logging.getLogger().error("root-error")
    logging.getLogger("app").debug("app-debug")
""")
MODES = ["none", "basicConfig", "basicConfig-info", "addHandler", "dictConfig-no-root", "dictConfig-root"]


def _run(tmp_path: Path, mode: str, *, launcher: bool, level: str | None = None) -> subprocess.CompletedProcess[str]:
    script = tmp_path / "app.py"
    script.write_text(APP)
    command = [sys.executable, str(script), mode]
    if launcher:
        command = [str(BIN / "opentelemetry-instrument"), *command]
    env = {
        **os.environ,
        "OTEL_TRACES_EXPORTER": "none",
        "OTEL_METRICS_EXPORTER": "none",
        "OTEL_LOGS_EXPORTER": "console",
        "OTEL_MONITOR_RUNTIME_METRICS": "false",
        "OTEL_SERVICE_NAME": "app-logging",
    }
    env.pop("OTEL_MONITOR_LOG_LEVEL", None)
    if level is not None:
        env["OTEL_MONITOR_LOG_LEVEL"] = level
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=60, check=True)


def _exported(stdout: str) -> list[dict[str, Any]]:
    """The log records the console exporter printed (JSON objects one after the other)."""
    decoder, records, at = json.JSONDecoder(), [], 0
    while True:
        start = stdout.find("{", at)
        if start < 0:
            return records
        record, at = decoder.raw_decode(stdout, start)
        records.append(record)


@pytest.mark.parametrize("mode", MODES)
def test_the_app_prints_what_it_printed_without_otel_monitor(tmp_path, mode):
    """stderr under the launcher is the app's stderr without it, line for line."""
    plain = _run(tmp_path, mode, launcher=False)
    launched = _run(tmp_path, mode, launcher=True)
    assert launched.stderr == plain.stderr


@pytest.mark.parametrize(
    "mode", ["none", "basicConfig", "addHandler", "dictConfig-no-root", "dictConfig-root", "basicConfig-info"]
)
def test_info_records_are_exported_while_the_app_does_not_set_the_root_level(tmp_path, mode):
    """With OTEL_MONITOR_LOG_LEVEL at its default (INFO), INFO records arrive; DEBUG ones do not."""
    bodies = [r["body"] for r in _exported(_run(tmp_path, mode, launcher=True).stdout)]
    # A logger that does not propagate keeps its records to its own handlers.
    expected = ["app-info", "app-warning", "lib-info", "root-error"]
    assert bodies == [b for b in expected if not (mode == "dictConfig-no-root" and b == "lib-info")]


def test_a_root_level_the_app_sets_rules(tmp_path):
    """An app that sets the root logger to WARNING itself sends no INFO records."""
    script_mode = "root-warning"
    script = tmp_path / "app.py"
    script.write_text(
        APP.replace("mode = sys.argv[1]", "mode = sys.argv[1]\nlogging.getLogger().setLevel(logging.WARNING)")
    )
    env = {
        **os.environ,
        "OTEL_TRACES_EXPORTER": "none",
        "OTEL_METRICS_EXPORTER": "none",
        "OTEL_LOGS_EXPORTER": "console",
        "OTEL_MONITOR_RUNTIME_METRICS": "false",
    }
    out = subprocess.run(
        [str(BIN / "opentelemetry-instrument"), sys.executable, str(script), script_mode],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert [r["body"] for r in _exported(out.stdout)] == ["app-warning", "root-error"]


def test_records_do_not_carry_the_formatter_copies_of_trace_context(tmp_path):
    """otelSpanID, otelTraceID, otelTraceSampled and otelServiceName stay on the stdlib record only."""
    records = _exported(_run(tmp_path, "none", launcher=True).stdout)
    assert records
    for record in records:
        copies = {"otelSpanID", "otelTraceID", "otelTraceSampled", "otelServiceName"}
        assert not copies & set(record["attributes"] or {})
        assert record["resource"]["attributes"]["service.name"] == "app-logging"


def test_a_record_made_by_hand_without_a_level_is_no_error(tmp_path):
    """logging.makeLogRecord({}) (a record with no level) works under the launcher as without it."""
    script = tmp_path / "hand.py"
    script.write_text("import logging\nprint(sorted(vars(logging.makeLogRecord({})))[:3])\n")
    env = {
        **os.environ,
        "OTEL_TRACES_EXPORTER": "none",
        "OTEL_METRICS_EXPORTER": "none",
        "OTEL_LOGS_EXPORTER": "none",
        "OTEL_MONITOR_RUNTIME_METRICS": "false",
    }
    plain = subprocess.run([sys.executable, str(script)], env=env, capture_output=True, text=True, timeout=60)
    launched = subprocess.run(
        [str(BIN / "opentelemetry-instrument"), sys.executable, str(script)],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert launched.returncode == 0 and launched.stderr == "" and launched.stdout == plain.stdout


@pytest.mark.parametrize(
    ("level", "expected"),
    [
        ("DEBUG", ["app-info", "app-warning", "lib-info", "root-error", "app-debug"]),
        ("WARNING", ["app-warning", "root-error"]),
        ("ERROR", ["root-error"]),
    ],
)
def test_the_level_setting_is_the_lowest_level_exported(tmp_path, level, expected):
    """OTEL_MONITOR_LOG_LEVEL is the lowest level that reaches OTLP; the app's output stays its own."""
    launched = _run(tmp_path, "none", launcher=True, level=level)
    assert [r["body"] for r in _exported(launched.stdout)] == expected
    assert launched.stderr == _run(tmp_path, "none", launcher=False).stderr

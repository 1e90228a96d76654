"""``otel-monitor console`` as a command: prints its URL, serves, stops cleanly, refuses unsafe binds."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.console_telemetry import get, tracer

pytestmark = pytest.mark.slow

COMMAND = [str(Path(sys.executable).parent / "otel-monitor"), "console"]


def _terminal_sigint() -> None:
    # Ctrl-C as a terminal delivers it: a test run started in the background (no job control)
    # ignores SIGINT, and a child would inherit that.
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@pytest.mark.parametrize("stop_signal", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_console_command_serves_and_stops_on_interrupt(tmp_path, stop_signal):
    """The command prints its URL, accepts OTLP there, and exits 0 on Ctrl-C or SIGTERM."""
    log = tmp_path / "console.log"  # a file, not a pipe nobody reads: the console can never block writing to it
    # PYTHONFAULTHANDLER: should it not stop, SIGABRT makes it write every thread's stack to the log.
    with open(log, "w") as stderr:
        process = subprocess.Popen(
            [*COMMAND, "--port", "0", "--db", str(tmp_path / "c.db")],
            stdout=subprocess.PIPE,
            stderr=stderr,
            text=True,
            env={**os.environ, "PYTHONFAULTHANDLER": "1"},
            preexec_fn=_terminal_sigint,
        )
    try:
        line = process.stdout.readline()
        assert line.startswith("otel-monitor console: http://127.0.0.1:"), line
        url = line.split()[2]
        with tracer(url, service="cli-test") as t, t.start_as_current_span("GET /x"):
            pass
        assert get(f"{url}/api/services")["services"] == ["cli-test"]
    finally:
        process.send_signal(stop_signal)
        try:
            code = process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.send_signal(signal.SIGABRT)
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
            pytest.fail(
                f"the console did not stop within 20 s of {stop_signal.name}; its log:\n{log.read_text()[-6000:]}"
            )
    assert code == 0, log.read_text()[-3000:]


def test_console_command_refuses_public_bind_without_token():
    """Binding 0.0.0.0 without OTEL_MONITOR_CONSOLE_TOKEN exits 2 naming the variable."""
    env = {k: v for k, v in os.environ.items() if k != "OTEL_MONITOR_CONSOLE_TOKEN"}
    done = subprocess.run(
        [*COMMAND, "--host", "0.0.0.0", "--port", "0"], env=env, capture_output=True, text=True, timeout=30
    )
    assert done.returncode == 2 and "OTEL_MONITOR_CONSOLE_TOKEN" in done.stderr


def test_console_command_reports_a_bad_config_file(tmp_path):
    """A config file with an invalid SLO exits 2 with file and line."""
    config = tmp_path / "bad.yaml"
    config.write_text("slos:\n  defaults:\n    success_rate: {warning: 3}\n")
    done = subprocess.run(
        [*COMMAND, "--port", "0", "--config", str(config)], capture_output=True, text=True, timeout=30
    )
    assert done.returncode == 2 and f"{config}:3" in done.stderr

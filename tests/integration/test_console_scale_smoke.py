"""benchmarks/console_scale.py runs end to end at a toy size (the figures come from a full run, not here)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("taskset") is None or (os.cpu_count() or 1) < 2, reason="needs taskset, two cores")
def test_console_scale_benchmark_runs_at_toy_size():
    """Ingest over both protocols, a small fill and every UI call timed: each line printed."""
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "benchmarks.console_scale",
            "--spans",
            "3000",
            "--logs",
            "600",
            "--batches",
            "3",
            "--repeat",
            "2",
            "--no-jaeger",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert out.returncode == 0, out.stderr
    assert "console http:" in out.stdout and "console grpc:" in out.stdout
    assert "/api/traces?kind=slow" in out.stdout and "/api/logs?q=product" in out.stdout
    assert "slowest p95:" in out.stdout

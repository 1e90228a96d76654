"""The project's collector distribution (collector/builder-config.yaml, built by `make collector`)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
COLLECTOR = ROOT / "collector"
MANIFEST = COLLECTOR / "builder-config.yaml"
BUILT = ROOT / ".collector" / "otelcol-monitor"
NOT_BUILT = "collector not built: run `make collector` (needs Go)"


def collector_binary() -> Path | None:
    """OTEL_MONITOR_COLLECTOR if set, else the binary `make collector` links into .collector/."""
    named = os.environ.get("OTEL_MONITOR_COLLECTOR")
    candidate = Path(named) if named else BUILT
    if candidate.is_file() and os.access(candidate, os.X_OK):
        return candidate
    if named and shutil.which(named):
        return Path(shutil.which(named))
    return None


@pytest.fixture(scope="session")
def otelcol() -> Path:
    """Path of the built collector; the test is skipped (naming `make collector`) when there is none."""
    binary = collector_binary()
    if binary is None:
        pytest.skip(NOT_BUILT)
    return binary

"""The benchmark's report: machine facts, the ratio table, targets, JSON."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
import time
from dataclasses import dataclass
from typing import Any

from benchmarks.configurations import installed_version

# (configuration, endpoint, compared with, minimum ratio of throughputs)
THROUGHPUT_TARGETS = (
    ("monitor-full", "trivial", "vanilla", 1.5),
    ("monitor-full", "database", "uninstrumented", 0.8),
    ("monitor-production", "trivial", "uninstrumented", 0.75),
    ("monitor-production", "database", "uninstrumented", 0.9),
)
STARTUP_TARGET = 0.5  # otel-monitor's startup at most this fraction of vanilla's


def machine_facts() -> dict[str, Any]:
    model = ""
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            model = next((line.split(":", 1)[1].strip() for line in cpuinfo if line.startswith("model name")), "")
    except OSError:
        pass
    try:
        wrk = subprocess.run(["wrk", "--version"], capture_output=True, text=True).stdout.split("[")[0].strip()
    except OSError:
        wrk = "absent"
    return {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "cpu": model or platform.processor(),
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "kernel": platform.release(),
        "load_average": os.getloadavg()[0],
        "wrk": wrk,
        "packages": {name: installed_version(name) for name in
                     ("opentelemetry-sdk", "fastapi", "SQLAlchemy", "uvicorn")},
        "argv": " ".join(sys.argv[1:]),
    }


def ratio(numerator: float | None, denominator: float | None) -> float | None:
    if numerator is None or not denominator:
        return None
    return numerator / denominator


def fmt_ratio(value: float | None) -> str:
    return "–" if value is None else f"{value:.2f}x"


def fmt_ms(seconds: float | None) -> str:
    return "–" if seconds is None else f"{seconds * 1000:.2f}"


def fmt_bytes(count: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if count < 1024 or unit == "GiB":
            return f"{count:.0f} {unit}" if unit == "B" else f"{count:.1f} {unit}"
        count = count / 1024  # type: ignore[assignment]
    return str(count)


@dataclass
class Row:
    """One configuration on one endpoint, reduced to the numbers the table shows."""

    configuration: str
    endpoint: str
    rps: float
    rps_low: float
    rps_high: float
    p99: float
    failed: int = 0
    spans_per_request: float | None = None


def throughput_table(rows: list[Row]) -> list[str]:
    """Markdown lines: throughput and p99 with ratios against uninstrumented and vanilla."""
    by_key = {(row.configuration, row.endpoint): row for row in rows}
    lines = [
        "| endpoint | configuration | req/s (median; min–max) | p99 ms | req/s vs uninstr. | req/s vs vanilla "
        "| p99 vs uninstr. | added µs/request | spans/request | added µs/span |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        base = by_key.get(("uninstrumented", row.endpoint))
        vanilla = by_key.get(("vanilla", row.endpoint))
        # With the server's core saturated, 1/throughput is CPU time per request.
        added = None if base is None or row is base else (1 / row.rps - 1 / base.rps) * 1e6
        spans = row.spans_per_request
        # Per exported span only where every request exports its spans; a sampled
        # configuration's cost would be spread over a tenth of them.
        per_span = added / spans if added is not None and spans is not None and spans >= 1 else None
        lines.append(
            f"| {row.endpoint} | {row.configuration} | {row.rps:,.0f} ({row.rps_low:,.0f}–{row.rps_high:,.0f})"
            f"{' ⚠ ' + str(row.failed) + ' failed' if row.failed else ''} | {fmt_ms(row.p99)} "
            f"| {fmt_ratio(ratio(row.rps, base.rps if base else None))} "
            f"| {fmt_ratio(ratio(row.rps, vanilla.rps if vanilla else None))} "
            f"| {fmt_ratio(ratio(row.p99, base.p99 if base else None))} "
            f"| {'–' if added is None else f'{added:,.0f}'} "
            f"| {'–' if spans is None else f'{spans:.1f}'} | {'–' if per_span is None else f'{per_span:,.0f}'} |")
    return lines


def target_lines(rows: list[Row], startup: dict[str, float] | None) -> list[str]:
    """One line per target: the measured ratio, the goal, met or not (or not measured)."""
    by_key = {(row.configuration, row.endpoint): row for row in rows}
    lines = []
    for configuration, endpoint, against, minimum in THROUGHPUT_TARGETS:
        row, base = by_key.get((configuration, endpoint)), by_key.get((against, endpoint))
        value = ratio(row.rps if row else None, base.rps if base else None)
        verdict = "not measured" if value is None else ("met" if value >= minimum else "NOT met")
        lines.append(f"- {configuration} {endpoint}: {fmt_ratio(value)} of {against} "
                     f"(target ≥ {minimum}x): {verdict}")
    if startup and "vanilla" in startup and "monitor" in startup:
        value = startup["monitor"] / startup["vanilla"]
        lines.append(f"- startup otel-monitor / vanilla: {value:.2f}x (target ≤ {STARTUP_TARGET}x): "
                     f"{'met' if value <= STARTUP_TARGET else 'NOT met'}")
    return lines

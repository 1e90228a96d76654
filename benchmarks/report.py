"""The benchmark's report: machine facts, the ratio table, targets, JSON."""

from __future__ import annotations

import os
import platform
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from benchmarks.configurations import installed_version

if TYPE_CHECKING:
    import argparse
    from pathlib import Path

    from benchmarks.census import Census
    from benchmarks.footprint import CardinalityResult, MemoryResult, StartupResult
    from benchmarks.profiling import Profile

README_START, README_END = "<!-- bench-results:start -->", "<!-- bench-results:end -->"

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
        "packages": {
            name: installed_version(name) for name in ("opentelemetry-sdk", "fastapi", "SQLAlchemy", "uvicorn")
        },
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
    runs: dict[int, float] = field(default_factory=dict)  # req/s by repetition


def paired_ratios(row: Row | None, base: Row | None) -> list[float]:
    """``row``'s throughput over ``base``'s, repetition by repetition (each pair ran minutes apart at most).

    The machine's speed drifts over a run; a pair from the same repetition
    shares its drift, so these ratios scatter less than the two medians do.
    Only the repetitions both ran, in order.
    """
    if row is None or base is None:
        return []
    return [row.runs[rep] / base.runs[rep] for rep in sorted(row.runs) if base.runs.get(rep)]


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
            f"| {'–' if spans is None else f'{spans:.1f}'} | {'–' if per_span is None else f'{per_span:,.0f}'} |"
        )
    return lines


def target_lines(rows: list[Row], startup: dict[str, float] | None) -> list[str]:
    """One line per target: the measured ratio, the goal, met or not (or not measured)."""
    by_key = {(row.configuration, row.endpoint): row for row in rows}
    lines = []
    for configuration, endpoint, against, minimum in THROUGHPUT_TARGETS:
        row, base = by_key.get((configuration, endpoint)), by_key.get((against, endpoint))
        value = ratio(row.rps if row else None, base.rps if base else None)
        verdict = "not measured" if value is None else ("met" if value >= minimum else "NOT met")
        paired = paired_ratios(row, base)
        spread = (
            f" (for information, the ratio repetition by repetition: {', '.join(f'{r:.2f}' for r in paired)}; "
            f"median {statistics.median(paired):.2f}x)"
            if len(paired) > 1
            else ""
        )
        lines.append(
            f"- {configuration} {endpoint}: {fmt_ratio(value)} of {against} (target ≥ {minimum}x): {verdict}{spread}"
        )
    if startup and "vanilla" in startup and "monitor" in startup:
        value = startup["monitor"] / startup["vanilla"]
        lines.append(
            f"- startup otel-monitor / vanilla: {value:.2f}x (target ≤ {STARTUP_TARGET}x): "
            f"{'met' if value <= STARTUP_TARGET else 'NOT met'}"
        )
    return lines


def render(
    facts: dict[str, Any],
    app: str,
    notes: list[str],
    rows: list[Row],
    telemetry: dict[str, dict[str, int]],
    census: list[Census],
    startup: list[StartupResult],
    costs: dict[str, dict[str, Any]],
    memory: MemoryResult | None,
    cardinality: CardinalityResult | None,
    profiles: list[Profile],
    args: argparse.Namespace,
) -> str:
    """The whole report as markdown, headed for the README's performance section."""
    packages = ", ".join(f"{name} {v}" for name, v in facts["packages"].items())
    lines = [
        "### Latest results",
        "",
        f"{facts['date']}: {facts['cores']} cores ({facts['cpu']}), Python {facts['python']}, "
        f"Linux {facts['kernel']}, {facts['wrk']}, load average {facts['load_average']:.2f} at start and "
        f"{os.getloadavg()[0]:.2f} at the end; {packages}.",
        f"App `{app}`; wrk 1 thread, {args.connections} connections, {args.duration:g} s per case after "
        f"{args.warmup:g} s warm-up, {args.repetitions} interleaved repetitions (medians); server pinned to one "
        "core, wrk and the OTLP sink to the other.",
        "",
        *([*throughput_table(rows), ""] if rows else []),
    ]
    if telemetry:
        lines.append(
            "Telemetry received by the sink (all repetitions): "
            + "; ".join(
                f"{key}: " + ", ".join(f"{signal} {fmt_bytes(n)}" for signal, n in sorted(counts.items()))
                for key, counts in telemetry.items()
                if any(counts.values())
            )
            + "."
        )
        lines.append("")
    if census:
        lines.append(
            "Spans exported per request (names × count per request): "
            + "; ".join(
                f"{c.configuration} {c.endpoint}: "
                + (", ".join(f"`{name}` × {n / c.requests:.1f}" for name, n in sorted(c.span_names.items())) or "none")
                for c in census
            )
            + "."
        )
        lines.append("")
    if startup:
        vanilla = next((s.median for s in startup if s.configuration == "vanilla"), None)
        lines += ["| startup | median ms | best ms | median vs vanilla |", "|---|---|---|---|"]
        lines += [
            f"| {s.configuration}: `{s.command}` | {s.median * 1000:.0f} | {s.best * 1000:.0f} "
            f"| {fmt_ratio(None if s.configuration == 'uninstrumented' else ratio(s.median, vanilla))} |"
            for s in startup
        ]
        lines.append("")
        if any(s.configuration.startswith("floor-") for s in startup):
            lines.append(
                "The floors run no otel-monitor code: the launcher with its default distro and no "
                "instrumentation (`floor-launcher`: no configurator, so no SDK), then with the SDK's own "
                "configurator (`floor-sdk`: its providers, no exporter; `floor-otlp`: with its OTLP/HTTP "
                "exporters on the SDK's urllib3 transport), in otel-monitor's venv."
            )
            lines.append("")
    if costs:
        lines += [
            "| per-item cost (µs) | server+child span pair | histogram record | INFO log record |",
            "|---|---|---|---|",
        ]
        lines += [
            f"| {key} | {c['span_pair_us']:.1f} | {c['histogram_record_us']:.2f} | {c['log_record_us']:.1f} |"
            for key, c in costs.items()
        ]
        lines.append("")
    if memory is not None:
        lines.append(
            f"Memory, otel-monitor full, collector unreachable, {len(memory.samples_kib)} s of load on "
            f"`{memory.endpoint}` ({memory.load.rps if memory.load else 0:,.0f} req/s): {memory.curve()}; "
            f"{'plateaued' if memory.plateaued else 'STILL GROWING'}."
        )
    if cardinality is not None:
        name, largest = cardinality.largest
        lines.append(
            f"Cardinality, otel-monitor full: {cardinality.paths_sent:,} distinct unknown paths gave "
            f"{sum(cardinality.series.values()):,} metric series in all; largest `{name}` with "
            f"{largest:,} ({'bounded' if cardinality.bounded else 'UNBOUNDED'}, "
            f"limit {cardinality.limit})."
        )
    lines += ["", "Targets:", *target_lines(rows, _startup_medians(startup))]
    if notes:
        lines += ["", "Notes:", *[f"- {note}" for note in notes]]
    for profile in profiles:
        lines += [
            "",
            f"Top self-time frames, otel-monitor full, `{profile.endpoint}` ({profile.samples} busy samples):",
            "",
        ]
        lines += [f"    {n * 100 / max(profile.samples, 1):5.1f}%  {frame}" for frame, n in profile.self_time]
        lines.append(
            "    self time by package (stdlib charged to its caller): "
            + ", ".join(
                f"{group} {n * 100 / max(profile.samples, 1):.0f}%"
                for group, n in sorted(profile.by_package.items(), key=lambda item: -item[1])
                if group != "waiting"
            )
        )
        lines.append(f"    lock waits left out: {profile.by_package.get('waiting', 0)} samples")
    return "\n".join(lines) + "\n"


def update_readme(markdown: str, readme: Path) -> None:
    """Put the report between the README's bench-results markers."""
    text = readme.read_text()
    start, end = text.find(README_START), text.find(README_END)
    if start < 0 or end < start:
        raise SystemExit(f"{readme}: no {README_START} ... {README_END} block to update")
    readme.write_text(text[: start + len(README_START)] + "\n" + markdown + text[end:])


def _startup_medians(startup: list[StartupResult]) -> dict[str, float]:
    keys = {"vanilla": "vanilla", "monitor-full": "monitor"}
    return {keys[s.configuration]: s.median for s in startup if s.configuration in keys}

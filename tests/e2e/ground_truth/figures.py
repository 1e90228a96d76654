"""Print the console's figures beside the truth for the ground-truth scenarios.

    .venv/bin/python -m tests.e2e.ground_truth.figures

Starts a console and the ground-truth app, runs short versions of the
scenarios (steady load, a burst, one slow request, sub-millisecond queries, a
4xx storm) and prints, per operation, what the client recorded and what the
console shows: calls, success rate, throughput over the console's window,
p50/p95/p99, min and max.  Truth latencies are the server-side work (inside
the span) and the client's measurement (around it).
"""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tests.e2e.ground_truth.support import (
    Call,
    Recorder,
    calls_within,
    console,
    monitored_app,
    nearest_rank,
    wait_for_operation,
)


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value * 1000:.3f}"


def _row(
    label: str, calls: Sequence[Call], row: dict[str, Any], inner: Sequence[float], outer: Sequence[float]
) -> list[str]:
    window = row.get("throughput_window")
    seconds = (window["end"] - window["start"]) / 1000 if window else 0
    truth_rate = calls_within(calls, window) / seconds if window and seconds else None
    ok = sum(not c.failed for c in calls) / len(calls)
    lines = [
        f"{label}",
        f"  {'':<10}{'calls':>8}{'success':>10}{'rate/s':>10}{'p50 ms':>22}{'p95 ms':>22}{'p99 ms':>22}"
        f"{'min ms':>22}{'max ms':>22}",
    ]

    def span(q: float | str) -> str:
        if q == "min":
            return f"{_ms(min(inner))}..{_ms(min(outer))}"
        if q == "max":
            return f"{_ms(max(inner))}..{_ms(max(outer))}"
        return f"{_ms(nearest_rank(inner, float(q)))}..{_ms(nearest_rank(outer, float(q)))}"

    rate = "-" if truth_rate is None else f"{truth_rate:.2f}"
    lines.append(
        f"  {'truth':<10}{len(calls):>8}{ok:>10.4f}{rate:>10}"
        + "".join(f"{span(q):>22}" for q in (0.5, 0.95, 0.99, "min", "max"))
    )
    console_rate = "-" if row.get("throughput_per_s") is None else f"{row['throughput_per_s']:.2f}"
    lines.append(
        f"  {'console':<10}{row['calls']:>8}{row['success_rate']:>10.4f}{console_rate:>10}"
        + "".join(f"{_ms(row.get(k)):>22}" for k in ("p50", "p95", "p99", "min", "max"))
        + f"   (percentiles within {row.get('percentile_error')}, source {row['source']})"
    )
    return lines


def main() -> int:
    out: list[str] = []
    with tempfile.TemporaryDirectory() as tmp, console(Path(tmp)) as handle:
        with monitored_app(handle.url, "figures") as app, Recorder(app.base_url) as client:
            client.steady(20, 3, lambda i: ("GET /work", "/work?ms=5"))
            client.call("GET /slow", "/slow?ms=2500")
            client.burst(150, 16, lambda i: ("GET /work", "/work?ms=2"))
            client.steady(50, 2, lambda i: ("GET /items/{item_id}", f"/items/{i % 3 + 1}"))
            for route in ("GET /work", "GET /slow"):
                calls = client.of(route)
                row = wait_for_operation(handle, "figures", route, len(calls), source="metrics")
                out += _row(route, calls, row, [c.server["work"] for c in calls], [c.latency for c in calls])
            items = client.of("GET /items/{item_id}")
            row = wait_for_operation(handle, "figures", "item_query", len(items), source="metrics")
            out += _row(
                "item_query (one SQLite query per request)",
                items,
                row,
                [c.server["query"] for c in items],
                [c.server["execute"] for c in items],
            )
        with (
            monitored_app(handle.url, "figures-4xx", OTEL_METRIC_EXPORT_INTERVAL="600000") as app,
            Recorder(app.base_url) as client,
        ):
            client.burst(60, 4, lambda i: ("GET /items/{item_id}", "/items/999" if i % 2 else "/items/1"))
            calls = client.of("GET /items/{item_id}")
            row = wait_for_operation(handle, "figures-4xx", "GET /items/{item_id}", len(calls))
            out += _row(
                "4xx storm, before the first metric export",
                calls,
                row,
                [c.server["work"] for c in calls],
                [c.latency for c in calls],
            )
        row = wait_for_operation(handle, "figures-4xx", "GET /items/{item_id}", len(calls), source="metrics")
        out += _row(
            "4xx storm, after the metric export",
            calls,
            row,
            [c.server["work"] for c in calls],
            [c.latency for c in calls],
        )
    print("\n".join(out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

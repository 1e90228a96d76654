"""``otel-monitor status``: health per service, for cron and CI jobs.

Reads a running console's ``/api/summary`` (default) or a Prometheus server
(``--prometheus URL``, judged with the SLO thresholds of ``--config``), prints
one line per service and exits 1 when any service is critical or stale (sent
nothing for longer than ``--stale-intervals`` of its own metric export
intervals, or the console's ``--stale-after`` while those are unknown; ``--strict``: also when
one is in warning), 2 when the source cannot be read.

Prometheus names follow the collector's translation of the contract:
``monitor_operation_duration_seconds_{count,bucket}`` with the service in
``job`` and ``monitor_operation``/``monitor_error_category`` labels, and
``monitor_health_status`` with ``monitor_health_check``/``monitor_health_critical``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

from otel_monitor.config.file import EMPTY, load_config_file
from otel_monitor.config.settings import BY_KEY
from otel_monitor.console.aggregates import STALE, WINDOWS, worst
from otel_monitor.semantics.slo import SLOs, load_slos

TOKEN_ENV = BY_KEY["console_token"].env

EXIT_OK, EXIT_UNHEALTHY, EXIT_UNREACHABLE = 0, 1, 2


class SourceError(RuntimeError):
    """The console or Prometheus could not be read."""


def _fetch(url: str, token: str | None = None) -> Any:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=10) as response:
            return json.loads(response.read())
    except urllib.error.HTTPError as exc:
        raise SourceError(f"{url}: HTTP {exc.code} {exc.read()[:200].decode('utf-8', 'replace')}") from None
    except (urllib.error.URLError, OSError, ValueError) as exc:
        raise SourceError(f"{url}: {getattr(exc, 'reason', exc)}") from None


def from_console(url: str, window: str, service: str | None, token: str | None) -> list[dict[str, Any]]:
    """One row per service: service, status, calls, error_rate, p95, problems."""
    query = urllib.parse.urlencode({"window": window, **({"service": service} if service else {})})
    summary = _fetch(f"{url.rstrip('/')}/api/summary?{query}", token)
    if summary.get("replaying"):  # a console restarted with --db, still reading what it had stored
        progress = summary.get("replay") or {}
        print(
            f"otel-monitor status: the console is still replaying its stored data ({progress.get('replayed', '?')} "
            f"of {progress.get('total', '?')} requests): the figures below are partial",
            file=sys.stderr,
        )
    return [
        {
            "service": s["service"],
            "status": s["status"],
            "calls": s["calls"],
            "error_rate": s["error_rate"],
            "p95": s["p95"],
            "problems": [
                *_silence(s),
                *(f"operation {o}" for o in s["unhealthy_operations"]),
                *(f"check {c}" for c in s["failing_checks"]),
            ],
        }
        for s in summary["services"]
    ]


def _silence(service: dict[str, Any]) -> list[str]:
    """A stale service's problem: how long it has sent nothing."""
    if not service.get("stale"):
        return []
    silent, limit = service.get("silent_s"), service.get("stale_after_s")
    if silent is None:
        return ["no data"]
    return [f"no data for {silent:.0f} s" + (f", stale after {limit:g} s" if limit else "")]


def _prom(base: str, promql: str) -> list[dict[str, Any]]:
    answer = _fetch(f"{base.rstrip('/')}/api/v1/query?{urllib.parse.urlencode({'query': promql})}")
    if answer.get("status") != "success":
        raise SourceError(f"{base}: query failed: {answer.get('error', answer)}")
    return answer["data"]["result"]


def from_prometheus(base: str, window: str, service: str | None, slos: SLOs) -> list[dict[str, Any]]:
    """The same rows, computed from Prometheus with the config file's thresholds."""
    metric = "monitor_operation_duration_seconds"
    by = "job, monitor_operation"
    calls = {
        (r["metric"].get("job", ""), r["metric"].get("monitor_operation", "")): float(r["value"][1])
        for r in _prom(base, f"sum by ({by}) (increase({metric}_count[{window}]))")
    }
    errors = {
        (r["metric"].get("job", ""), r["metric"].get("monitor_operation", "")): float(r["value"][1])
        for r in _prom(base, f'sum by ({by}) (increase({metric}_count{{monitor_error_category!=""}}[{window}]))')
    }
    latency: dict[tuple[str, str], float] = {}
    percentiles = {slos.defaults.latency_percentile, *(t.latency_percentile for t in slos.operations.values())}
    for q in percentiles:
        for r in _prom(base, f"histogram_quantile({q}, sum by ({by}, le) (rate({metric}_bucket[{window}])))"):
            key = (r["metric"].get("job", ""), r["metric"].get("monitor_operation", ""))
            if slos.for_operation(key[1]).latency_percentile == q and r["value"][1] not in ("NaN", "+Inf"):
                latency[key] = float(r["value"][1])
    health = _prom(base, "min by (job, monitor_health_check, monitor_health_critical) (monitor_health_status)")
    rows: dict[str, dict[str, Any]] = {}
    for (job, op), n in calls.items():
        if service and job != service:
            continue
        row = rows.setdefault(job, {"service": job, "status": "ok", "calls": 0.0, "errors": 0.0, "problems": []})
        row["calls"] += n
        row["errors"] += errors.get((job, op), 0.0)
        if n <= 0:
            continue
        t = slos.for_operation(op)
        state = t.success_state(1 - errors.get((job, op), 0.0) / n)
        if (job, op) in latency:
            state = worst(state, t.latency_state(latency[(job, op)]))
        if state != "ok":
            row["problems"].append(f"operation {op}")
        row["status"] = worst(row["status"], state)
    for r in health:
        job = r["metric"].get("job", "")
        if service and job != service:
            continue
        value = float(r["value"][1])
        if value >= 1:
            continue
        row = rows.setdefault(job, {"service": job, "status": "ok", "calls": 0.0, "errors": 0.0, "problems": []})
        critical = r["metric"].get("monitor_health_critical") == "true" and value <= 0
        row["status"] = worst(row["status"], "critical" if critical else "warning")
        row["problems"].append(f"check {r['metric'].get('monitor_health_check', '')}")
    for row in rows.values():
        row["error_rate"] = row["errors"] / row["calls"] if row["calls"] else None
        row["p95"] = None
    return sorted(rows.values(), key=lambda r: r["service"])


def format_row(row: dict[str, Any]) -> str:
    rate = "-" if row["error_rate"] is None else f"{row['error_rate']:.1%}"
    p95 = "" if row.get("p95") is None else f"  p95={row['p95'] * 1000:.0f}ms"
    problems = f"  ({', '.join(row['problems'])})" if row["problems"] else ""
    return f"{row['service']:<24} {row['status'].upper():<8} calls={row['calls']:.0f}  errors={rate}{p95}{problems}"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--url", default="http://127.0.0.1:4318", help="the console to ask (default http://127.0.0.1:4318)"
    )
    parser.add_argument("--prometheus", metavar="URL", help="ask this Prometheus server instead of a console")
    parser.add_argument(
        "--config",
        default=os.environ.get("OTEL_MONITOR_CONFIG"),
        help="config file with the SLO thresholds (for --prometheus; default $OTEL_MONITOR_CONFIG)",
    )
    parser.add_argument("--window", default="15m", choices=list(WINDOWS), help="how far back to judge (default 15m)")
    parser.add_argument("--service", help="only this service")
    parser.add_argument("--strict", action="store_true", help="also exit 1 when a service is in warning")


def run(args: argparse.Namespace) -> int:
    try:
        if args.prometheus:
            slos = load_slos(load_config_file(args.config) if args.config else EMPTY)
            rows = from_prometheus(args.prometheus, args.window, args.service, slos)
        else:
            rows = from_console(args.url, args.window, args.service, os.environ.get(TOKEN_ENV))
    except (SourceError, ValueError) as exc:
        print(f"otel-monitor status: cannot read health: {exc}", file=sys.stderr)
        return EXIT_UNREACHABLE
    if not rows:
        print("no services have reported in the last " + args.window)
        return EXIT_OK
    for row in rows:
        print(format_row(row))
    # A stale service sent nothing for longer than the console's stale-after: never healthy.
    failing = {"critical", "warning", STALE} if args.strict else {"critical", STALE}
    return EXIT_UNHEALTHY if any(r["status"] in failing for r in rows) else EXIT_OK

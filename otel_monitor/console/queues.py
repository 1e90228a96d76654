"""The depth of each app queue (``monitor.queue.depth``) as the overview shows it.

Read from the metrics explorer's per-minute series (a gauge keeps each
minute's last value), per queue name over the service's instances: the depth
now is the sum of the live instances' latest values, the peak the highest
per-minute sum in the window.  A queue holding more than the generated rule's
limit (``QueueDepthHigh``) now is ``critical``, else ``ok``.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from otel_monitor import semconv
from otel_monitor.alerting.rules import QUEUE_DEPTH_CRITICAL
from otel_monitor.console.store import Store

# An instance whose last depth is older than this many minutes behind the newest no longer counts now.
_LIVE_MINUTES = 3
# An instant query reads a series' newest sample of the last 5 minutes (Prometheus' lookback
# delta), both ends included in Prometheus 2.x: the minute 5 minutes back still counts.
_LOOKBACK_MINUTES = 6


def queue_depths(store: Store, service: str, first_minute: int) -> list[dict[str, Any]]:
    """[{queue, depth, peak, instances, limit, status}] of ``service`` from ``first_minute`` on, by queue name."""
    return _rows(_queue_minutes(store, first_minute, service).get(service, {}))


def queue_depths_by_service(store: Store, first_minute: int) -> dict[str, list[dict[str, Any]]]:
    """:func:`queue_depths` of every service that has queues, from one pass over the series."""
    return {service: _rows(per_queue) for service, per_queue in _queue_minutes(store, first_minute).items()}


def queue_depths_at(store: Store, minute: int, services: list[str] | None = None) -> dict[tuple[str, str], float]:
    """(service, queue) -> items waiting at ``minute``, as ``QueueDepthHigh`` sums them: each instance's
    latest depth of the five minutes up to ``minute`` (Prometheus' lookback), summed over instances."""
    out: dict[tuple[str, str], float] = defaultdict(float)
    for service, per_queue in _queue_minutes(store, minute - _LOOKBACK_MINUTES + 1).items():
        if services is not None and service not in services:
            continue
        for name, instances in per_queue.items():
            for minutes in instances:
                recent = [m for m in minutes if m <= minute]
                if recent:
                    out[(service, name)] += minutes[max(recent)]
    return dict(out)


def _queue_minutes(
    store: Store, first_minute: int, service: str | None = None
) -> dict[str, dict[str, list[dict[int, float]]]]:
    """service -> queue name -> each instance's {minute: depth} from ``first_minute`` on."""
    out: dict[str, dict[str, list[dict[int, float]]]] = defaultdict(lambda: defaultdict(list))
    with store.lock:
        for (svc, metric, _instance, attrs), series in store.metric_series.series.items():
            if metric != semconv.METRIC_QUEUE_DEPTH or series.kind != "gauge" or service not in (None, svc):
                continue
            minutes = {m: float(v) for m, v in series.minutes.items() if m >= first_minute}
            if minutes:
                out[svc][str(dict(attrs).get(semconv.MONITOR_QUEUE_NAME, ""))].append(minutes)
    return out


def _rows(per_queue: dict[str, list[dict[int, float]]]) -> list[dict[str, Any]]:
    out = []
    for name, instances in sorted(per_queue.items()):
        newest = max(max(minutes) for minutes in instances)
        live = [minutes[max(minutes)] for minutes in instances if max(minutes) >= newest - _LIVE_MINUTES]
        totals: dict[int, float] = defaultdict(float)
        for minutes in instances:
            for minute, value in minutes.items():
                totals[minute] += value
        depth = sum(live)
        out.append(
            {
                "queue": name,
                "depth": depth,
                "peak": max(totals.values()),
                "instances": len(live),
                "limit": QUEUE_DEPTH_CRITICAL,
                "status": "critical" if depth > QUEUE_DEPTH_CRITICAL else "ok",
            }
        )
    return out

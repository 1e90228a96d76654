"""Alerts evaluated locally from the SLO thresholds, with acknowledgement.

The rules mirror the Prometheus rules generated from the same ``slos:``
section: success rate and latency percentile over the last 5 minutes, error
rate over the rule's ``for`` duration, cache hit rate, fallback share, and
dependency checks that are down.  An alert fires when its condition holds at
an evaluation and resolves at the first evaluation where it no longer does.
"""

from __future__ import annotations

import re
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from otel_monitor.console.aggregates import Queries
from otel_monitor.console.store import Store

ALERT_WINDOW = "5m"
# Fewer calls than this in the window say too little about a rate to page anyone.
MIN_CALLS = 5
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


@dataclass
class Alert:
    id: str
    rule: str
    service: str
    subject: str
    severity: str
    summary: str
    value: float | None
    threshold: float
    state: str = "firing"
    started: int = 0  # ms
    resolved: int | None = None
    acknowledged: bool = False
    acknowledged_at: int | None = None


def _seconds(duration: str) -> int:
    m = re.match(r"^(\d+)([smhd])$", duration)
    return int(m.group(1)) * _UNITS[m.group(2)] if m else 180


def _window_for(seconds: int) -> str:
    for name, minutes in (("5m", 5), ("15m", 15), ("1h", 60), ("4h", 240)):
        if seconds <= minutes * 60:
            return name
    return "24h"


def conditions(queries: Queries) -> list[Alert]:
    """Every alert condition that holds now."""
    slos = queries.slos
    found: list[Alert] = []
    for row in queries.operations(None, ALERT_WINDOW):
        t = slos.for_operation(row["operation"])
        svc, op = row["service"], row["operation"]
        if row["calls"] >= MIN_CALLS:
            state = t.success_state(row["success_rate"])
            if state != "ok":
                limit = t.success_critical if state == "critical" else t.success_warning
                found.append(Alert(f"success_rate:{svc}:{op}", "success_rate", svc, op, state,
                                   f"{op}: success rate {row['success_rate']:.1%} below {limit:.0%}",
                                   row["success_rate"], limit))
            if row["slo_latency"] is not None:
                state = t.latency_state(row["slo_latency"])
                if state != "ok":
                    limit = t.latency_critical if state == "critical" else t.latency_warning
                    found.append(Alert(f"latency:{svc}:{op}", "latency", svc, op, state,
                                       f"{op}: p{t.latency_percentile * 100:g} {row['slo_latency']:.3f}s "
                                       f"above {limit:g}s",
                                       row["slo_latency"], limit))
            if row["fallback_share"] is not None and row["fallback_share"] > t.fallback_warning:
                found.append(Alert(f"fallback_share:{svc}:{op}", "fallback_share", svc, op, "warning",
                                   f"{op}: {row['fallback_share']:.0%} of calls served by a fallback",
                                   row["fallback_share"], t.fallback_warning))
    for row in _error_rate_rows(queries):
        found.append(row)
    for (svc, cache), c in queries.cache_hit_rates(None, ALERT_WINDOW).items():
        limit = slos.defaults.cache_hit_warning
        if c["requests"] >= MIN_CALLS and c["hit_rate"] is not None and c["hit_rate"] < limit:
            found.append(Alert(f"cache_hit_rate:{svc}:{cache}", "cache_hit_rate", svc, cache, "warning",
                               f"cache {cache}: hit rate {c['hit_rate']:.0%} below {limit:.0%}", c["hit_rate"], limit))
    for check in queries.health(None, ALERT_WINDOW):
        if check["state"] != "up":
            severity = "critical" if check["critical"] and check["state"] == "down" else "warning"
            found.append(Alert(f"health:{check['service']}:{check['check']}", "health", check["service"],
                               check["check"], severity, f"check {check['check']} is {check['state']}",
                               check["value"], 1.0))
    return found


def _error_rate_rows(queries: Queries) -> list[Alert]:
    out = []
    by_window: dict[str, list[dict[str, Any]]] = {}
    for t in [queries.slos.defaults, *queries.slos.operations.values()]:
        window = _window_for(_seconds(t.error_rate_for))
        if window not in by_window:
            by_window[window] = queries.operations(None, window)
    for window, rows in by_window.items():
        for row in rows:
            t = queries.slos.for_operation(row["operation"])
            if _window_for(_seconds(t.error_rate_for)) != window or row["calls"] < MIN_CALLS:
                continue
            rate = row["errors"] / row["calls"]
            if rate > t.error_rate_critical:
                svc, op = row["service"], row["operation"]
                out.append(Alert(f"error_rate:{svc}:{op}", "error_rate", svc, op, "critical",
                                 f"{op}: error rate {rate:.1%} above {t.error_rate_critical:.0%} "
                                 f"over {t.error_rate_for}",
                                 rate, t.error_rate_critical))
    return out


class AlertBook:
    """Firing and resolved alerts; acknowledgements survive until the alert resolves."""

    def __init__(self, store: Store, on_ack: Callable[[str, int], None] | None = None,
                 keep_resolved: int = 200) -> None:
        self.store = store
        self.firing: dict[str, Alert] = {}
        self.resolved: deque[Alert] = deque(maxlen=keep_resolved)
        self.acknowledged: dict[str, int] = {}  # restored from the database
        self._on_ack = on_ack
        self._lock = threading.Lock()

    def evaluate(self, now_ns: int | None = None) -> None:
        now_ms = (now_ns or time.time_ns()) // 1_000_000
        holding = {a.id: a for a in conditions(Queries(self.store, now_ns))}
        with self._lock:
            for alert_id, alert in holding.items():
                current = self.firing.get(alert_id)
                if current is None:
                    alert.started = now_ms
                    if alert_id in self.acknowledged:
                        alert.acknowledged, alert.acknowledged_at = True, self.acknowledged[alert_id]
                    self.firing[alert_id] = alert
                else:  # keep start and acknowledgement, refresh value and severity
                    current.value, current.severity, current.summary = alert.value, alert.severity, alert.summary
            for alert_id in [a for a in self.firing if a not in holding]:
                alert = self.firing.pop(alert_id)
                alert.state, alert.resolved = "resolved", now_ms
                self.acknowledged.pop(alert_id, None)
                self.resolved.appendleft(alert)

    def acknowledge(self, alert_id: str) -> bool:
        with self._lock:
            alert = self.firing.get(alert_id)
            if alert is None:
                return False
            alert.acknowledged, alert.acknowledged_at = True, int(time.time() * 1000)
            self.acknowledged[alert_id] = alert.acknowledged_at
        if self._on_ack:
            self._on_ack(alert_id, alert.acknowledged_at)
        return True

    def as_json(self, service: str | None) -> dict[str, Any]:
        with self._lock:
            firing = [asdict(a) for a in self.firing.values() if not service or a.service == service]
            resolved = [asdict(a) for a in self.resolved if not service or a.service == service]
        order = {"critical": 0, "warning": 1}
        firing.sort(key=lambda a: (order.get(a["severity"], 2), a["started"]))
        return {"firing": firing, "resolved": resolved}

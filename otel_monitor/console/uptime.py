"""Uptime objectives in the console: probed URLs and health checks, up how much of the last
30 days, against the config file's ``uptime:`` objectives.

A probed URL's sample is one probe (``httpcheck.status``, from ``otel-monitor probe`` or the
collector's httpcheck receiver): up when it answered 2xx. A health check's sample is one
``monitor.health.status`` report of one instance: up when not down (degraded still serves).
Samples are counted per hour and kept for the objective's 30 days; the uptime is the share
of samples that were up, as the generated rules compute it.
"""

from __future__ import annotations

import threading
from array import array
from dataclasses import dataclass, field
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from otel_monitor import semconv
from otel_monitor.semantics.uptime import Uptime

HOUR_NS = 3600 * 10**9
WINDOW_HOURS = 30 * 24
MAX_TARGETS = 1000
MINUTE_NS = 60 * 10**9
# Minutes counted one by one for the burn-rate alerts' windows: the longest is 3 days, and a
# window of w minutes reads w + 1 of them (Prometheus 2.x includes both ends of a range).
MINUTES_KEPT = 3 * 24 * 60 + 1


class _MinuteCounts:
    """Samples and ups per minute of the last :data:`MINUTES_KEPT`, in fixed arrays (a ring)."""

    def __init__(self) -> None:
        self.minute = array("q", [-1]) * MINUTES_KEPT
        self.samples = array("I", [0]) * MINUTES_KEPT
        self.up = array("I", [0]) * MINUTES_KEPT

    def add(self, minute: int, up: bool) -> None:
        i = minute % MINUTES_KEPT
        if self.minute[i] != minute:
            if self.minute[i] > minute:
                return  # older than what the ring holds
            self.minute[i], self.samples[i], self.up[i] = minute, 0, 0
        self.samples[i] += 1
        self.up[i] += up

    def window(self, now_minute: int, minutes: int) -> tuple[int, int]:
        """(samples, up) of the minutes from ``now_minute - minutes`` to ``now_minute``, both included."""
        samples = up = 0
        for m in range(now_minute - min(minutes, MINUTES_KEPT - 1), now_minute + 1):
            i = m % MINUTES_KEPT
            if self.minute[i] == m:
                samples += self.samples[i]
                up += self.up[i]
        return samples, up


@dataclass
class _Target:
    kind: str  # "probe" or "health_check"
    service: str
    target: str  # the URL or the check's name
    method: str | None = None
    hours: dict[int, list[int]] = field(default_factory=dict)  # hour -> [samples, up]
    seen: dict[str, int] = field(default_factory=dict)  # instance -> newest sample time (re-sent points skip)
    last_ns: int = 0
    last_up: bool | None = None
    minutes: _MinuteCounts | None = None  # made at the first sample: only watched targets get one
    # (hour, samples, up) of the 30-day window's complete hours before that hour: summed once an hour,
    # not at every alert evaluation; a late sample for one of them drops it.
    closed: tuple[int, int, int] | None = None
    status_code: int | None = None
    duration_ms: float | None = None
    error: str | None = None

    def add(self, source: str, t: int, up: bool) -> bool:
        if t <= self.seen.get(source, 0):
            return False
        self.seen[source] = t
        hour = t // HOUR_NS
        if self.closed is not None and hour < self.closed[0]:
            self.closed = None
        counts = self.hours.setdefault(hour, [0, 0])
        counts[0] += 1
        counts[1] += up
        if self.minutes is None:
            self.minutes = _MinuteCounts()
        self.minutes.add(t // MINUTE_NS, up)
        for old in [h for h in self.hours if h <= hour - WINDOW_HOURS]:
            del self.hours[old]
        if t >= self.last_ns:
            self.last_ns, self.last_up = t, up
        return True

    def month(self, now_hour: int) -> tuple[int, int]:
        """(samples, up) of the 30 days up to the end of ``now_hour``."""
        if self.closed is None or self.closed[0] != now_hour:
            first = now_hour - WINDOW_HOURS + 1
            kept = [c for h, c in self.hours.items() if first <= h < now_hour]
            self.closed = (now_hour, sum(c[0] for c in kept), sum(c[1] for c in kept))
        samples, up = self.hours.get(now_hour, (0, 0))
        return self.closed[1] + samples, self.closed[2] + up


class UptimeBook:
    """Samples per probed URL and health check, from the metric points the console receives."""

    def __init__(self, uptime: Uptime) -> None:
        self.uptime = uptime
        self._targets: dict[tuple[str, ...], _Target] = {}
        self._lock = threading.Lock()
        self.dropped_targets = 0

    def _target(self, key: tuple[str, ...], make: Any) -> _Target | None:
        target = self._targets.get(key)
        if target is None:
            if len(self._targets) >= MAX_TARGETS:
                self.dropped_targets += 1
                return None
            target = self._targets[key] = make()
        return target

    def add_points(self, points: list[dict[str, Any]]) -> None:
        with self._lock:
            for point in points:
                name = point["name"]
                if name in _PROBE_METRICS:
                    self._add_probe_point(point)
                elif name == semconv.METRIC_HEALTH_STATUS:
                    self._add_health_point(point)

    def _add_probe_point(self, point: dict[str, Any]) -> None:
        attrs = point["attributes"]
        service = str(point["resource"].get(semconv.SERVICE_NAME, "unknown_service"))
        url = attrs.get(semconv.HTTPCHECK_URL)
        value, t = point.get("value"), int(point["time_unix_nano"])
        if not isinstance(url, str) or not isinstance(value, (int, float)):
            return
        name = point["name"]
        if name == semconv.METRIC_HTTPCHECK_STATUS:
            if attrs.get(semconv.HTTPCHECK_STATUS_CLASS) != "2xx":
                return  # one sample per probe: its 2xx point says up or not
            method = str(attrs.get(semconv.HTTPCHECK_METHOD) or "GET")
            target = self._target(("probe", service, url, method), lambda: _Target("probe", service, url, method))
            if target is not None and target.add("", t, value == 1):
                if t >= target.last_ns:
                    code = attrs.get(semconv.HTTPCHECK_STATUS_CODE)
                    target.status_code = int(code) if isinstance(code, (int, float)) else None
                    target.error = None if value == 1 or target.status_code else target.error
            return
        for target in self._targets.values():
            if target.kind == "probe" and target.service == service and target.target == url:
                if name == semconv.METRIC_HTTPCHECK_DURATION and t >= target.last_ns:
                    target.duration_ms = float(value)
                elif name == semconv.METRIC_HTTPCHECK_ERROR and t >= target.last_ns:
                    target.error = str(attrs.get(semconv.HTTPCHECK_ERROR_MESSAGE) or "no answer")

    def _add_health_point(self, point: dict[str, Any]) -> None:
        value = point.get("value")
        if point["type"] != "gauge" or not isinstance(value, (int, float)):
            return
        resource = point["resource"]
        service = str(resource.get(semconv.SERVICE_NAME, "unknown_service"))
        check = str(point["attributes"].get(semconv.MONITOR_HEALTH_CHECK) or "")
        target = self._target(("health_check", service, check), lambda: _Target("health_check", service, check))
        if target is not None:
            instance = str(resource.get(semconv.SERVICE_INSTANCE_ID, ""))
            target.add(instance, int(point["time_unix_nano"]), value > 0)

    def _objective(self, target: _Target) -> float | None:
        if not self.uptime.configured:
            return None
        if target.kind == "health_check":
            return self.uptime.health_objective(target.target)
        for probe in self.uptime.probes:
            if probe.url == target.target and probe.method == target.method:
                return probe.objective
        return self.uptime.objective

    def rows(self, service: str | None = None) -> list[dict[str, Any]]:
        """One row per probed URL and health check: uptime, objective, downtime budget left, last answer."""
        with self._lock:
            targets = [t for t in self._targets.values() if service is None or t.service == service]
            rows = []
            for t in sorted(targets, key=lambda t: (t.kind != "probe", t.service, t.target)):
                samples = sum(c[0] for c in t.hours.values())
                up = sum(c[1] for c in t.hours.values())
                uptime = up / samples if samples else None
                objective = self._objective(t)
                budget_left = None
                if uptime is not None and objective is not None:
                    budget_left = 1 - (1 - uptime) / (1 - objective)
                rows.append(
                    {
                        "kind": t.kind,
                        "service": t.service,
                        "target": t.target,
                        "method": t.method,
                        "samples": samples,
                        "down": samples - up,
                        "uptime": uptime,
                        "objective": objective,
                        "met": None if uptime is None or objective is None else uptime >= objective,
                        "budget_left": budget_left,
                        "up": t.last_up,
                        "status_code": t.status_code,
                        "duration_ms": t.duration_ms,
                        "error": t.error,
                        "last_seen": t.last_ns // 10**6 if t.last_ns else None,
                    }
                )
            return rows

    def objective_uptimes(self, now_ns: int, services: list[str] | None = None) -> list[dict[str, Any]]:
        """The targets the generated ``UptimeBelowObjective`` rules watch, with their uptime over the
        30 days up to ``now_ns``: the probes the config lists (per service and URL, any method, as
        ``monitor:probe_up`` is), and every health check (its own objective, else the default).
        Each entry: kind, service, target, uptime, objective, uptime_target (the rule's label), and
        ``over(minutes)``: the uptime of the last ``minutes`` (the burn-rate windows), worked out
        when asked, as most evaluations need none of them."""
        if not self.uptime.configured:
            return []
        now_hour = now_ns // HOUR_NS
        listed: dict[str, float] = {}
        for probe in self.uptime.probes:
            listed.setdefault(probe.url, probe.objective)
        counts: dict[tuple[str, str, str], list[int]] = {}
        members: dict[tuple[str, str, str], list[_Target]] = {}
        with self._lock:
            for t in self._targets.values():
                if services is not None and t.service not in services:
                    continue
                if t.kind == "probe" and t.target not in listed:
                    continue
                total = counts.setdefault((t.kind, t.service, t.target), [0, 0])
                members.setdefault((t.kind, t.service, t.target), []).append(t)
                samples, up = t.month(now_hour)
                total[0] += samples
                total[1] += up
        out = []
        for (kind, service, target), (samples, up) in sorted(counts.items()):
            if not samples:
                continue
            if kind == "probe":
                objective, label = listed[target], target
            else:
                objective = self.uptime.health_objective(target)
                label = target if target in self.uptime.health_checks else "default"
            out.append(
                {
                    "kind": kind,
                    "service": service,
                    "target": target,
                    "uptime": up / samples,
                    "objective": objective,
                    "uptime_target": label,
                    "over": self._over(members[(kind, service, target)], now_ns // MINUTE_NS),
                }
            )
        return out

    def _over(self, targets: list[_Target], now_minute: int) -> Any:
        def over(minutes: int) -> float | None:
            samples = up = 0
            with self._lock:
                for t in targets:
                    if t.minutes is not None:
                        s, u = t.minutes.window(now_minute, minutes)
                        samples, up = samples + s, up + u
            return up / samples if samples else None

        return over


_PROBE_METRICS = frozenset(
    {semconv.METRIC_HTTPCHECK_STATUS, semconv.METRIC_HTTPCHECK_DURATION, semconv.METRIC_HTTPCHECK_ERROR}
)


async def uptime_objectives(request: Request) -> JSONResponse:
    """Uptime of each probed URL and health check over the last 30 days, against its objective.
    ---
    summary: Uptime of probed URLs and health checks over 30 days, against their objectives
    parameters:
      - $ref: '#/components/parameters/service'
    responses:
      200:
        description: one row per probed URL and per health check
        content:
          application/json:
            schema:
              type: object
              required: [window, objectives]
              properties:
                window: {type: string}
                objectives: {type: array, items: {type: object}}
    """
    book: UptimeBook = request.app.state.console.uptime
    service = request.query_params.get("service") or None
    return JSONResponse({"window": "30d", "objectives": book.rows(service)})


ROUTE = Route("/api/uptime", uptime_objectives)

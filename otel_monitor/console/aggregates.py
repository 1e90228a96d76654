"""The questions the console's views ask of the store.

Operation statistics come from the ``monitor.operation.duration`` metric when
a service sends it (every call, even under trace sampling) and from operation
spans otherwise; each answer says which (``source``), and a 4xx answer is a
success from either.  Percentiles are interpolated linearly within the bucket
holding the call, as Prometheus' ``histogram_quantile`` does, narrowed to the
observed min and max, and come with their relative error bound
(``percentile_error``).  Throughput is the rate over the last minute of data
(:meth:`Queries.throughput`), whatever the window of the counts.
"""

from __future__ import annotations

import time
from collections import defaultdict
from typing import Any

from otel_monitor import semconv
from otel_monitor.console.error_groups import app_frames
from otel_monitor.console.liveness import instance_stale, service_liveness
from otel_monitor.console.queues import queue_depths_by_service
from otel_monitor.console.rollups import HOUR_NS, LONG_WINDOWS, MEMORY_HOURS, HourlyRollups, long_window_hours
from otel_monitor.console.store import AMOUNT_COUNT, AMOUNT_SUM, MINUTE_NS, Histogram, ServiceRollups, Store
from otel_monitor.semantics.slo import SLOs, Thresholds

# Throughput is a rate over the last minute, whatever the window of the counts.
THROUGHPUT_WINDOW_NS = MINUTE_NS
WINDOWS: dict[str, int] = {"5m": 5, "15m": 15, "1h": 60, "4h": 240, "24h": 1440}
STATES = ("ok", "warning", "critical")
# A service or check with no data for longer than its stale-after (otel_monitor.console.liveness).
STALE = "stale"
_MAX_INSTANCES_SHOWN = 50


def window_minutes(window: str) -> int:
    """Minutes of a window name (the long ones too); ``ValueError`` naming the choices."""
    hours = long_window_hours(window)
    if hours is not None:
        return hours * 60
    try:
        return WINDOWS[window]
    except KeyError:
        raise ValueError(f"unknown window {window!r}; use one of {', '.join([*WINDOWS, *LONG_WINDOWS])}") from None


def worst(*states: str) -> str:
    return max(states, key=STATES.index, default="ok")


def _round(value: float | None, digits: int = 6) -> float | None:
    return None if value is None else round(value, digits)


class Queries:
    """Read-only views over a :class:`Store` for one moment (``now_ns``)."""

    def __init__(self, store: Store, now_ns: int | None = None, rollups: HourlyRollups | None = None) -> None:
        self.store = store
        self.slos: SLOs = store.slos
        self.now_ns = now_ns or time.time_ns()
        self.rollups = rollups

    def _first_minute(self, window: str) -> int:
        span = self._long(window)
        if span is not None:
            return span[0] * 60
        return self.now_ns // MINUTE_NS - window_minutes(window) + 1

    def _long(self, window: str) -> tuple[int, int] | None:
        """(first hour, cut hour) of a 7- or 30-day window: hourly roll-ups before the cut, the
        store's minutes from it (the last day, complete in memory); None for the other windows."""
        hours = long_window_hours(window)
        if hours is None:
            return None
        if self.rollups is None:
            raise ValueError(f"window={window} needs the hourly roll-ups: start the console with --db")
        now_hour = self.now_ns // HOUR_NS
        first = now_hour - hours + 1
        return first, max(first, now_hour - MEMORY_HOURS)

    def _memory_first(self, window: str) -> int:
        """The first minute the store answers for: the window's, or the cut of a long one."""
        span = self._long(window)
        return span[1] * 60 if span is not None else self._first_minute(window)

    def services(self) -> list[str]:
        return sorted(self.store.services)

    def _rollups(self, service: str | None) -> list[tuple[str, ServiceRollups]]:
        """One service's roll-ups (none when unknown), or every service's; call under the store's lock."""
        if service:
            found = self.store.rollups.get(service)
            return [] if found is None else [(service, found)]
        return list(self.store.rollups.items())

    # --- operations --------------------------------------------------------
    @staticmethod
    def _op_table(rollups: ServiceRollups, first: int) -> tuple[str, dict[tuple[str, int], Histogram]]:
        """Metrics when the service sent the duration histogram in the window, else spans."""
        if rollups.metrics_minute >= first:
            return "metrics", rollups.op_metrics
        return "spans", rollups.op_spans

    def operation_histograms(self, service: str | None, window: str) -> dict[tuple[str, str], tuple[str, Histogram]]:
        """(service, operation) -> (source, histogram merged over the window)."""
        first = self._memory_first(window)
        out: dict[tuple[str, str], tuple[str, Histogram]] = {}
        span = self._long(window)
        if span is not None and self.rollups is not None:
            for (svc, op), (source, hist) in self.rollups.operations(*span).items():
                if service in (None, svc):
                    out[(svc, op)] = (source, Histogram())
                    out[(svc, op)][1].merge(hist)  # a copy: the roll-ups keep theirs for the next view
        with self.store.lock:
            for svc, rollups in self._rollups(service):
                source, table = self._op_table(rollups, first)
                for (op, minute), hist in table.items():
                    if minute < first:
                        continue
                    merged = out.get((svc, op))
                    if merged is None:
                        merged = out[(svc, op)] = (source, Histogram())
                    merged[1].merge(hist)
        return out

    def _counter_sums(
        self, metric: str, service: str | None, window: str
    ) -> dict[tuple[str, tuple[tuple[str, Any], ...]], float]:
        first = self._memory_first(window)
        out: dict[tuple[str, tuple[tuple[str, Any], ...]], float] = defaultdict(float)
        span = self._long(window)
        if span is not None and self.rollups is not None:
            for (svc, attrs), value in self.rollups.counter_sums(metric, *span).items():
                if service in (None, svc):
                    out[(svc, attrs)] += value
        with self.store.lock:
            for svc, rollups in self._rollups(service):
                for (name, minute, attrs), value in rollups.counters.items():
                    if name == metric and minute >= first:
                        out[(svc, attrs)] += value
        return out

    def cache_hit_rates(
        self, service: str | None, window: str, by: str = semconv.MONITOR_CACHE_NAME
    ) -> dict[tuple[str, str], dict[str, float]]:
        """(service, cache name) -> {requests, hits, hit_rate}; ``by`` another attribute (the operation)
        groups by it instead, leaving out lookups without it."""
        out: dict[tuple[str, str], dict[str, float]] = {}
        for (svc, attrs), value in self._counter_sums(semconv.METRIC_CACHE_REQUESTS, service, window).items():
            a = dict(attrs)
            if by not in a:
                continue
            entry = out.setdefault((svc, str(a[by])), {"requests": 0.0, "hits": 0.0})
            entry["requests"] += value
            if a.get(semconv.MONITOR_CACHE_HIT) in (True, "true"):
                entry["hits"] += value
        for entry in out.values():
            entry["hit_rate"] = entry["hits"] / entry["requests"] if entry["requests"] else None  # type: ignore[assignment]
        return out

    def business(self, service: str, window: str) -> dict[str, Any]:
        """The service's business KPIs in the window: amounts (total, count, average) per KPI and
        currency, event counts per KPI, and distinct users per KPI with the returning share."""
        amounts: dict[tuple[str, str], dict[str, float]] = {}
        for metric, field in ((AMOUNT_SUM, "total"), (AMOUNT_COUNT, "count")):
            for (_, attrs), value in self._counter_sums(metric, service, window).items():
                a = dict(attrs)
                key = (str(a.get(semconv.MONITOR_KPI, "")), str(a.get(semconv.MONITOR_BUSINESS_CURRENCY, "")))
                amounts.setdefault(key, {"total": 0.0, "count": 0.0})[field] += value
        counts: dict[str, float] = defaultdict(float)
        for (_, attrs), value in self._counter_sums(semconv.METRIC_BUSINESS_EVENTS, service, window).items():
            counts[str(dict(attrs).get(semconv.MONITOR_KPI, ""))] += value
        users: dict[str, dict[str, float]] = {}
        for (_, attrs), value in self._counter_sums(semconv.METRIC_BUSINESS_USERS, service, window).items():
            a = dict(attrs)
            entry = users.setdefault(str(a.get(semconv.MONITOR_KPI, "")), {"users": 0.0, "returning": 0.0})
            entry["users"] += value
            if a.get(semconv.MONITOR_BUSINESS_RETURNING) in (True, "true"):
                entry["returning"] += value
        return {
            "amounts": [
                {
                    "kpi": k,
                    "currency": c,
                    "total": _round(v["total"]),
                    "count": v["count"],
                    "average": _round(v["total"] / v["count"]) if v["count"] else None,
                }
                for (k, c), v in sorted(amounts.items())
            ],
            "counts": dict(sorted(counts.items())),
            "users": [
                {
                    "kpi": k,
                    "users": v["users"],
                    "returning": v["returning"],
                    "return_rate": _round(v["returning"] / v["users"]) if v["users"] else None,
                }
                for k, v in sorted(users.items())
            ],
        }

    def fallbacks(self, service: str | None, window: str) -> dict[tuple[str, str], float]:
        """(service, operation) -> calls served by a non-primary layer; 0 for every
        operation of a service that reports fallbacks at all (absent: unknown)."""
        out: dict[tuple[str, str], float] = defaultdict(float)
        for (svc, attrs), value in self._counter_sums(semconv.METRIC_FALLBACKS, service, window).items():
            a = dict(attrs)
            key = (svc, str(a.get(semconv.MONITOR_OPERATION, "")))
            out[key] += value if a.get(semconv.MONITOR_SERVICE_LAYER, "fallback") != "primary" else 0.0
        return out

    def operation_row(
        self, service: str, operation: str, source: str, hist: Histogram, fallbacks: float | None, window: str
    ) -> dict[str, Any]:
        t = self.slos.for_operation(operation)
        calls = hist.count
        success = (calls - hist.errors) / calls if calls else None
        latency = hist.percentile(t.latency_percentile)
        row = {
            "service": service,
            "operation": operation,
            "source": source,
            "calls": calls,
            "errors": hist.errors,
            "success_rate": _round(success),
            **self.throughput(service, operation, source),
            **latency_fields(hist),
            "mean": _round(hist.sum / calls if calls else None),
            "slo_percentile": t.latency_percentile,
            "slo_latency": _round(latency),
            "fallback_share": _round(fallbacks / calls) if calls and fallbacks is not None else None,
            "error_categories": dict(hist.categories),
            **client_error_fields(hist),
        }
        row["status"] = self.operation_state(t, row)
        return row

    def throughput(self, service: str, operation: str | None, source: str) -> dict[str, Any]:
        """Calls per second over the last minute: the calls in the last 60 s of the
        service's data (or since the first call, if it is younger), over that span.

        The minute ends at the service's newest data (its last metric export, or
        its last span), so calls still on their way are not counted as missing;
        when that is over two minutes old, it ends now and the rate is 0.
        ``throughput_window`` gives the span counted, in ms since the epoch.
        """
        with self.store.lock:
            rollups = self.store.rollups.get(service)
            table = rollups.timelines if rollups is not None else {}
            mine = [(op, t) for (src, op, _), t in table.items() if src == source]
            if not mine:
                return {"throughput_per_s": None, "throughput_window": None}
            end = max(t.last_ns for _, t in mine)
            if self.now_ns - end > 2 * MINUTE_NS:
                end = self.now_ns
            timelines = [t for op, t in mine if operation is None or op == operation]
            if not timelines:
                return {"throughput_per_s": 0.0, "throughput_window": None}
            first = min(t.start_ns for t in timelines)
            # A rate from less than a second of data says little: count at least one.
            span = max(min(THROUGHPUT_WINDOW_NS, end - first), 1_000_000_000)
            calls = sum(t.at(end) - t.at(end - span) for t in timelines)
        return {
            "throughput_per_s": _round(calls / (span / 1e9)),
            "throughput_window": {"start": (end - span) // 1_000_000, "end": end // 1_000_000},
        }

    @staticmethod
    def operation_state(t: Thresholds, row: dict[str, Any]) -> str:
        if not row["calls"]:
            return "ok"
        state = t.success_state(row["success_rate"])
        if row["slo_latency"] is not None:
            state = worst(state, t.latency_state(row["slo_latency"]))
        return state

    def operations(self, service: str | None, window: str) -> list[dict[str, Any]]:
        fallbacks = self.fallbacks(service, window)
        caches = self.cache_hit_rates(service, window)
        by_operation = self.cache_hit_rates(service, window, by=semconv.MONITOR_OPERATION)
        reporting = {s for s, _ in fallbacks}
        rows = []
        for (svc, op), (source, hist) in sorted(self.operation_histograms(service, window).items()):
            fallback_count = fallbacks.get((svc, op), 0.0) if svc in reporting else None
            row = self.operation_row(svc, op, source, hist, fallback_count, window)
            # Only operations that use a cache get a hit rate: the lookups made in the
            # operation (the counter's monitor.operation), else a cache named after it.
            cache = by_operation.get((svc, op)) or caches.get((svc, op))
            row["cache_hit_rate"] = _round(cache["hit_rate"]) if cache and cache["hit_rate"] is not None else None
            rows.append(row)
        return rows

    def operation_series(self, service: str | None, operation: str | None, window: str) -> list[dict[str, Any]]:
        """Per-time-step calls, errors and p95 (steps of 1 minute up to 1h, then coarser)."""
        minutes = window_minutes(window)
        step = max(1, minutes // 60)
        if self._long(window) is not None:
            step = -(-step // 60) * 60  # whole hours: the roll-ups are hourly
        first = self._first_minute(window)
        buckets: dict[int, Histogram] = defaultdict(Histogram)
        span = self._long(window)
        if span is not None and self.rollups is not None:
            for (svc, op, i), hist in self.rollups.operation_steps(span[0], span[1], step // 60).items():
                if service in (None, svc) and operation in (None, op):
                    buckets[i].merge(hist)
        memory_first = self._memory_first(window)
        with self.store.lock:
            for _, rollups in self._rollups(service):
                _, table = self._op_table(rollups, memory_first)
                for (op, minute), hist in table.items():
                    if minute >= memory_first and (operation is None or op == operation):
                        buckets[(minute - first) // step].merge(hist)
        out = []
        for i in range(-(-minutes // step)):
            hist = buckets.get(i) or Histogram()
            out.append(
                {
                    "t": (first + i * step) * MINUTE_NS // 1_000_000,
                    "calls": hist.count,
                    "errors": hist.errors,
                    "p95": _round(hist.percentile(0.95)),
                }
            )
        return out

    # --- services ------------------------------------------------------------
    def summary(self, service: str | None, window: str) -> list[dict[str, Any]]:
        rows = self.operations(service, window)
        # Checks' state is now; their uptime over a long window is the last day's (kept in memory).
        health = self.health(service, "24h" if self._long(window) else window)
        rows_of: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for r in rows:
            rows_of[r["service"]].append(r)
        checks_of: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for c in health:
            checks_of[c["service"]].append(c)
        # Queue depths are gauges kept per minute for the last day: a long window shows that day.
        queues_of = queue_depths_by_service(self.store, self._memory_first(window))
        out = []
        for svc in [service] if service else self.services():
            mine = rows_of.get(svc, [])
            total = Histogram()
            for _source, hist in self.operation_histograms(svc, window).values():
                total.merge(hist)
            checks = checks_of.get(svc, [])
            status = worst(*(r["status"] for r in mine), *(_check_state(c) for c in checks))
            out.append(
                {
                    "service": svc,
                    "status": status,
                    "source": mine[0]["source"] if mine else None,
                    "calls": total.count,
                    "errors": total.errors,
                    **self.throughput(svc, None, mine[0]["source"] if mine else "spans"),
                    "error_rate": _round(total.errors / total.count) if total.count else None,
                    **client_error_fields(total),
                    "cache_hit_rate": _service_hit_rate(self.cache_hit_rates(svc, window), svc),
                    **latency_fields(total),
                    "operations": len(mine),
                    "unhealthy_operations": [r["operation"] for r in mine if r["status"] != "ok"],
                    "failing_checks": [c["check"] for c in checks if c["state"] != "up"],
                    "series": self.operation_series(svc, None, window),
                    "business": self.business(svc, window),
                    "queues": queues_of.get(svc, []),
                }
            )
        for row in out:
            self._add_liveness(row)
        return out

    # --- liveness --------------------------------------------------------------
    def _silent(self, last_seen_ns: int, service: str | None = None, instance: str | None = None) -> bool:
        """Silent for longer than the instance's stale-after (a number of its export intervals, once known)."""
        if service is None or instance is None:
            return self.now_ns - last_seen_ns > self.store.stale_after_ns
        return instance_stale(self.store, service, instance, last_seen_ns, self.now_ns)

    def instances(self, service: str) -> list[dict[str, Any]]:
        """The service's instances (service.instance.id), live first, newest first."""
        with self.store.lock:
            rollups = self.store.rollups.get(service)
            kept = self.store.instances
            seen = [(i, kept[(service, i)]) for i in (rollups.instances if rollups else ()) if (service, i) in kept]
        seen.sort(key=lambda it: (self._silent(it[1], service, it[0]), -it[1]))
        rows = []
        for i, t in seen[:_MAX_INSTANCES_SHOWN]:
            with self.store.lock:
                usage = self.store.instance_usage.get((service, i))
            # CPU in cores busy (user + system) and resident memory, from the instance's runtime metrics.
            rows.append(
                {
                    "instance": i,
                    "last_seen": t // 1_000_000,
                    "stale": self._silent(t, service, i),
                    "export_interval_s": _seconds_or_none(self.store.export_cadence.interval_ns(service, i)),
                    "cpu_cores": _round(usage.cpu_cores, 4) if usage else None,
                    "memory_bytes": usage.memory_bytes if usage else None,
                }
            )
        return rows

    def _add_liveness(self, row: dict[str, Any]) -> None:
        """Last seen, silence and instances of a summary row; a silent service is "stale", never OK."""
        with self.store.lock:
            seen = self.store.services.get(row["service"])
            stale, stale_after_ns = service_liveness(self.store, row["service"], self.now_ns)
        row["last_seen"] = None if seen is None else seen // 1_000_000
        row["silent_s"] = None if seen is None else _round(max(0, self.now_ns - seen) / 1e9, 3)
        row["stale_after_s"] = stale_after_ns / 1e9
        row["stale"] = stale
        instances = self.instances(row["service"])
        row["instances"] = instances
        row["live_instances"] = sum(1 for i in instances if not i["stale"])
        if row["stale"]:
            row["status"] = STALE

    # --- metrics ---------------------------------------------------------------
    def metrics(self, service: str | None, window: str) -> list[dict[str, Any]]:
        """Every metric received in the window (ours and the app's own): kind, unit and last value."""
        since = self._first_minute(window) * MINUTE_NS
        with self.store.lock:
            entries = [
                dict(e, series=len(e["series"]))
                for e in self.store.metric_catalog.values()
                if (not service or e["service"] == service) and e.get("time_unix_nano", 0) >= since
            ]
        return [
            {
                "service": e["service"],
                "name": e["name"],
                "kind": e["kind"],
                "unit": e["unit"],
                "temporality": e.get("temporality"),
                "monotonic": e.get("monotonic"),
                "series": e["series"],
                "points": e["points"],
                "last_value": e["value"],
                "last_attributes": e["attributes"],
                "last_seen": e["time_unix_nano"] // 1_000_000,
            }
            for e in sorted(entries, key=lambda e: (e["service"], e["name"]))
        ]

    # --- errors ----------------------------------------------------------------
    def errors(self, service: str | None, window: str) -> list[dict[str, Any]]:
        """Error groups with failures in the window, the most harmful first.

        ``count`` is the failed requests whose root cause the group is (one per
        trace), ``users`` the distinct users among them, ``occurrences`` the
        failed spans they left (client, server, parent spans).
        """
        first = self._first_minute(window)
        since_ns = first * MINUTE_NS
        out: list[dict[str, Any]] = []
        with self.store.lock:
            for group in self.store.errors.values():
                if service and group.service != service:
                    continue
                count = sum(c for m, c in group.per_minute.items() if m >= first)
                if count <= 0:
                    continue
                out.append(
                    {
                        "service": group.service,
                        "fingerprint": group.fingerprint,
                        "category": group.category,
                        "error_type": group.error_type,
                        "operation": group.operation,
                        "count": count,
                        "requests": count,
                        "users": sum(1 for t in group.users.values() if t >= since_ns),
                        "occurrences": sum(c for m, c in group.occurrences_per_minute.items() if m >= first),
                        "total": group.count,
                        "first_seen": group.first_seen_ns // 1_000_000,
                        "last_seen": group.last_seen_ns // 1_000_000,
                        "message": group.message,
                        "stacktrace": group.stacktrace,
                        "app_frames": app_frames(group.stacktrace),
                        "trace_ids": list(group.trace_ids),
                    }
                )
        # Impact first: failed requests, then users failed, then how often it shows.
        out.sort(key=lambda g: (-g["requests"], -g["users"], -g["occurrences"], -g["last_seen"]))
        return out

    # --- traces ----------------------------------------------------------------
    def traces(self, service: str | None, window: str, kind: str = "recent", limit: int = 50) -> list[dict[str, Any]]:
        if kind not in ("recent", "slow", "failed"):
            raise ValueError(f"unknown trace list {kind!r}; use recent, slow or failed")
        since = (self._first_minute(window)) * MINUTE_NS
        with self.store.lock:
            found = [
                t
                for t in reversed(self.store.traces.values())
                if t.end_ns >= since and (not service or service in t.services) and (kind != "failed" or t.error)
            ]
            if kind == "slow":
                found.sort(key=lambda t: t.start_ns - t.end_ns)
            return [t.row() for t in found[:limit]]

    def trace(self, trace_id: str) -> dict[str, Any] | None:
        with self.store.lock:
            t = self.store.traces.get(trace_id.lower())
            logs = list(self.store.logs_by_trace.get(trace_id.lower(), ()))
            if t is None and not logs:
                return None
            spans = sorted(t.spans if t else [], key=lambda s: s["start_time_unix_nano"])
        start = min((s["start_time_unix_nano"] for s in spans), default=0)
        return {
            "trace_id": trace_id.lower(),
            "start": start // 1_000_000,
            "duration_ms": (max((s["end_time_unix_nano"] for s in spans), default=start) - start) / 1e6,
            "spans": [
                {
                    "span_id": s["span_id"],
                    "parent_span_id": s["parent_span_id"],
                    "name": s["name"],
                    "service": s["service"],
                    "kind": s["kind"],
                    "offset_ms": (s["start_time_unix_nano"] - start) / 1e6,
                    "duration_ms": (s["end_time_unix_nano"] - s["start_time_unix_nano"]) / 1e6,
                    "status_code": s["status_code"],
                    "status_message": s["status_message"],
                    "attributes": s["attributes"],
                    "events": s["events"],
                }
                for s in spans
            ],
            "logs": [
                {
                    "time": r["time_unix_nano"] // 1_000_000,
                    "service": r["service"],
                    "severity": r["severity_text"],
                    "body": r["body"],
                    "span_id": r["span_id"],
                    "event_name": r["event_name"],
                    "attributes": r["attributes"],
                }
                for r in logs
            ],
        }

    # --- journeys ----------------------------------------------------------------
    def funnels(self, service: str | None, window: str, declared: dict[str, list[str]]) -> list[dict[str, Any]]:
        """Users per step (distinct pseudo ids reaching it in the window) and conversion."""
        since = self._first_minute(window) * MINUTE_NS
        with self.store.lock:
            names = list(declared) + [j for j in self.store.journey_step_order if j not in declared]
            out = []
            for journey in names:
                steps = declared.get(journey) or self.store.journey_step_order[journey]
                counts = []
                for step in steps:
                    users: set[str] = set()
                    for _, rollups in self._rollups(service):
                        seen = rollups.journeys.get((journey, step))
                        if seen:
                            users.update(u for u, t in seen.items() if t >= since)
                    counts.append(len(users))
                rows = []
                for i, (step, users_at) in enumerate(zip(steps, counts, strict=True)):
                    previous = counts[i - 1] if i else None
                    rows.append(
                        {
                            "step": step,
                            "users": users_at,
                            "conversion_from_previous": _round(users_at / previous, 4) if previous else None,
                            "conversion_from_first": _round(users_at / counts[0], 4) if counts[0] else None,
                        }
                    )
                out.append({"journey": journey, "declared": journey in declared, "steps": rows})
        return out

    # --- health ----------------------------------------------------------------
    def health(self, service: str | None, window: str) -> list[dict[str, Any]]:
        first = self._first_minute(window)
        out = []
        with self.store.lock:
            checks = sorted(
                ((svc, check, instances) for svc, r in self._rollups(service) for check, instances in r.health.items()),
                key=lambda c: (c[0], c[1]),
            )
            # Samples per check in the window, summed once for all checks.
            samples_of: dict[tuple[str, str], list[int]] = {}
            for svc, rollups in self._rollups(service):
                for (c, minute), (n, ok) in rollups.health_minutes.items():
                    if minute >= first:
                        sample = samples_of.setdefault((svc, c), [0, 0])
                        sample[0] += n
                        sample[1] += ok
            for svc, check, instances in checks:
                critical = any(c for _, c, _ in instances.values())
                last_seen = max(t for _, _, t in instances.values())
                # A check's state lives as long as its instance: a stopped or
                # restarted process leaves no ghost value behind.
                instances = {
                    i: v
                    for i, v in instances.items()
                    if not self._silent(self.store.instances.get((svc, i), v[2]), svc, i)
                }
                value: float | None = min((v for v, _, _ in instances.values()), default=None)  # the worst instance
                samples, up = samples_of.get((svc, check), (0, 0))
                out.append(
                    {
                        "service": svc,
                        "check": check,
                        "critical": critical,
                        "state": STALE
                        if value is None
                        else "up"
                        if value >= 1
                        else ("degraded" if value > 0 else "down"),
                        "value": value,
                        "instances": len(instances),
                        "last_seen": last_seen // 1_000_000,
                        "uptime": _round(up / samples, 4) if samples else None,
                    }
                )
            incidents_of: dict[tuple[Any, Any], list[dict[str, Any]]] = defaultdict(list)
            for i in self.store.incidents:
                if not service or i["service"] == service:
                    incidents_of[(i["service"], i["check"])].append(i)
        for row in out:
            row["incidents"] = [
                {"time": i["time_unix_nano"] // 1_000_000, "state": i["state"], "previous_state": i["previous_state"]}
                for i in incidents_of.get((row["service"], row["check"]), ())[-20:]
            ]
        return out


def latency_fields(hist: Histogram) -> dict[str, Any]:
    """p50, p95, p99, min and max, and the relative error the percentiles are within
    (the worst of the three; 0 when they are exact, None when no bound is known)."""
    found = [hist.locate(q) for q in (0.5, 0.95, 0.99)]
    bounds = [f[1] for f in found if f is not None]
    known = [b for b in bounds if b is not None]
    return {
        "p50": _round(found[0][0]) if found[0] else None,
        "p95": _round(found[1][0]) if found[1] else None,
        "p99": _round(found[2][0]) if found[2] else None,
        "min": _round(hist.min),
        "max": _round(hist.max),
        "percentile_error": _round(max(known), 4) if known and len(known) == len(bounds) else None,
    }


def _seconds_or_none(ns: int | None) -> float | None:
    return None if ns is None else _round(ns / 1e9, 3)


def client_error_fields(hist: Histogram) -> dict[str, Any]:
    """Calls the caller got wrong (4xx): their count, share of calls, and auth failures apart.

    They are not failures (the success rate ignores them) but a quality and a
    security signal: ``outcomes`` counts each non-success outcome.
    """
    client = {k: v for k, v in hist.outcomes.items() if k != "server_error"}
    count = sum(client.values())
    auth = sum(v for k, v in client.items() if k in semconv.AUTH_FAILURE_OUTCOMES)
    return {
        "client_errors": count,
        "client_error_rate": _round(count / hist.count) if hist.count else None,
        "auth_failures": auth,
        "outcomes": dict(hist.outcomes),
    }


def _service_hit_rate(caches: dict[tuple[str, str], dict[str, float]], service: str) -> float | None:
    """The hit rate of all the service's caches together (the summary's; never an operation's)."""
    cache = _service_cache(caches, service)
    return _round(cache["hit_rate"]) if cache and cache["hit_rate"] is not None else None


def _service_cache(caches: dict[tuple[str, str], dict[str, float]], service: str) -> dict[str, float] | None:
    mine = [c for (s, _), c in caches.items() if s == service]
    if not mine:
        return None
    requests = sum(c["requests"] for c in mine)
    hits = sum(c["hits"] for c in mine)
    return {"requests": requests, "hits": hits, "hit_rate": hits / requests if requests else None}  # type: ignore[dict-item]


def _check_state(check: dict[str, Any]) -> str:
    if check["state"] == "up":
        return "ok"
    return "critical" if check["critical"] and check["state"] == "down" else "warning"

"""The console's explorer queries: trace search, a trace in full, logs, any metric, resources.

Filters are parsed here (:func:`parse_filters`) so that a bad one gets a 400
naming it.  Times in answers are milliseconds since the epoch; durations come
in ms with the µs kept (``duration_us``), since database calls are often far
below a millisecond.
"""

from __future__ import annotations

import heapq
from array import array
from bisect import bisect_left, bisect_right
from collections import defaultdict
from dataclasses import dataclass, field
from itertools import islice, takewhile
from typing import Any

from otel_monitor import semconv
from otel_monitor.console.liveness import instance_stale, service_liveness
from otel_monitor.console.metric_series import Series
from otel_monitor.console.search_index import SEVERITIES, Found, display_name, severity_number
from otel_monitor.console.store import MINUTE_NS, Histogram, Store, TraceSummary

MAX_PAGE = 500
_SPAN_KINDS = {0: "unspecified", 1: "internal", 2: "server", 3: "client", 4: "producer", 5: "consumer"}


class BadFilter(ValueError):
    pass


@dataclass
class Filters:
    service: str | None = None
    operation: str | None = None
    status: str | None = None  # "ok" or "error"
    min_ms: float | None = None
    max_ms: float | None = None
    attributes: list[tuple[str, str]] = field(default_factory=list)
    start_ms: int | None = None
    end_ms: int | None = None
    text: str | None = None
    level: int | None = None
    trace_id: str | None = None
    span_id: str | None = None
    after_seq: int | None = None
    limit: int = 50
    offset: int = 0


def _number(params: Any, name: str, kind: type = float) -> Any:
    raw = params.get(name)
    if raw in (None, ""):
        return None
    try:
        value = kind(raw)
    except ValueError:
        raise BadFilter(f"{name}={raw!r} is not a number") from None
    if value != value or value < 0:  # NaN or negative
        raise BadFilter(f"{name}={raw!r} must be a number of at least 0")
    return value


def parse_filters(params: Any) -> Filters:
    """Filters from query parameters (a Starlette ``QueryParams`` or a plain mapping of lists)."""
    getlist = params.getlist if hasattr(params, "getlist") else (lambda k: list(params.get(k) or []))
    f = Filters(
        service=params.get("service") or None, operation=params.get("operation") or None, text=params.get("q") or None
    )
    status = params.get("status") or None
    if status not in (None, "ok", "error"):
        raise BadFilter(f"status={status!r} is not one of ok, error")
    f.status = status
    f.min_ms, f.max_ms = _number(params, "min_ms"), _number(params, "max_ms")
    f.start_ms, f.end_ms = _number(params, "start", int), _number(params, "end", int)
    for raw in getlist("attr"):
        key, sep, value = raw.partition("=")
        if not sep or not key.strip():
            raise BadFilter(f"attr={raw!r} is not key=value")
        f.attributes.append((key.strip(), value.strip()))
    level = (params.get("level") or "").lower() or None
    if level is not None and level not in SEVERITIES:
        raise BadFilter(f"level={level!r} is not one of trace, debug, info, warn, error, fatal")
    f.level = SEVERITIES[level] if level else None
    for name in ("trace_id", "span_id"):
        raw = (params.get(name) or "").lower() or None
        if raw is not None and (
            len(raw) != (32 if name == "trace_id" else 16) or any(c not in "0123456789abcdef" for c in raw)
        ):
            raise BadFilter(f"{name}={raw!r} is not a hexadecimal id of the right length")
        setattr(f, name, raw)
    f.after_seq = _number(params, "after", int)
    limit = _number(params, "limit", int)
    f.limit = 50 if limit is None else min(max(1, limit), MAX_PAGE)
    f.offset = _number(params, "offset", int) or 0
    return f


def _text(value: Any) -> str:
    return value if isinstance(value, str) else str(value)


_MISSING = object()


def _has_attributes(wanted: list[tuple[str, str]], *sources: dict[str, Any]) -> bool:
    """Each ``key=value`` wanted is in one of the sources (values compared as text)."""
    for k, v in wanted:
        for src in sources:
            found = src.get(k, _MISSING)
            if found is not _MISSING and (found if found.__class__ is str else _text(found)) == v:
                break
        else:
            return False
    return True


# --- traces ---------------------------------------------------------------------
def _on_one_span(t: TraceSummary, wanted: list[tuple[str, str]]) -> bool:
    """One span of the trace has every ``key=value`` wanted, on it or its resource
    (:func:`_has_attributes` written out: this runs for every candidate trace)."""
    missing = _MISSING
    for s in t.spans:
        attrs, resource = s["attributes"], s["resource"]
        for k, v in wanted:
            found = attrs.get(k, missing)
            if found is missing or (found if found.__class__ is str else str(found)) != v:
                found = resource.get(k, missing)
                if found is missing or (found if found.__class__ is str else str(found)) != v:
                    break
        else:
            return True
    return False


def _display_names(t: TraceSummary) -> frozenset[str]:
    """A trace's span names with paths shortened, worked out once (the store forgets them when a span comes)."""
    if t.display_names is None:
        t.display_names = frozenset(display_name(s["name"], s["attributes"]) for s in t.spans if "/" in s["name"])
    return t.display_names


def _narrowest(store: Store, f: Filters) -> tuple[Found | None, str]:
    """The shortest posting of the search index that holds every match, and which filter it stands for
    (None, "": no filter has one; the search reads every trace in the window)."""
    index = store.search_index
    found: list[tuple[Found, str]] = []
    hits = sorted((index.attribute(k, v) for k, v in f.attributes), key=lambda hit: len(hit.seqs))
    if len(hits) == 1:
        found.append((hits[0], "attr"))
    elif hits:
        # Traces holding every pair somewhere: the pairs must still be on one span ("attrs").
        seqs = hits[0].seqs
        for hit in hits[1:]:
            if seqs:
                seqs = array("q", sorted(set(seqs).intersection(hit.seqs)))
        found.append((Found(seqs, all(hit.exact for hit in hits)), "attrs"))
    if f.operation:
        found.append((index.name(f.operation), "operation"))
    if f.service:
        found.append((index.service(f.service), "service"))
    if f.status == "error":
        found.append((index.failed(), "status"))
    if not found:
        return None, ""
    best, proves = min(found, key=lambda item: len(item[0].seqs))
    return best, proves if best.exact else ""


def search_traces(store: Store, f: Filters, since_ns: int, order: str = "recent") -> dict[str, Any]:
    """Traces matching every filter, one page of them and the total: newest first, or longest first
    (``order="slow"``).

    The search starts from the shortest posting of the store's search index that a filter has
    (attribute value, operation name, service, failed), else from every trace in the window; then
    every other filter is one pass over what the previous ones kept.  Without filters, the total is
    counted by blocks and the slowest read from the longest duration buckets down.
    """
    start_ns = max(since_ns, (f.start_ms or 0) * 1_000_000)
    end_ns = f.end_ms * 1_000_000 if f.end_ms is not None else None
    with store.lock:
        traces = store.trace_order
        best, proves = _narrowest(store, f)
        filters = sum(
            (
                end_ns is not None,
                f.status is not None,
                f.min_ms is not None,
                f.max_ms is not None,
                len(f.attributes),
                bool(f.operation),
                bool(f.service),
            )
        )
        if not filters:
            total = traces.count_since(start_ns)
            if order == "slow":
                page = store.search_index.slowest(f.offset + f.limit, lambda t: t.end_ns >= start_ns)[f.offset :]
            else:
                page = traces.newest_page(start_ns, f.offset, f.limit)
            return _trace_page(f, total, page)
        if filters == 1 and best is not None and proves:
            return _trace_page(f, *_posting_page(store, best, f, start_ns, order))
        if best is None:
            found: list[TraceSummary] = traces.newest_first(start_ns)
        else:
            found = traces.resolve(best.seqs)
            sure = traces.in_window_from(start_ns)
            if found and found[-1].seq < sure:
                newer = len(best.seqs) - bisect_left(best.seqs, sure)
                found = found[:newer] + [t for t in found[newer:] if t.end_ns >= start_ns]
        if end_ns is not None:
            found = [t for t in found if t.start_ns <= end_ns]
        if f.service and proves != "service":
            found = [t for t in found if f.service in t.services]
        if f.status == "error" and proves != "status":
            found = [t for t in found if t.error]
        elif f.status == "ok":
            found = [t for t in found if not t.error]
        if f.min_ms is not None:
            found = [t for t in found if (t.end_ns - t.start_ns) / 1e6 >= f.min_ms]
        if f.max_ms is not None:
            found = [t for t in found if (t.end_ns - t.start_ns) / 1e6 <= f.max_ms]
        if f.operation and proves != "operation":
            op = f.operation
            found = [t for t in found if op in t.names or (t.slashed and op in (t.display_names or _display_names(t)))]
        if f.attributes and proves != "attr":
            wanted = f.attributes
            if proves == "attrs":  # a trace of one span holding every pair holds them on that span
                found = [t for t in found if len(t.spans) == 1 or _on_one_span(t, wanted)]
            else:
                found = [t for t in found if _on_one_span(t, wanted)]
        if order == "slow":
            page = heapq.nlargest(f.offset + f.limit, found, key=lambda t: t.end_ns - t.start_ns)[f.offset :]
        else:
            page = found[f.offset : f.offset + f.limit]
        return _trace_page(f, len(found), page)


def _posting_page(store: Store, best: Found, f: Filters, start_ns: int, order: str) -> tuple[int, list[TraceSummary]]:
    """(total, page) when one posting holds exactly the matches in the window: only the page's
    traces are read, and those ending before the window among the oldest."""
    traces = store.trace_order
    seqs = best.seqs
    cut = bisect_left(seqs, traces.in_window_from(start_ns))  # seqs[cut:] surely end inside the window
    older = [t for t in traces.resolve(seqs[:cut]) if t.end_ns >= start_ns] if cut else []
    total = len(seqs) - cut + len(older)
    wanted = f.offset + f.limit
    if order != "slow":
        return total, (traces.resolve(seqs[max(cut, len(seqs) - wanted) :]) + older)[f.offset : wanted]
    if 8 * len(seqs) >= len(traces):  # dense among the longest too: read the longest buckets only
        members = set(seqs)
        return total, store.search_index.slowest(wanted, lambda t: t.seq in members and t.end_ns >= start_ns)[
            f.offset :
        ]
    found = traces.resolve(seqs[cut:]) + older
    return total, heapq.nlargest(wanted, found, key=lambda t: t.end_ns - t.start_ns)[f.offset :]


def _trace_page(f: Filters, total: int, page: list[TraceSummary]) -> dict[str, Any]:
    rows = [
        {
            **t.row(),
            "name": display_name(t.root_name),
            "errors": sum(1 for s in t.spans if s["status_code"] == 2),
        }
        for t in page
    ]
    return {"total": total, "offset": f.offset, "limit": f.limit, "traces": rows}


def recent_traces_with(
    store: Store, operation: str, service: str | None, since_ns: int, limit: int = 20
) -> list[dict[str, Any]]:
    """The newest traces (at most ``limit``) with a span of this operation: its monitor.operation,
    HTTP operation or name.  Stops at the limit, so a busy operation costs a few traces' reading."""
    rows: list[dict[str, Any]] = []
    with store.lock:
        get = store.trace_order.get
        # The name's posting holds every trace with a span of that name or operation (and shortened names).
        for seq in reversed(store.search_index.name(operation).seqs):
            t = get(seq)
            if (
                t is None
                or t.end_ns < since_ns
                or operation not in t.names
                or not t.root_name
                or (service and service not in t.services)
            ):
                continue
            rows.append(t.row())
            if len(rows) >= limit:
                break
    return rows


def trace_detail(store: Store, trace_id: str) -> dict[str, Any] | None:
    """A trace's spans in full (resource, scope, links, events, DB statement) and its logs, by time."""
    with store.lock:
        t = store.traces.get(trace_id)
        logs = list(store.logs_by_trace.get(trace_id, ()))
        if t is None and not logs:
            return None
        spans = sorted(t.spans if t else [], key=lambda s: s["start_time_unix_nano"])
    start = min((s["start_time_unix_nano"] for s in spans), default=min((r["time_unix_nano"] for r in logs), default=0))
    end = max((s["end_time_unix_nano"] for s in spans), default=start)
    out_spans = []
    for s in spans:
        attrs = s["attributes"]
        statement = attrs.get(semconv.DB_QUERY_TEXT, attrs.get(semconv.DB_STATEMENT_OLD))
        duration_ns = s["end_time_unix_nano"] - s["start_time_unix_nano"]
        out_spans.append(
            {
                "span_id": s["span_id"],
                "parent_span_id": s["parent_span_id"],
                "name": s["name"],
                "display_name": display_name(s["name"], attrs),
                "service": s["service"],
                "kind": s["kind"],
                "kind_name": _SPAN_KINDS.get(s["kind"], str(s["kind"])),
                "start": s["start_time_unix_nano"] // 1_000_000,
                "offset_ms": (s["start_time_unix_nano"] - start) / 1e6,
                "duration_ms": duration_ns / 1e6,
                "duration_us": duration_ns / 1e3,
                "status_code": s["status_code"],
                "status": {0: "unset", 1: "ok", 2: "error"}.get(s["status_code"], "unset"),
                "status_message": s["status_message"],
                "attributes": attrs,
                "events": [
                    {
                        "name": e["name"],
                        "time": e["time_unix_nano"] // 1_000_000,
                        "time_unix_nano": e["time_unix_nano"],
                        "offset_ms": (e["time_unix_nano"] - start) / 1e6,
                        "attributes": e["attributes"],
                    }
                    for e in s["events"]
                ],
                "links": s.get("links", []),
                "resource": s["resource"],
                "scope": s.get("scope", ""),
                "db_statement": None if statement is None else _text(statement),
            }
        )
    return {
        "trace_id": trace_id,
        "start": start // 1_000_000,
        "duration_ms": (end - start) / 1e6,
        "services": sorted({s["service"] for s in spans} | {r["service"] for r in logs}),
        "spans": out_spans,
        "logs": [_log_row(r, start) for r in sorted(logs, key=lambda r: r["time_unix_nano"])],
    }


# --- logs -------------------------------------------------------------------------
def _severity_name(record: dict[str, Any]) -> str:
    if record["severity_text"]:
        return str(record["severity_text"])
    n = record["severity_number"]
    for name, low in (("FATAL", 21), ("ERROR", 17), ("WARN", 13), ("INFO", 9), ("DEBUG", 5), ("TRACE", 1)):
        if n >= low:
            return name
    return ""


_severity_number = severity_number


def _log_row(r: dict[str, Any], start_ns: int = 0) -> dict[str, Any]:
    return {
        "seq": r.get("seq"),
        "time": r["time_unix_nano"] // 1_000_000,
        "time_unix_nano": r["time_unix_nano"],
        "offset_ms": (r["time_unix_nano"] - start_ns) / 1e6 if start_ns else None,
        "service": r["service"],
        "severity": _severity_name(r),
        "severity_number": _severity_number(r),
        "body": r["body"],
        "event_name": r["event_name"],
        "trace_id": r["trace_id"] if r["trace_id"].strip("0") else "",
        "span_id": r["span_id"] if r["span_id"].strip("0") else "",
        "attributes": r["attributes"],
        "scope": r.get("scope", ""),
        "instance": str(r["resource"].get(semconv.SERVICE_INSTANCE_ID, "")),
    }


def search_logs(store: Store, f: Filters, since_ns: int) -> dict[str, Any]:
    """Log records matching every filter, newest first; ``after`` keeps only newer ones (the live tail).

    Every filter is one pass over what the previous ones kept, the cheapest first.
    """
    start_ns = max(since_ns, (f.start_ms or 0) * 1_000_000)
    end_ns = f.end_ms * 1_000_000 if f.end_ms is not None else None
    needle = f.text.lower() if f.text else None
    with store.lock:
        last_seq = store.log_seq
        after = f.after_seq
        logs = store.logs
        first_seq = last_seq - len(logs) + 1
        level = f.level
        if logs and (logs[0].get("seq") != first_seq or logs[-1].get("seq") != last_seq):
            # not numbered one by one: read every record
            newest_first = reversed(logs)
            if after is not None:
                found = list(takewhile(lambda r: r.get("seq", 0) > after, newest_first))
                found = [r for r in found if r["time_unix_nano"] >= start_ns]
            else:
                found = [r for r in newest_first if r["time_unix_nano"] >= start_ns]
        else:
            # Numbered one by one in arrival order: those after ``after`` are the newest, the blocks
            # of numbers surely inside the window are taken without reading their records, and a
            # level few records reach is read off the numbers of each severity.
            index = store.log_index
            below = index.count_below(level) if level is not None else 0
            if level is not None and not below:
                level = None  # every record kept is at the level or above
            if level is not None and 4 * (len(logs) - below) <= len(logs):
                seqs = index.at_least(level)
                if after is not None:
                    seqs = seqs[bisect_right(seqs, after) :]
                every = list(logs) if seqs else []
                found = [every[seq - first_seq] for seq in reversed(seqs)]
                found = [r for r in found if r["time_unix_nano"] >= start_ns]
                level = None
            else:
                newer = len(logs) if after is None else max(0, min(len(logs), last_seq - after))
                found = list(islice(reversed(logs), newer))
                sure = last_seq + 1 - index.times.sure_from(start_ns, first_seq, last_seq + 1)
                if sure < len(found):
                    found = found[:sure] + [r for r in found[sure:] if r["time_unix_nano"] >= start_ns]
        if end_ns is not None:
            found = [r for r in found if r["time_unix_nano"] <= end_ns]
        if f.service:
            found = [r for r in found if r["service"] == f.service]
        if f.trace_id:
            found = [r for r in found if r["trace_id"] == f.trace_id]
        if f.span_id:
            found = [r for r in found if r["span_id"] == f.span_id]
        if level is not None:
            # severity_number and _text written out: these passes read every record.
            found = [
                r
                for r in found
                if (int(n) if (n := r["severity_number"]) else SEVERITIES.get(str(r["severity_text"]).lower(), 0))
                >= level
            ]
        if needle:
            found = [
                r
                for r in found
                if needle in (b if (b := r["body"]).__class__ is str else str(b)).lower()
                or ((e := r["event_name"]) and needle in e.lower())
            ]
        if f.attributes:
            wanted = f.attributes
            found = [r for r in found if _has_attributes(wanted, r["attributes"], r["resource"])]
        page = [_log_row(r) for r in found[f.offset : f.offset + f.limit]]
    return {"total": len(found), "offset": f.offset, "limit": f.limit, "last_seq": last_seq, "logs": page}


# --- metrics ------------------------------------------------------------------------
def metric_attribute_keys(store: Store) -> dict[tuple[str, str], list[str]]:
    """(service, metric) -> the attribute keys its series carry (what a chart can be grouped by)."""
    keys: dict[tuple[str, str], set[str]] = defaultdict(set)
    with store.lock:
        for (service, name, _instance, attrs), _series in store.metric_series.series.items():
            keys[(service, name)].update(k for k, _ in attrs)
    return {k: sorted(v | {semconv.SERVICE_INSTANCE_ID}) for k, v in keys.items()}


def metric_chart(
    store: Store, name: str, service: str | None, group_by: str | None, first_minute: int, minutes: int
) -> dict[str, Any] | None:
    """One metric per time step, by kind: a sum's rate per second, a gauge's value (summed over
    the series of a group), a histogram's p50/p95/p99 (p95 per group when grouped)."""
    step = max(1, minutes // 60)
    steps = -(-minutes // step)
    groups: dict[str, list[Series]] = defaultdict(list)
    with store.lock:
        for (svc, metric, instance, _attrs), series in store.metric_series.series.items():
            if metric != name or (service and svc != service):
                continue
            if group_by:
                value = instance if group_by == semconv.SERVICE_INSTANCE_ID else series.attributes.get(group_by)
                label = f"{group_by}={'(none)' if value is None else _text(value)}"
            else:
                label = svc  # one line per service
            groups[label].append(series)
        if not groups:
            return None
        kinds = {s.kind for members in groups.values() for s in members}
        kind = sorted(kinds)[0]
        unit = next(s.unit for members in groups.values() for s in members)
        out = []
        for label, members in sorted(groups.items()):
            points = []
            for i in range(steps):
                lo, hi = first_minute + i * step, first_minute + (i + 1) * step
                t = lo * MINUTE_NS // 1_000_000
                values = [v for s in members if s.kind == kind for m, v in s.minutes.items() if lo <= m < hi]
                points.append({"t": t, **_step_value(kind, values, members, lo, hi, step, group_by)})
            out.append({"group": label, "points": points})
    stat = {"sum": "rate", "gauge": "value", "histogram": "percentiles"}.get(kind, "rate")
    return {
        "name": name,
        "service": service,
        "kind": kind,
        "unit": unit,
        "stat": stat,
        "group_by": group_by,
        "step_s": step * 60,
        "groups": out,
    }


def _step_value(
    kind: str, values: list[Any], members: list[Series], lo: int, hi: int, step: int, group_by: str | None
) -> dict[str, Any]:
    if kind == "sum":
        return {"v": sum(values) / (step * 60) if values else None}
    if kind == "gauge":
        # Each series' last value in the step, added up over the group.
        last = [
            s.minutes[max(m for m in s.minutes if lo <= m < hi)]
            for s in members
            if s.kind == "gauge" and any(lo <= m < hi for m in s.minutes)
        ]
        return {"v": sum(last) if last else None}
    if kind == "histogram":
        hist = Histogram()
        for v in values:
            hist.merge(v)
        if not hist.count:
            return {"v": None, "p50": None, "p95": None, "p99": None, "count": 0}
        p95 = hist.percentile(0.95)
        return {"v": p95, "p50": hist.percentile(0.5), "p95": p95, "p99": hist.percentile(0.99), "count": hist.count}
    count = sum(v[0] for v in values)
    return {"v": count / (step * 60) if values else None}


# --- resources ------------------------------------------------------------------------
def _interval_s(ns: int | None) -> float | None:
    return None if ns is None else round(ns / 1e9, 3)


def resources(store: Store, now_ns: int) -> list[dict[str, Any]]:
    """Services and their instances: resource attributes, SDK and distro, first and last seen, staleness."""

    by_service: dict[str, list[dict[str, Any]]] = defaultdict(list)
    with store.lock:
        for (service, instance), last in store.instances.items():
            resource = store.instance_resources.get((service, instance), {})
            sdk = " ".join(
                _text(resource[k])
                for k in (semconv.TELEMETRY_SDK_NAME, semconv.TELEMETRY_SDK_LANGUAGE, semconv.TELEMETRY_SDK_VERSION)
                if k in resource
            )
            distro = " ".join(
                _text(resource[k])
                for k in (semconv.TELEMETRY_DISTRO_NAME, semconv.TELEMETRY_DISTRO_VERSION)
                if k in resource
            )
            by_service[service].append(
                {
                    "instance": instance,
                    "first_seen": store.instance_first_seen.get((service, instance), last) // 1_000_000,
                    "last_seen": last // 1_000_000,
                    "stale": instance_stale(store, service, instance, last, now_ns),
                    "export_interval_s": _interval_s(store.export_cadence.interval_ns(service, instance)),
                    "silent_s": round(max(0, now_ns - last) / 1e9, 3),
                    "sdk": sdk or None,
                    "distro": distro or None,
                    "service_version": resource.get(semconv.SERVICE_VERSION),
                    "resource": dict(resource),
                }
            )
        services = dict(store.services)
        liveness = {service: service_liveness(store, service, now_ns) for service in services}
    out = []
    for service in sorted(services):
        instances = sorted(by_service.get(service, []), key=lambda i: (i["stale"], -i["last_seen"]))
        out.append(
            {
                "service": service,
                "last_seen": services[service] // 1_000_000,
                "stale": liveness[service][0],
                "stale_after_s": liveness[service][1] / 1e9,
                "first_seen": min((i["first_seen"] for i in instances), default=services[service] // 1_000_000),
                "instances": instances,
                "live_instances": sum(1 for i in instances if not i["stale"]),
            }
        )
    return out

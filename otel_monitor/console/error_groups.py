"""Error groups: one failure, one group, ranked by the requests and users it failed.

A failed request leaves several failed spans: the exception where it was
raised, the same exception recorded again on parent spans, the HTTP client
span that got the 5xx answer and the other service's server span that sent
it.  They are one failure.  Per trace, the *root cause* is kept as the group:

- a span with an exception (an ``exception`` event, or an ``error.type`` that is
  a class name) beats a span that only has a failed status (``503``);
- between two of a kind, the one that ended first: an inner span ends before
  the spans around it, so it is where the failure started.

Every other failed span of the trace is an *occurrence* of that group, not a
group of its own.  Spans arrive in any order, from several services: when a
better root cause of a trace arrives, the trace's request moves to its group
(and a group left without requests goes away).

A root cause whose category is ``unknown`` takes the category of the HTTP
status of a failed call in the same trace (a ``ProviderFailed`` raised after a
503 answer is ``dependency``), as :func:`~otel_monitor.semantics.errors.status_category` says.
"""

from __future__ import annotations

import hashlib
import re
from collections import OrderedDict, deque
from dataclasses import dataclass, field
from typing import Any

from otel_monitor import semconv
from otel_monitor.semantics.errors import status_category

MINUTE_NS = 60_000_000_000
_STATUS_ERROR = 2
# Traces whose failure attribution is remembered (their later spans still find it).
MAX_TRACES = 20_000
MAX_USERS_PER_GROUP = 10_000


@dataclass
class ErrorGroup:
    service: str
    fingerprint: str
    category: str
    error_type: str
    operation: str
    message: str
    stacktrace: str
    first_seen_ns: int
    last_seen_ns: int
    count: int = 0  # failed requests (traces) with this root cause
    occurrences: int = 0  # failed spans of those requests
    per_minute: dict[int, int] = field(default_factory=dict)  # failed requests per minute
    occurrences_per_minute: dict[int, int] = field(default_factory=dict)
    users: OrderedDict[str, int] = field(default_factory=OrderedDict)  # pseudo id -> last failed (ns)
    trace_ids: deque[str] = field(default_factory=lambda: deque(maxlen=5))


@dataclass
class _TraceFailure:
    """How one trace's failure is counted: its root cause so far and what was credited to it."""

    key: tuple[str, str] | None = None
    rank: tuple[int, int] = (2, 0)
    minute: int = 0
    end_ns: int = 0
    occurrences: list[int] = field(default_factory=list)  # minute of each failed span
    users: set[str] = field(default_factory=set)
    call_category: str | None = None  # from the HTTP status of a failed call in the trace


_CLASS_NAME = re.compile(r"^[A-Za-z_][\w.]*$")


def _status(attrs: dict[str, Any]) -> int | None:
    code: Any = attrs.get(semconv.HTTP_RESPONSE_STATUS_CODE, attrs.get("http.status_code"))
    try:
        return int(code)
    except (TypeError, ValueError):
        return None


class ErrorGrouper:
    """Adds failed spans to ``groups`` ((service, fingerprint) -> group), one request per trace."""

    def __init__(
        self, groups: OrderedDict[tuple[str, str], ErrorGroup], max_groups: int, evicted: dict[str, int]
    ) -> None:
        self.groups = groups
        self.max_groups = max_groups
        self.evicted = evicted
        self.traces: OrderedDict[str, _TraceFailure] = OrderedDict()

    def note_user(self, trace_id: str, user: str) -> None:
        """A span of ``trace_id`` names its user: a failure of that trace failed that user."""
        failure = self._failure(trace_id)
        if user in failure.users:
            return
        failure.users.add(user)
        group = self.groups.get(failure.key) if failure.key else None
        if group is not None:
            _add_user(group, user, failure.end_ns)

    def _failure(self, trace_id: str) -> _TraceFailure:
        failure = self.traces.get(trace_id)
        if failure is None:
            failure = self.traces[trace_id] = _TraceFailure()
            if len(self.traces) > MAX_TRACES:
                self.traces.popitem(last=False)
        return failure

    def add(
        self, service: str, span: dict[str, Any], attrs: dict[str, Any], operation: Any
    ) -> tuple[tuple[str, str], bool]:
        """Count one failed span; returns the key of the group it counts for, and whether it is that root cause."""
        exception: dict[str, Any] = next((e["attributes"] for e in span["events"] if e["name"] == "exception"), {})
        error_type = str(attrs.get(semconv.ERROR_TYPE) or exception.get(semconv.EXCEPTION_TYPE) or "error")
        fingerprint = attrs.get(semconv.MONITOR_ERROR_FINGERPRINT)
        if not fingerprint:  # spans from apps without otel-monitor: group by type and span name
            fingerprint = hashlib.sha256(f"{error_type}|{span['name']}".encode()).hexdigest()[:16]
        t = span["end_time_unix_nano"]
        has_exception = bool(exception) or (_CLASS_NAME.match(error_type) is not None and error_type != "_OTHER")
        rank = (0 if has_exception else 1, t)
        key = (service, str(fingerprint))
        failure = self._failure(span["trace_id"])
        status = _status(attrs)
        if status is not None and status >= 400:
            failure.call_category = failure.call_category or status_category(status)
        if failure.key is None or rank < failure.rank or failure.key not in self.groups:
            group = self.groups.get(key)
            if group is None:
                group = self.groups[key] = ErrorGroup(
                    service=service,
                    fingerprint=str(fingerprint),
                    category=str(attrs.get(semconv.MONITOR_ERROR_CATEGORY) or "unknown"),
                    error_type=error_type,
                    operation=str(operation or span["name"]),
                    message=str(exception.get(semconv.EXCEPTION_MESSAGE) or span["status_message"] or ""),
                    stacktrace=str(exception.get(semconv.EXCEPTION_STACKTRACE) or ""),
                    first_seen_ns=t,
                    last_seen_ns=t,
                )
                self._evict()
            self._credit(failure, key, rank, t, span["trace_id"])
        failure.occurrences.append(t // MINUTE_NS)
        credited = self.groups.get(failure.key) if failure.key else None
        if credited is not None:
            credited.occurrences += 1
            minute = t // MINUTE_NS
            credited.occurrences_per_minute[minute] = credited.occurrences_per_minute.get(minute, 0) + 1
            credited.first_seen_ns = min(credited.first_seen_ns, t)
            credited.last_seen_ns = max(credited.last_seen_ns, t)
            self.groups.move_to_end(failure.key)  # type: ignore[arg-type]
            if credited.category == "unknown" and failure.call_category:
                credited.category = failure.call_category
        return failure.key or key, failure.key == key

    def _credit(
        self, failure: _TraceFailure, key: tuple[str, str], rank: tuple[int, int], t: int, trace_id: str
    ) -> None:
        """Count the trace's request for ``key``, moving it (and its occurrences) from the group it was in."""
        if failure.key == key:  # the same root cause, seen on an earlier span
            failure.rank = rank
            return
        old = self.groups.get(failure.key) if failure.key else None
        if old is not None:
            if trace_id in old.trace_ids:
                old.trace_ids.remove(trace_id)
            old.count -= 1
            old.per_minute[failure.minute] = old.per_minute.get(failure.minute, 0) - 1
            if not old.per_minute[failure.minute]:
                del old.per_minute[failure.minute]
            for minute in failure.occurrences:
                old.occurrences -= 1
                old.occurrences_per_minute[minute] = old.occurrences_per_minute.get(minute, 0) - 1
                if not old.occurrences_per_minute[minute]:
                    del old.occurrences_per_minute[minute]
            if old.count <= 0:
                del self.groups[failure.key]  # type: ignore[arg-type]
        group = self.groups[key]
        failure.key, failure.rank, failure.minute, failure.end_ns = key, rank, t // MINUTE_NS, t
        group.count += 1
        group.per_minute[failure.minute] = group.per_minute.get(failure.minute, 0) + 1
        for minute in failure.occurrences:
            group.occurrences += 1
            group.occurrences_per_minute[minute] = group.occurrences_per_minute.get(minute, 0) + 1
        for user in failure.users:
            _add_user(group, user, t)
        if trace_id not in group.trace_ids:
            group.trace_ids.append(trace_id)

    def _evict(self) -> None:
        while len(self.groups) > self.max_groups:
            self.groups.popitem(last=False)
            self.evicted["error_groups"] = self.evicted.get("error_groups", 0) + 1


def _add_user(group: ErrorGroup, user: str, t: int) -> None:
    group.users[user] = max(t, group.users.get(user, 0))
    group.users.move_to_end(user)
    if len(group.users) > MAX_USERS_PER_GROUP:
        group.users.popitem(last=False)


# --- stack traces: the app's frames first ------------------------------------------------------

_FRAME = re.compile(r'^\s*File "(?P<path>[^"]+)", line (?P<line>\d+), in (?P<func>.+)$')
_LIBRARY = ("site-packages/", "dist-packages/", "/lib/python3", "<frozen ", "otel_monitor/")


def app_frames(stacktrace: str, limit: int = 20) -> list[dict[str, Any]]:
    """The application's own frames of a formatted traceback, innermost first (library frames left out)."""
    lines = stacktrace.splitlines()
    frames: list[dict[str, Any]] = []
    for i, line in enumerate(lines):
        match = _FRAME.match(line)
        if not match or any(lib in match.group("path") for lib in _LIBRARY):
            continue
        code = lines[i + 1].strip() if i + 1 < len(lines) and not _FRAME.match(lines[i + 1]) else ""
        frames.append(
            {
                "file": match.group("path"),
                "line": int(match.group("line")),
                "function": match.group("func").strip(),
                "code": code,
            }
        )
    frames.reverse()
    return frames[:limit]

"""What the console accepts: decoded OTLP items checked and normalised before the store sees them.

Everything a sender controls is suspect.  The store and the API assume finite
numbers, strings where they read names, and histograms whose buckets match
their bounds; one item that breaks those assumptions would make every later
answer of the API fail (and, with ``--db``, at every start, as the request is
replayed).  So each flattened item (see :mod:`otel_monitor.otlp.decode`)
passes here first, on live ingest and on replay alike:

* numbers: a metric point with a non-finite value, sum, minimum or maximum, a
  negative count, or a histogram whose bucket counts do not match its bounds
  (one more count than bounds, bounds finite and increasing, counts adding up
  to the count) is rejected;
* keys the console reads (``service.name``, ``monitor.operation``,
  ``http.response.status_code``...) get the type it expects: bytes are
  decoded, numbers written out, maps and lists dropped;
* every other value is made JSON-safe: bytes become base64 text, non-finite
  floats their name (``"NaN"``);
* size: at most :data:`MAX_ATTRIBUTES` attributes per span, event, log or
  point (and resource), :data:`MAX_EVENTS` events per span, strings cut to
  :data:`MAX_STRING` characters, lists to :data:`MAX_LIST` items, nesting to
  :data:`MAX_DEPTH` levels; names and ids are cut too; and each item keeps at
  most :data:`MAX_ITEM_CHARS` characters of attribute and event text in all
  (what comes after is cut, events beyond it are dropped), so memory grows
  with the number of items, not with what one sender puts in one.

:class:`Rejections` counts what was refused, by signal and reason.
"""

from __future__ import annotations

import base64
import math
from collections import Counter
from collections.abc import Callable
from itertools import pairwise
from typing import Any

from otel_monitor import semconv

MAX_ATTRIBUTES = 128
MAX_EVENTS = 128
MAX_STRING = 4096
MAX_NAME = 512
MAX_LIST = 128
MAX_DEPTH = 8
# Characters of text one span, log record or point may keep in all (names, keys, values, events).
MAX_ITEM_CHARS = 64 * 1024

# Keys the console reads as text, as whole numbers, or as flags.
_TEXT_KEYS = frozenset(
    {
        semconv.SERVICE_NAME,
        semconv.SERVICE_INSTANCE_ID,
        semconv.MONITOR_OPERATION,
        semconv.ERROR_TYPE,
        semconv.MONITOR_ERROR_CATEGORY,
        semconv.MONITOR_ERROR_FINGERPRINT,
        semconv.HTTP_ROUTE,
        semconv.HTTP_REQUEST_METHOD,
        semconv.HTTP_METHOD_OLD,
        semconv.ENDUSER_PSEUDO_ID,
        semconv.MONITOR_JOURNEY_NAME,
        semconv.MONITOR_JOURNEY_STEP,
        semconv.EXCEPTION_MESSAGE,
        semconv.EXCEPTION_STACKTRACE,
        semconv.EXCEPTION_TYPE,
        semconv.MONITOR_HEALTH_CHECK,
        semconv.MONITOR_HEALTH_STATE,
        semconv.MONITOR_HEALTH_PREVIOUS_STATE,
    }
)
_INT_KEYS = frozenset({semconv.HTTP_RESPONSE_STATUS_CODE, semconv.HTTP_STATUS_CODE_OLD})
_FLAG_KEYS = frozenset({semconv.MONITOR_HEALTH_CRITICAL})


class Rejected(ValueError):
    """An item the console does not store; the message says why."""


class Rejections:
    """Counts of refused items, by signal and reason (the reasons are a short, fixed set)."""

    def __init__(self) -> None:
        self.counts: Counter[tuple[str, str]] = Counter()

    def total(self) -> int:
        return sum(self.counts.values())


def _text(value: Any, limit: int = MAX_STRING) -> str:
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    elif not isinstance(value, str):
        value = str(value)
    return value if len(value) <= limit else value[:limit]


def _traceback_text(value: Any) -> str:
    """A stack trace cut to :data:`MAX_STRING` from its start: the innermost frames, the app's own, and the
    exception line are at its end, and a deep framework stack in a venv with long paths runs past the limit."""
    text = value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)
    return text if len(text) <= MAX_STRING else "…\n" + text[len(text) - MAX_STRING + 2 :]


class _Budget:
    """What is left of one item's :data:`MAX_ITEM_CHARS`."""

    __slots__ = ("left",)

    def __init__(self) -> None:
        self.left = MAX_ITEM_CHARS

    def take(self, text: str) -> str:
        kept = text if len(text) <= self.left else text[: max(self.left, 0)]
        self.left -= len(kept)
        return kept


def _json_safe(value: Any, budget: _Budget, depth: int = 0) -> Any:
    """``value`` with bytes as base64, non-finite floats as their name, sizes bounded."""
    if value is None or value.__class__ in (bool, int):
        return value
    if value.__class__ is str:
        return budget.take(value if len(value) <= MAX_STRING else value[:MAX_STRING])
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)  # "nan", "inf", "-inf"
    if isinstance(value, bytes):
        return budget.take(base64.b64encode(value[:MAX_STRING]).decode("ascii"))
    if depth >= MAX_DEPTH:
        return None
    if isinstance(value, dict):
        return {
            budget.take(_text(k, MAX_NAME)): _json_safe(v, budget, depth + 1)
            for k, v in list(value.items())[:MAX_ATTRIBUTES]
        }
    if isinstance(value, (list, tuple)):
        return [_json_safe(v, budget, depth + 1) for v in value[:MAX_LIST]]
    return budget.take(_text(value))


def _typed(key: str, value: Any) -> Any:
    """The value of a key the console reads, as the type it reads; ``_DROP`` when it cannot be."""
    if key in _TEXT_KEYS:
        if isinstance(value, (dict, list, tuple)) or value is None:
            return _DROP
        if isinstance(value, float) and not math.isfinite(value):
            return _DROP
        if key == semconv.EXCEPTION_STACKTRACE:
            return _traceback_text(value)
        return _text(value, MAX_NAME if key != semconv.EXCEPTION_MESSAGE else MAX_STRING)
    if key in _INT_KEYS:
        if isinstance(value, bool):
            return _DROP
        if isinstance(value, int):
            return value
        if isinstance(value, str) and value.strip().isdigit() and len(value) < 6:
            return int(value)
        return _DROP
    if value.__class__ is bool or value in ("true", "false"):
        return value
    return _DROP


_DROP = object()


_READ_KEYS = _TEXT_KEYS | _INT_KEYS | _FLAG_KEYS


def clean_attributes(attributes: Any, budget: _Budget | None = None) -> dict[str, Any]:
    """Attributes the console can store and serve: at most :data:`MAX_ATTRIBUTES`, typed, JSON-safe."""
    if not isinstance(attributes, dict):
        return {}
    budget = budget or _Budget()
    left = budget.left
    out: dict[str, Any] = {}
    # The hot path of ingest: plain strings and numbers under ordinary keys are handled inline.
    for key, value in attributes.items():
        if len(out) >= MAX_ATTRIBUTES or left <= 0:
            break
        if key.__class__ is not str or len(key) > MAX_NAME:
            key = _text(key, MAX_NAME)
        left -= len(key)
        if key in _READ_KEYS:
            value = _typed(key, value)
            if value is _DROP:
                continue
        elif value.__class__ is str:
            if len(value) > MAX_STRING or len(value) > left:
                value = value[: max(0, min(MAX_STRING, left))]
            left -= len(value)
        elif value.__class__ is not int and value.__class__ is not bool and value is not None:
            budget.left = left
            value = _json_safe(value, budget)
            left = budget.left
        out[key] = value
    budget.left = left
    return out


class _Resources:
    """Resources repeat for every item of a request: each is cleaned once."""

    def __init__(self) -> None:
        self._done: dict[int, tuple[Any, dict[str, Any]]] = {}

    def __call__(self, resource: Any) -> dict[str, Any]:
        known = self._done.get(id(resource))
        if known is not None and known[0] is resource:
            return known[1]
        cleaned = clean_attributes(resource)
        self._done[id(resource)] = (resource, cleaned)
        return cleaned


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _short(value: Any, limit: int) -> str:
    return value if value.__class__ is str and len(value) <= limit else _text(value, limit)


def _id(value: Any, size: int) -> str:
    """An id as the decoder writes it (``bytes.hex()``), cut to its size; anything else is no id."""
    if value.__class__ is not str:
        return ""
    return value if len(value) <= 2 * size else value[: 2 * size]


def _span(span: dict[str, Any], resource: dict[str, Any]) -> dict[str, Any]:
    budget = _Budget()
    span["attributes"] = clean_attributes(span.get("attributes"), budget)
    events = []
    for event in (span.get("events") or [])[:MAX_EVENTS]:
        if budget.left <= 0:
            break
        events.append(
            {
                "name": budget.take(_short(event.get("name", ""), MAX_NAME)),
                "time_unix_nano": event.get("time_unix_nano", 0),
                "attributes": clean_attributes(event.get("attributes"), budget),
            }
        )
    span["links"] = [
        {
            "trace_id": _id(link.get("trace_id", ""), 16),
            "span_id": _id(link.get("span_id", ""), 8),
            "attributes": clean_attributes(link.get("attributes"), budget),
        }
        for link in (span.get("links") or [])[:MAX_EVENTS]
    ]
    span.update(
        resource=resource,
        events=events,
        scope=_short(span.get("scope", ""), MAX_NAME),
        trace_id=_id(span.get("trace_id", ""), 16),
        span_id=_id(span.get("span_id", ""), 8),
        parent_span_id=_id(span.get("parent_span_id", ""), 8),
        name=_short(span.get("name", ""), MAX_NAME),
        status_message=_short(span.get("status_message", ""), MAX_STRING),
    )
    return span


def _log(record: dict[str, Any], resource: dict[str, Any]) -> dict[str, Any]:
    budget = _Budget()
    record.update(
        resource=resource,
        body=_json_safe(record.get("body"), budget),
        attributes=clean_attributes(record.get("attributes"), budget),
        scope=_short(record.get("scope", ""), MAX_NAME),
        severity_text=_short(record.get("severity_text", ""), MAX_NAME),
        event_name=_short(record.get("event_name", ""), MAX_NAME),
        trace_id=_id(record.get("trace_id", ""), 16),
        span_id=_id(record.get("span_id", ""), 8),
    )
    return record


def _point(point: dict[str, Any], resource: dict[str, Any]) -> dict[str, Any]:
    kind = point.get("type")
    if kind in ("sum", "gauge"):
        if not _finite(point.get("value")):
            raise Rejected("non-finite value")
    elif kind in ("histogram", "exponential_histogram", "summary"):
        count, total = point.get("count"), point.get("sum")
        if not isinstance(count, int) or count < 0:
            raise Rejected("bad count")
        if not _finite(total):
            raise Rejected("non-finite sum")
        for bound in ("min", "max"):
            if point.get(bound) is not None and not _finite(point.get(bound)):
                raise Rejected(f"non-finite {bound}")
        if kind == "histogram":
            bounds, buckets = list(point.get("explicit_bounds") or []), list(point.get("bucket_counts") or [])
            if buckets and len(buckets) != len(bounds) + 1:
                raise Rejected("bucket counts do not match the bounds")
            if not all(_finite(b) for b in bounds) or any(a >= b for a, b in pairwise(bounds)):
                raise Rejected("bounds not finite and increasing")
            if buckets and (any(not isinstance(c, int) or c < 0 for c in buckets) or sum(buckets) != count):
                raise Rejected("bucket counts do not add up to the count")
    else:
        raise Rejected("unknown point type")
    point.update(
        resource=resource,
        scope=_short(point.get("scope", ""), MAX_NAME),
        name=_short(point.get("name", ""), MAX_NAME),
        unit=_short(point.get("unit", ""), MAX_NAME),
        attributes=clean_attributes(point.get("attributes")),
    )
    return point


_CLEAN: dict[str, Callable[[dict[str, Any], dict[str, Any]], dict[str, Any]]] = {
    "traces": _span,
    "metrics": _point,
    "logs": _log,
}


def clean_items(signal: str, items: list[dict[str, Any]], rejections: Rejections | None = None) -> list[dict[str, Any]]:
    """The items of one request the store may take: normalised in place, the unusable ones left out and counted."""
    clean, resources = _CLEAN[signal], _Resources()
    out = []
    for item in items:
        try:
            out.append(clean(item, resources(item.get("resource"))))
        except Rejected as exc:
            if rejections is not None:
                rejections.counts[(signal, str(exc))] += 1
    return out

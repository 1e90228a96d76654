"""Operations: what each span is an instance of, by rule or by code.

Rules (the config file's ``operations:`` section) name the operation a span
belongs to::

    operations:
      - name: checkout
        route: /checkout            # http.route, exact or glob (/orders/*)
        method: POST
      - name: catalog_db
        kind: client
        attributes: {db.system.name: sqlite}
      - name: payment_api
        span_name: "^POST .*payments"   # regular expression on the span name
        attributes: {server.address: pay.example.com}

The first matching rule wins.  In code, :func:`operation` names one:
``@operation("checkout")`` or ``with operation("image_analysis"):`` starts a
span named after the operation with ``monitor.operation`` set.  A server span
that no rule matches falls back to ``METHOD route-template`` (never the raw
path), or ``METHOD`` alone when there is no route.
"""

from __future__ import annotations

import fnmatch
import functools
import inspect
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from opentelemetry import trace
from opentelemetry.trace import SpanKind, Status, StatusCode

from otel_monitor import semconv
from otel_monitor.config.file import EMPTY, ConfigFile
from otel_monitor.config.settings import report_problem

_KINDS = {k.name.lower(): k for k in SpanKind}
_RULE_KEYS = {"name", "route", "method", "span_name", "kind", "attributes"}


def excluded_url_matcher(patterns: tuple[str, ...]) -> Callable[[str], bool]:
    """A function telling whether a URL path is excluded (whole-path regex match)."""
    if not patterns:
        return lambda path: False
    compiled = re.compile("|".join(f"(?:{p})" for p in patterns))
    return lambda path: compiled.fullmatch(path) is not None


@dataclass(frozen=True)
class OperationRule:
    """One rule: every condition given must hold."""

    name: str
    route: str | None = None
    method: str | None = None
    span_name: re.Pattern[str] | None = None
    kind: SpanKind | None = None
    attributes: Mapping[str, str] = field(default_factory=dict)

    def matches(self, span: Any, attributes: Mapping[str, Any]) -> bool:
        if self.kind is not None and span.kind is not self.kind:
            return False
        if self.method is not None and attributes.get(semconv.HTTP_REQUEST_METHOD) != self.method:
            return False
        if self.route is not None:
            route = attributes.get(semconv.HTTP_ROUTE)
            if not isinstance(route, str) or not (route == self.route or fnmatch.fnmatchcase(route, self.route)):
                return False
        if self.span_name is not None and self.span_name.search(span.name) is None:
            return False
        for key, expected in self.attributes.items():
            value = attributes.get(key)
            if key == semconv.DB_SYSTEM_NAME and value is None:
                value = attributes.get(semconv.DB_SYSTEM)  # older instrumentations
            if value is None or not fnmatch.fnmatchcase(str(value), expected):
                return False
        return True


def plain_attributes(span: Any) -> Mapping[str, Any]:
    """A finished span's attributes as the plain dict under the SDK's wrapper.

    ``span.attributes`` wraps a ``BoundedAttributes`` in a ``MappingProxyType``
    whose every ``get`` is two Python-level calls; on the per-span hot path we
    read the frozen dict underneath (falling back to the public view).
    """
    attributes = getattr(span, "_attributes", None)  # private: ReadableSpan._attributes, read only
    if attributes is None:
        return span.attributes or {}
    return getattr(attributes, "_dict", attributes)  # private: BoundedAttributes._dict, read only


class OperationRules:
    """Names the operation of a finished span, or None when it is not one."""

    def __init__(self, rules: list[OperationRule] | None = None) -> None:
        self.rules = rules or []
        # Fallback names are built from (method, route): cache the strings.
        self._fallbacks: dict[tuple[Any, Any], str] = {}

    def name_for(self, span: Any, attributes: Mapping[str, Any] | None = None) -> str | None:
        if attributes is None:
            attributes = plain_attributes(span)
        explicit = attributes.get(semconv.MONITOR_OPERATION)
        if explicit is not None:
            return str(explicit)
        for rule in self.rules:
            if rule.matches(span, attributes):
                return rule.name
        if span.kind is not SpanKind.SERVER:
            return None
        method = attributes.get(semconv.HTTP_REQUEST_METHOD)
        route = attributes.get(semconv.HTTP_ROUTE)
        key = (method, route)
        name = self._fallbacks.get(key)
        if name is None:
            name = f"{method or 'HTTP'} {route}" if route else str(method or "HTTP")
            if len(self._fallbacks) < 10_000:
                self._fallbacks[key] = name
        return name


def load_operation_rules(
    config: ConfigFile = EMPTY, *, strict: bool = False, problems: list[str] | None = None
) -> OperationRules:
    """The ``operations:`` section as rules; a bad entry is reported and skipped."""
    section = config.section("operations")
    if section is None:
        return OperationRules()
    if not isinstance(section, list):
        report_problem(
            f"{config.where('operations')}: 'operations' must be a list of rules", strict=strict, problems=problems
        )
        return OperationRules()
    rules: list[OperationRule] = []
    for i, entry in enumerate(section):
        rule = _parse_rule(entry, config, i, strict, problems)
        if rule is not None:
            rules.append(rule)
    return OperationRules(rules)


def _parse_rule(
    entry: Any, config: ConfigFile, i: int, strict: bool, problems: list[str] | None
) -> OperationRule | None:
    where = config.where("operations", i)
    if not isinstance(entry, dict) or not isinstance(entry.get("name"), str) or not entry["name"].strip():
        report_problem(
            f"{where}: an operation rule needs a 'name' and at least one condition "
            f"(route, method, span_name, kind, attributes)",
            strict=strict,
            problems=problems,
        )
        return None
    unknown = sorted(set(entry) - _RULE_KEYS)
    if unknown:
        report_problem(
            f"{config.where('operations', i, unknown[0])}: unknown key {unknown[0]!r}; "
            f"expected one of {', '.join(sorted(_RULE_KEYS))}",
            strict=strict,
            problems=problems,
        )
        return None
    if len(entry) == 1:
        report_problem(
            f"{where}: operation {entry['name']!r} has no condition, it would match every span",
            strict=strict,
            problems=problems,
        )
        return None
    kind = None
    if "kind" in entry:
        kind = _KINDS.get(str(entry["kind"]).lower())
        if kind is None:
            report_problem(
                f"{config.where('operations', i, 'kind')}: kind {entry['kind']!r} is not one of {', '.join(_KINDS)}",
                strict=strict,
                problems=problems,
            )
            return None
    span_name = None
    if "span_name" in entry:
        try:
            span_name = re.compile(str(entry["span_name"]))
        except re.error as exc:
            report_problem(
                f"{config.where('operations', i, 'span_name')}: invalid regular expression: {exc}",
                strict=strict,
                problems=problems,
            )
            return None
    attributes = entry.get("attributes") or {}
    if not isinstance(attributes, dict):
        report_problem(
            f"{config.where('operations', i, 'attributes')}: 'attributes' must be a mapping",
            strict=strict,
            problems=problems,
        )
        return None
    method = str(entry["method"]).upper() if "method" in entry else None
    route = str(entry["route"]) if "route" in entry else None
    return OperationRule(
        entry["name"].strip(), route, method, span_name, kind, {str(k): str(v) for k, v in attributes.items()}
    )


# --- naming operations in code ----------------------------------------------------------

_tracer = trace.get_tracer("otel_monitor")


def _record_failure(span: Any, exc: BaseException) -> None:
    from otel_monitor.semantics.errors import active_classifier, error_fingerprint, qualified_name

    category = active_classifier().classify_in_span(exc, span.get_span_context().span_id)
    if category == "cancelled":
        return
    span.record_exception(exc)
    span.set_status(Status(StatusCode.ERROR, f"{type(exc).__name__}: {exc}"))
    span.set_attributes(
        {
            semconv.ERROR_TYPE: qualified_name(type(exc)),
            semconv.MONITOR_ERROR_CATEGORY: category,
            semconv.MONITOR_ERROR_FINGERPRINT: error_fingerprint(exc),
        }
    )


class operation:  # lower case: used as a decorator and a context manager, like contextlib's
    """Name an operation in code: a decorator (sync or async) or a ``with`` / ``async with`` block.

    Starts a span named ``name`` with ``monitor.operation=name`` (plus
    ``attributes``); a failure is recorded with its category and fingerprint.
    """

    def __init__(self, name: str, **attributes: Any) -> None:
        self.name = name
        self.attributes = {semconv.MONITOR_OPERATION: name, **attributes}
        self._stack: list[Any] = []

    def __enter__(self) -> Any:
        manager = _tracer.start_as_current_span(
            self.name, attributes=self.attributes, record_exception=False, set_status_on_exception=False
        )
        span = manager.__enter__()
        self._stack.append((manager, span))
        return span

    def __exit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> None:
        manager, span = self._stack.pop()
        if exc is not None:
            try:
                _record_failure(span, exc)
            except Exception as failure:  # noqa: BLE001
                from otel_monitor.guard import internal_error

                internal_error("operation", failure)
        manager.__exit__(exc_type, exc, tb)

    async def __aenter__(self) -> Any:
        return self.__enter__()

    async def __aexit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> None:
        self.__exit__(exc_type, exc, tb)

    def __call__(self, func: Callable[..., Any]) -> Callable[..., Any]:
        name, attributes = self.name, {k: v for k, v in self.attributes.items() if k != semconv.MONITOR_OPERATION}
        if inspect.iscoroutinefunction(func):

            @functools.wraps(func)
            async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
                async with operation(name, **attributes):
                    return await func(*args, **kwargs)

            return async_wrapper

        @functools.wraps(func)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            with operation(name, **attributes):
                return func(*args, **kwargs)

        return wrapper

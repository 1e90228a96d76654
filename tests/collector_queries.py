"""Reading the queries out of the collector bundle, and offline checks for them.

Used by ``test_dashboards.py`` and ``test_contract.py``.  PromQL is parsed by
promtool; no LogQL or TraceQL parser runs here, so :func:`logql_problems` and
:func:`traceql_problems` are syntax checks of our own: balanced delimiters,
well-formed stream selectors and label matchers, known pipeline stages.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
DASHBOARDS = sorted((ROOT / "collector" / "grafana" / "dashboards").glob("*.json"))
RULES = ROOT / "collector" / "prometheus" / "rules" / "otel-monitor.rules.yaml"

# Grafana's built-in variables, replaced by values a parser accepts.
GRAFANA_DURATIONS = {"$__rate_interval": "5m", "$__interval": "1m", "$__range": "1h", "$__auto": "1m"}
_VARIABLE = re.compile(r"\$\{?(\w+)(?::\w+)?\}?")


def load_dashboard(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text())


def panels(dashboard: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for panel in dashboard.get("panels", []):
        yield panel
        yield from panel.get("panels", [])  # collapsed rows


def dashboard_queries() -> Iterator[tuple[str, str, str, str]]:
    """(dashboard file, panel title, datasource type, query) for every panel target."""
    for path in DASHBOARDS:
        for panel in panels(load_dashboard(path)):
            for target in panel.get("targets", []):
                kind = (target.get("datasource") or panel.get("datasource") or {}).get("type", "")
                query = target.get("expr") or target.get("query") or ""
                yield path.name, panel.get("title", ""), kind, query


@functools.cache
def rule_expressions() -> tuple[tuple[str, str], ...]:
    """(rule name, PromQL) of every recording and alerting rule."""
    groups = yaml.safe_load(RULES.read_text())["groups"]
    return tuple((rule.get("record") or rule["alert"], rule["expr"]) for group in groups for rule in group["rules"])


@functools.cache
def recorded_names() -> frozenset[str]:
    return frozenset(name for name, _ in rule_expressions() if ":" in name)


def substitute_variables(query: str) -> str:
    """Grafana's ``$__rate_interval`` etc. become durations, user variables a placeholder value."""
    for name, value in GRAFANA_DURATIONS.items():
        query = query.replace(name, value)
    return _VARIABLE.sub("placeholder", query)


# --- PromQL --------------------------------------------------------------------------

_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')
_GROUPING = re.compile(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")
_KEYWORDS = {"and", "or", "unless", "by", "without", "on", "ignoring", "group_left", "group_right",
             "offset", "bool", "inf", "nan", "placeholder"}
_IDENTIFIER = re.compile(r"(?<![\w.:])([A-Za-z_:][A-Za-z0-9_:]*)(?![\w:])(?!\s*\()")


def promql_metric_names(expr: str) -> set[str]:
    """Metric names an expression selects by name (``{__name__=~...}`` selectors are not names)."""
    text = _STRING.sub('""', expr)
    text = re.sub(r"\{[^}]*\}", "", text)
    text = re.sub(r"\[[^\]]*\]", "", text)
    text = _GROUPING.sub("", text)
    text = re.sub(r"\boffset\s+\w+", "", text)
    return {m for m in _IDENTIFIER.findall(text) if m.lower() not in _KEYWORDS}


def promql_name_patterns(expr: str) -> list[str]:
    """The regular expressions of ``__name__`` matchers."""
    return re.findall(r'__name__\s*=~?\s*"([^"]*)"', expr)


# --- LogQL ---------------------------------------------------------------------------

_MATCHER = re.compile(r'\s*[A-Za-z_][A-Za-z0-9_]*\s*(=~|!~|!=|=)\s*"(?:[^"\\]|\\.)*"\s*')
_LINE_FILTER = re.compile(r'^(\|=|!=|\|~|!~)\s*"(?:[^"\\]|\\.)*"')
_LABEL_FILTER = re.compile(r'^\|\s*[A-Za-z_][A-Za-z0-9_]*\s*(=~|!~|!=|==|=|>=|<=|>|<)\s*("(?:[^"\\]|\\.)*"|[\d.]+\w*)')
_PARSER_STAGE = re.compile(r"^\|\s*(json|logfmt|pattern|regexp|unpack|line_format|label_format|drop|keep|decolorize)\b")
_RANGE_AGGREGATIONS = {"count_over_time", "rate", "bytes_over_time", "bytes_rate", "sum_over_time", "avg_over_time",
                       "max_over_time", "min_over_time", "quantile_over_time", "first_over_time", "last_over_time",
                       "absent_over_time"}
_VECTOR_AGGREGATIONS = {"sum", "avg", "min", "max", "count", "topk", "bottomk", "sort", "sort_desc", "stddev", "stdvar"}


def _balanced(query: str) -> str | None:
    pairs = {")": "(", "]": "[", "}": "{"}
    stack: list[str] = []
    for char in _STRING.sub('""', query):
        if char in "([{":
            stack.append(char)
        elif char in pairs:
            if not stack or stack.pop() != pairs[char]:
                return f"unbalanced {char!r}"
    return f"unclosed {stack[-1]!r}" if stack else None


def logql_problems(query: str) -> list[str]:
    """Syntax problems of a LogQL log or metric query (empty when it looks valid)."""
    problem = _balanced(query)
    if problem:
        return [problem]
    problems: list[str] = []
    functions = set(re.findall(r"\b([a-z_]+)\s*\(", _STRING.sub('""', query))) - {"by", "without"}
    for function in functions - _RANGE_AGGREGATIONS - _VECTOR_AGGREGATIONS:
        problems.append(f"unknown function {function}")
    if functions & _VECTOR_AGGREGATIONS and not functions & _RANGE_AGGREGATIONS:
        problems.append("a vector aggregation needs a range aggregation inside it")
    for selector_match in re.finditer(r"\{([^{}]*)\}", query):
        selector = selector_match.group(1)
        if not selector.strip():
            problems.append("empty stream selector")
        for matcher in _split_matchers(selector):
            if not _MATCHER.fullmatch(matcher):
                problems.append(f"bad label matcher {matcher.strip()!r}")
        pipeline = query[selector_match.end():]
        pipeline = re.split(r"\[[^\]]*\]", pipeline, maxsplit=1)[0].strip()
        while pipeline and pipeline[0] not in ")":
            stage = _LINE_FILTER.match(pipeline) or _LABEL_FILTER.match(pipeline) or _PARSER_STAGE.match(pipeline)
            if not stage:
                problems.append(f"unknown pipeline stage at {pipeline[:30]!r}")
                break
            pipeline = pipeline[stage.end():].strip()
    if not re.search(r"\{[^{}]*\}", query):
        problems.append("no stream selector")
    return problems


def _split_matchers(selector: str) -> list[str]:
    parts, current, quoted = [], "", False
    for i, char in enumerate(selector):
        if char == '"' and (i == 0 or selector[i - 1] != "\\"):
            quoted = not quoted
        if char == "," and not quoted:
            parts.append(current)
            current = ""
        else:
            current += char
    parts.append(current)
    return [p for p in parts if p.strip()]


# --- TraceQL ---------------------------------------------------------------------------

_TRACEQL_ATTRIBUTE = r"(?:(?:span|resource|event|link|instrumentation)\.[A-Za-z_][\w.]*|\.[A-Za-z_][\w.]*|status|kind|name|duration|statusMessage|rootName|rootServiceName|traceDuration)"
_TRACEQL_VALUE = r'(?:"(?:[^"\\]|\\.)*"|-?[\d.]+(?:ns|us|ms|s|m|h)?|nil|true|false|error|ok|unset|server|client|producer|consumer|internal)'
_TRACEQL_CONDITION = re.compile(rf"\s*{_TRACEQL_ATTRIBUTE}\s*(=~|!~|!=|>=|<=|=|>|<)\s*{_TRACEQL_VALUE}\s*")
_TRACEQL_PIPE = re.compile(rf"^\|\s*(select|by|count|avg|max|min|sum)\s*\(\s*(?:{_TRACEQL_ATTRIBUTE}\s*,?\s*)*\)\s*")


def traceql_problems(query: str) -> list[str]:
    """Syntax problems of a TraceQL query (empty when it looks valid)."""
    problem = _balanced(query)
    if problem:
        return [problem]
    match = re.match(r"^\s*\{([^{}]*)\}\s*", query)
    if not match:
        return ["a TraceQL query starts with a { span selector }"]
    problems = []
    body = match.group(1)
    if body.strip():
        for condition in re.split(r"&&|\|\|", body):
            if not _TRACEQL_CONDITION.fullmatch(condition):
                problems.append(f"bad condition {condition.strip()!r}")
    rest = query[match.end() :]
    while rest.strip():
        stage = _TRACEQL_PIPE.match(rest.strip())
        if not stage:
            problems.append(f"unknown pipeline stage at {rest.strip()[:30]!r}")
            break
        rest = rest.strip()[stage.end() :]
    return problems

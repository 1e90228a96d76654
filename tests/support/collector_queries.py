"""Reading the queries out of the collector bundle, and offline checks for them.

Used by ``test_dashboards.py``, ``test_contract.py`` and the end-to-end tests.  PromQL is parsed
by promtool; LogsQL by a running VictoriaLogs (``test_dashboards.py``), so no parser of our own.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
DASHBOARDS = sorted((ROOT / "collector" / "grafana" / "dashboards").glob("*.json"))
RULES = ROOT / "collector" / "prometheus" / "rules" / "otel-monitor.rules.yaml"

# Grafana's built-in variables, replaced by values a parser accepts.
GRAFANA_DURATIONS = {"$__rate_interval": "5m", "$__interval": "1m", "$__range": "1h", "$__auto": "1m"}
_VARIABLE = re.compile(r"\$\{?([A-Za-z_]\w*)(?::\w+)?\}?")  # not $1, a label_replace group


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


def dashboard_targets(kind: str) -> Iterator[tuple[str, str, dict[str, Any]]]:
    """(dashboard file, panel title, target) of every panel target of one datasource type."""
    for path in DASHBOARDS:
        for panel in panels(load_dashboard(path)):
            for target in panel.get("targets", []):
                if (target.get("datasource") or panel.get("datasource") or {}).get("type") == kind:
                    yield path.name, panel.get("title", ""), target


@functools.cache
def rule_expressions() -> tuple[tuple[str, str], ...]:
    """(rule name, PromQL) of every recording and alerting rule."""
    groups = yaml.safe_load(RULES.read_text())["groups"]
    return tuple((rule.get("record") or rule["alert"], rule["expr"]) for group in groups for rule in group["rules"])


@functools.cache
def recorded_names() -> frozenset[str]:
    return frozenset(name for name, _ in rule_expressions() if ":" in name)


def substitute_variables(query: str, values: dict[str, str] | None = None) -> str:
    """Grafana's ``$__rate_interval`` etc. become durations; user variables their value in ``values``,
    or a placeholder value when they have none there."""
    for name, value in GRAFANA_DURATIONS.items():
        query = query.replace(name, value)
    known = values or {}
    return _VARIABLE.sub(lambda match: known.get(match.group(1), "placeholder"), query)


def dashboard_variables(dashboard: dict[str, Any]) -> list[dict[str, Any]]:
    """The dashboard's template variables, in the order Grafana resolves them."""
    return list(dashboard.get("templating", {}).get("list", []))


# --- PromQL --------------------------------------------------------------------------

_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')
_GROUPING = re.compile(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")
_KEYWORDS = {
    "and",
    "or",
    "unless",
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
    "offset",
    "bool",
    "inf",
    "nan",
    "placeholder",
}
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

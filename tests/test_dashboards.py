"""Grafana provisioning and dashboards: every query checked offline, every datasource defined."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from .collector_queries import (
    DASHBOARDS,
    ROOT,
    dashboard_queries,
    load_dashboard,
    logql_problems,
    panels,
    substitute_variables,
    traceql_problems,
)

PROVISIONING = ROOT / "collector" / "grafana" / "provisioning"
EXPECTED = {"overview", "operations", "errors", "journeys", "collector", "business"}


def _datasources() -> dict[str, dict]:
    config = yaml.safe_load((PROVISIONING / "datasources" / "datasources.yaml").read_text())
    return {d["uid"]: d for d in config["datasources"]}


def _every_datasource_reference(node):
    if isinstance(node, dict):
        datasource = node.get("datasource")
        if isinstance(datasource, dict) and "uid" in datasource:
            yield datasource
        for value in node.values():
            yield from _every_datasource_reference(value)
    elif isinstance(node, list):
        for value in node:
            yield from _every_datasource_reference(value)


def test_the_dashboards_exist():
    """Service overview, operations, errors, journeys, business and collector health are provisioned as files."""
    assert {p.stem for p in DASHBOARDS} == EXPECTED


def test_dashboard_provider_points_at_the_mounted_folder():
    """The file provider reads the folder docker compose mounts the dashboards into."""
    provider = yaml.safe_load((PROVISIONING / "dashboards" / "dashboards.yaml").read_text())["providers"][0]
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    mounts = {v.split(":")[0]: v.split(":")[1] for v in compose["services"]["grafana"]["volumes"] if v.startswith("./")}
    assert mounts["./collector/grafana/dashboards"] == provider["options"]["path"]


def test_datasources_have_fixed_unique_uids():
    """Each provisioned datasource has a fixed uid, and uids are unique."""
    config = yaml.safe_load((PROVISIONING / "datasources" / "datasources.yaml").read_text())
    uids = [d["uid"] for d in config["datasources"]]
    assert len(uids) == len(set(uids)) and all(uids)


def test_every_datasource_uid_used_exists():
    """Every datasource a dashboard, panel, target or variable names is provisioned with that uid and type."""
    known = _datasources()
    for path in DASHBOARDS:
        for reference in _every_datasource_reference(load_dashboard(path)):
            assert reference["uid"] in known, f"{path.name}: unknown datasource uid {reference['uid']}"
            assert known[reference["uid"]]["type"] == reference["type"], f"{path.name}: {reference}"


def test_cross_links_between_signals_point_at_existing_datasources():
    """Logs link to traces, traces to logs and metrics: each link names a provisioned datasource."""
    known = _datasources()
    loki, tempo = known["loki"]["jsonData"], known["tempo"]["jsonData"]
    assert {f["datasourceUid"] for f in loki["derivedFields"]} <= set(known)
    assert tempo["tracesToLogsV2"]["datasourceUid"] == "loki"
    assert tempo["tracesToMetrics"]["datasourceUid"] in known


def test_dashboard_uids_are_unique_and_stable():
    """Each dashboard has its own fixed uid (links and bookmarks survive re-provisioning)."""
    uids = [load_dashboard(p)["uid"] for p in DASHBOARDS]
    assert len(set(uids)) == len(uids) and all(u.startswith("otel-monitor-") for u in uids)


@pytest.mark.parametrize("path", DASHBOARDS, ids=[p.name for p in DASHBOARDS])
def test_every_panel_has_a_unit_and_thresholds(path):
    """Each panel sets a unit and thresholds, so values read right and colour when bad."""
    for panel in panels(load_dashboard(path)):
        defaults = panel["fieldConfig"]["defaults"]
        assert defaults.get("unit"), f"{path.name}: {panel['title']} has no unit"
        steps = defaults.get("thresholds", {}).get("steps")
        assert steps and steps[0]["value"] is None, f"{path.name}: {panel['title']} has no thresholds"


@pytest.mark.parametrize("path", DASHBOARDS, ids=[p.name for p in DASHBOARDS])
def test_panels_do_not_overlap(path):
    """Panels occupy distinct grid cells within Grafana's 24 columns."""
    taken: set[tuple[int, int]] = set()
    for panel in panels(load_dashboard(path)):
        g = panel["gridPos"]
        assert g["x"] + g["w"] <= 24, panel["title"]
        cells = {(x, y) for x in range(g["x"], g["x"] + g["w"]) for y in range(g["y"], g["y"] + g["h"])}
        assert not cells & taken, f"{path.name}: {panel['title']} overlaps another panel"
        taken |= cells


def test_every_promql_query_parses(tmp_path: Path):
    """promtool parses every Prometheus panel query (Grafana variables substituted)."""
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool not found: apt-get install prometheus")
    rules = [{"record": f"dashboard:query:{i}", "expr": substitute_variables(query)}
             for i, (_, _, kind, query) in enumerate(dashboard_queries()) if kind == "prometheus"]
    assert len(rules) > 20
    rule_file = tmp_path / "dashboards.rules.yaml"
    rule_file.write_text(yaml.safe_dump({"groups": [{"name": "dashboards", "rules": rules}]}))
    result = subprocess.run([promtool, "check", "rules", str(rule_file)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("kind, problems", [("loki", logql_problems), ("tempo", traceql_problems)])
def test_every_logql_and_traceql_query_is_well_formed(kind, problems):
    """Loki and Tempo panel queries pass the LogQL / TraceQL syntax check (selectors, matchers, stages)."""
    queries = [(name, title, query) for name, title, k, query in dashboard_queries() if k == kind]
    assert queries, f"no {kind} panel"
    for name, title, query in queries:
        assert problems(substitute_variables(query)) == [], f"{name}: {title}: {query}"


@pytest.mark.parametrize("query, problem", [
    ('{service_name="shop"', "unclosed"),
    ('{service_name=shop}', "bad label matcher"),
    ('{service_name="shop"} | frobnicate', "unknown pipeline stage"),
    ('sum by (level) (count_over_time({app="a"} |= "x" | json [5m]))', None),
    ('sum({app="a"})', "range aggregation"),
])
def test_logql_check_rejects_malformed_queries(query, problem):
    """The LogQL check flags unbalanced braces, unquoted values, unknown stages, missing range aggregations; passes a valid one."""
    problems = logql_problems(query)
    if problem is None:
        assert problems == []
    else:
        assert any(problem in p for p in problems), problems


@pytest.mark.parametrize("query, problem", [
    ("{ status = error", "unclosed"),
    ("status = error", "starts with"),
    ("{ span.x === 1 }", "bad condition"),
    ("{ status = error } | frobnicate(span.x)", "unknown pipeline stage"),
])
def test_traceql_check_rejects_malformed_queries(query, problem):
    """The TraceQL check flags unbalanced braces, missing selectors, bad conditions and unknown stages."""
    assert any(problem in p for p in traceql_problems(query))

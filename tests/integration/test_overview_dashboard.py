"""The overview dashboard's uptime, host and queue panels, evaluated by promtool with the generated rules
on series whose truth is known."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from otel_monitor.alerting.rules import generate
from otel_monitor.semantics.slo import SLOs
from otel_monitor.semantics.uptime import Probe, Uptime
from tests.support.collector_queries import ROOT, load_dashboard

OVERVIEW = ROOT / "collector" / "grafana" / "dashboards" / "overview.json"
MINUTES = 60  # samples at minutes 0..60: 61 of each series
LISTED, UNLISTED = "http://a.test/", "http://b.test/"
UPTIME = Uptime(
    objective=0.999, probes=(Probe(LISTED, objective=0.9),), health_checks={"database": 0.95}, configured=True
)

# Up (1) or down (0) at each minute: the listed URL is down 6 minutes, the unlisted one never; the
# database check is down on one of its two instances for 3 minutes (a check is up only when up on all).
PROBE_A = [0 if 30 <= m < 36 else 1 for m in range(MINUTES + 1)]
PROBE_B = [1] * (MINUTES + 1)
DATABASE_I2 = [0 if 10 <= m < 13 else 1 for m in range(MINUTES + 1)]


def _truth(up: list[int], objective: float) -> tuple[float, float, float]:
    uptime = sum(up) / len(up)
    return uptime, objective, 1 - (1 - uptime) / (1 - objective)


def _constant(value: float) -> str:
    return f"{value}x{MINUTES}"


def _updown(points: list[int]) -> str:
    return " ".join(str(p) for p in points)


SERIES = {
    f'httpcheck_status{{job="otel-monitor-probe", http_url="{LISTED}", http_method="GET", http_status_class="2xx"}}': (
        _updown(PROBE_A)
    ),
    f'httpcheck_status{{job="otel-monitor-probe", http_url="{UNLISTED}", http_method="GET", '
    'http_status_class="2xx"}': _updown(PROBE_B),
    'monitor_health_status{job="shop", instance="i1", monitor_health_check="database"}': _constant(1),
    'monitor_health_status{job="shop", instance="i2", monitor_health_check="database"}': _updown(DATABASE_I2),
    'system_cpu_utilization_ratio{job="host", instance="h1", cpu="cpu0", state="idle"}': _constant(0.2),
    'system_cpu_utilization_ratio{job="host", instance="h1", cpu="cpu1", state="idle"}': _constant(0.4),
    'system_cpu_utilization_ratio{job="host", instance="h1", cpu="cpu0", state="user"}': _constant(0.7),
    'system_memory_utilization_ratio{job="host", instance="h1", state="used"}': _constant(0.6),
    'system_memory_utilization_ratio{job="host", instance="h1", state="free"}': _constant(0.4),
    'system_filesystem_utilization_ratio{job="host", instance="h1", mountpoint="/", device="sda1"}': _constant(0.5),
    'system_filesystem_utilization_ratio{job="host", instance="h1", mountpoint="/data", device="sdb1"}': _constant(0.9),
    'monitor_queue_depth{job="shop", instance="i1", monitor_queue_name="order_emails"}': _constant(300),
    'monitor_queue_depth{job="shop", instance="i2", monitor_queue_name="order_emails"}': _constant(250),
}
URL_ROWS = {
    f'job="otel-monitor-probe", http_url="{LISTED}"': _truth(PROBE_A, 0.9),
    f'job="otel-monitor-probe", http_url="{UNLISTED}"': _truth(PROBE_B, 0.999),
}
CHECK_ROWS = {'job="shop", monitor_health_check="database"': _truth(DATABASE_I2, 0.95)}
# (panel, target) -> {labels: value}: the truth of each figure at the end of the hour.
EXPECTED = {
    **{("Uptime of probed URLs (30 days)", i): {k: v[i] for k, v in URL_ROWS.items()} for i in range(3)},
    **{("Uptime of health checks (30 days)", i): {k: v[i] for k, v in CHECK_ROWS.items()} for i in range(3)},
    ("Host CPU", 0): {'instance="h1"': 1 - (0.2 + 0.4) / 2},
    ("Host memory", 0): {'instance="h1"': 0.6},
    ("Host disk used", 0): {'instance="h1", mountpoint="/"': 0.5, 'instance="h1", mountpoint="/data"': 0.9},
    ("Queue depth", 0): {'job="shop", monitor_queue_name="order_emails"': 550},
}


def _query(title: str, target: int) -> str:
    (panel,) = [p for p in load_dashboard(OVERVIEW)["panels"] if p["title"] == title]
    return panel["targets"][target]["expr"].replace("$service", ".*")


def test_the_uptime_tables_show_uptime_objective_and_budget_left_side_by_side():
    """Each uptime table has three instant table queries: uptime, objective and budget left, named so."""
    for title in ("Uptime of probed URLs (30 days)", "Uptime of health checks (30 days)"):
        (panel,) = [p for p in load_dashboard(OVERVIEW)["panels"] if p["title"] == title]
        assert [t["refId"] for t in panel["targets"]] == ["A", "B", "C"]
        assert all(t["instant"] and t["format"] == "table" for t in panel["targets"])
        (organize,) = [t for t in panel["transformations"] if t["id"] == "organize"]
        names = organize["options"]["renameByName"]
        assert names == {"Value #A": "uptime", "Value #B": "objective", "Value #C": "budget left"}


@pytest.mark.promtool
def test_uptime_host_and_queue_panels_match_the_truth(tmp_path: Path):
    """Uptime, objective and budget left per URL (listed or not) and per check, host CPU, memory and disk,
    and queue depth summed over instances are exact."""
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool not found")
    (tmp_path / "otel-monitor.rules.yaml").write_text(generate(SLOs(), "otel-monitor.yaml", uptime=UPTIME))
    tests = []
    for (title, target), rows in EXPECTED.items():
        # Rounded: ratios such as 55/61 leave float noise in the last digits.
        tests.append(
            {
                "expr": f"round({_query(title, target)}, 0.000001)",
                "eval_time": f"{MINUTES}m",
                "exp_samples": [
                    {"labels": f"{{{labels}}}", "value": round(value, 6)} for labels, value in rows.items()
                ],
            }
        )
    spec = {
        "rule_files": ["otel-monitor.rules.yaml"],
        "evaluation_interval": "1m",
        "tests": [
            {
                "interval": "1m",
                "input_series": [{"series": name, "values": values} for name, values in SERIES.items()],
                "promql_expr_test": tests,
            }
        ],
    }
    (tmp_path / "overview.test.yaml").write_text(yaml.safe_dump(spec))
    result = subprocess.run(
        [promtool, "test", "rules", "overview.test.yaml"], capture_output=True, text=True, cwd=tmp_path
    )
    assert result.returncode == 0, result.stdout + result.stderr

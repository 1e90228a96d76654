"""The business and funnel dashboards' figures, evaluated by promtool on series whose truth is known."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.support.collector_queries import ROOT, load_dashboard

DASHBOARDS = ROOT / "collector" / "grafana" / "dashboards"

# One hour of a shop: 30 orders of 20 EUR (600 EUR), 60 EUR refunded, 120 carts started,
# 200 visitors of whom 50 came back from an earlier day. Counters start at 0 and grow evenly.
SERIES = {
    'monitor_business_amount_sum{job="shop", monitor_kpi="revenue", monitor_business_currency="EUR"}': 600,
    'monitor_business_amount_count{job="shop", monitor_kpi="revenue", monitor_business_currency="EUR"}': 30,
    'monitor_business_amount_sum{job="shop", monitor_kpi="refund", monitor_business_currency="EUR"}': 60,
    'monitor_business_amount_count{job="shop", monitor_kpi="refund", monitor_business_currency="EUR"}': 3,
    'monitor_business_events_total{job="shop", monitor_kpi="cart_started"}': 120,
    'monitor_business_events_total{job="shop", monitor_kpi="order_placed"}': 30,
    'monitor_business_users_total{job="shop", monitor_kpi="visitor", monitor_business_returning="false"}': 150,
    'monitor_business_users_total{job="shop", monitor_kpi="visitor", monitor_business_returning="true"}': 50,
    # The funnel with a journey store: 40 users reached checkout 70 times.
    'monitor_journey_milestones_total{job="shop", monitor_journey_name="purchase", '
    'monitor_journey_step="first_purchase", monitor_journey_first="true"}': 40,
    'monitor_journey_milestones_total{job="shop", monitor_journey_name="purchase", '
    'monitor_journey_step="first_purchase", monitor_journey_first="false"}': 30,
}
MINUTES = 60
# The truth of each panel over that hour.
EXPECTED = {
    ("business.json", "Revenue"): 600,
    ("business.json", "Orders"): 30,
    ("business.json", "Average order value"): 20,
    ("business.json", "Refund rate"): 0.1,
    ("business.json", "Cart abandonment"): 0.75,
    ("business.json", "Return-visit rate"): 0.25,
    ("journeys.json", "Funnel: distinct users reaching each step"): 40,
}


def _query(dashboard: str, title: str) -> str:
    (panel,) = [p for p in load_dashboard(DASHBOARDS / dashboard)["panels"] if p["title"] == title]
    query = panel["targets"][0]["expr"]
    for name, value in (("$__range", "1h"), ("$service", ".*"), ("$currency", "EUR"), ("$journey", "purchase")):
        query = query.replace(name, value)
    # Over an hour of data, a day's increase is the hour's: evaluate at the end of the hour.
    return query.replace("[1d]", "[1h]")


@pytest.mark.promtool
def test_business_and_funnel_panels_match_the_truth(tmp_path: Path):
    """Revenue, orders, order value, refund rate, abandonment, return visits and funnel users are exact."""
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool not found")
    (tmp_path / "empty.rules.yaml").write_text("groups: []\n")
    tests = []
    for (dashboard, title), value in EXPECTED.items():
        # Rounded: per-minute increments such as 50/60 leave float noise in the last digits.
        tests.append(
            {
                "expr": f"round(sum({_query(dashboard, title)}), 0.000001)",
                "eval_time": f"{MINUTES}m",
                "exp_samples": [{"labels": "{}", "value": value}],
            }
        )
    # increase() extrapolates to the window's edges: samples from minute 0 to 60 cover exactly the hour.
    series = [{"series": name, "values": f"0+{total / MINUTES}x{MINUTES}"} for name, total in SERIES.items()]
    spec = {
        "rule_files": ["empty.rules.yaml"],
        "evaluation_interval": "1m",
        "tests": [{"interval": "1m", "input_series": series, "promql_expr_test": tests}],
    }
    (tmp_path / "business.test.yaml").write_text(yaml.safe_dump(spec))
    result = subprocess.run(
        [promtool, "test", "rules", "business.test.yaml"], capture_output=True, text=True, cwd=tmp_path
    )
    assert result.returncode == 0, result.stdout + result.stderr

"""KPI objectives: the kpis: section, its errors, and the rules generated from it."""

from __future__ import annotations

import textwrap

import pytest
import yaml

from otel_monitor.alerting.rules import generate
from otel_monitor.config.file import parse_config_text
from otel_monitor.semantics.kpis import KPI, Source, load_kpis
from otel_monitor.semantics.slo import SLOs

CONFIG = textwrap.dedent("""
    kpis:
      conversion_rate:
        ratio: {of: {users: buyer}, to: {users: visitor}}
        min: 0.02
      cart_abandonment:
        ratio: {of: {count: order_placed}, to: {count: cart_started}}
        complement: true
        max: 0.9
        severity: info
      hourly_revenue:
        total: {amount: revenue, currency: EUR}
        window: 1h
        min: 50
""")


def test_kpis_are_read_with_their_defaults():
    """Each KPI keeps its sources, objective and severity; window 1h and for 15m by default."""
    kpis = {k.name: k for k in load_kpis(parse_config_text(CONFIG, "c.yaml"))}
    assert kpis["conversion_rate"] == KPI(
        "conversion_rate", Source("users", "buyer"), Source("users", "visitor"), minimum=0.02
    )
    assert kpis["cart_abandonment"].complement and kpis["cart_abandonment"].severity == "info"
    assert kpis["hourly_revenue"].to is None and kpis["hourly_revenue"].of == Source("amount", "revenue", "EUR")


def test_kpi_values_and_objectives():
    """A ratio, its complement and a total; a missing denominator is no value, not an alert."""
    conversion, abandonment, revenue = load_kpis(parse_config_text(CONFIG, "c.yaml"))
    assert conversion.value(3, 60) == pytest.approx(0.05) and conversion.missed(0.01) == "below"
    assert abandonment.value(1, 20) == pytest.approx(0.95) and abandonment.missed(0.95) == "above"
    assert revenue.value(40) == 40 and revenue.missed(40) == "below" and revenue.missed(60) is None
    assert conversion.value(0, 0) is None and conversion.missed(None) is None


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("kpis:\n  x:\n    total: {count: a}\n", "c.yaml:2: a KPI objective needs min: or max:"),
        ("kpis:\n  x:\n    total: {amount: a}\n    min: 1\n", "c.yaml:3: an amount source needs currency"),
        ("kpis:\n  x:\n    ratio: {of: {count: a}}\n    min: 1\n", "c.yaml:3: ratio is {of: <source>, to: <source>}"),
        ("kpis:\n  x:\n    total: {count: a}\n    min: lots\n", "c.yaml:4: min must be a number"),
        ("kpis:\n  x:\n    total: {count: a}\n    min: 1\n    severity: page\n", "c.yaml:5: severity is one of"),
        ("kpis:\n  X-1:\n    total: {count: a}\n    min: 1\n", "c.yaml:2: KPI name 'X-1'"),
        ("kpis:\n  x:\n    total: {count: a}\n    min: 1\n    window: hour\n", "c.yaml:5: window is a duration"),
    ],
)
def test_bad_kpis_name_file_and_line(text, message, caplog):
    """A bad KPI is reported with its file and line and skipped; the others are kept."""
    assert load_kpis(parse_config_text(text, "c.yaml")) == []
    assert message in caplog.text


def test_rules_record_each_kpi_and_alert_on_its_objective():
    """One monitor:kpi_value recording per KPI; a below/above alert per bound, with the KPI's severity and for."""
    kpis = load_kpis(parse_config_text(CONFIG, "c.yaml"))
    groups = yaml.safe_load(generate(SLOs(), "c.yaml", kpis=kpis))["groups"]
    (group,) = [g for g in groups if g["name"] == "otel-monitor.kpis"]
    recorded = [r["labels"]["monitor_kpi"] for r in group["rules"] if "record" in r]
    alerts = [
        (r["alert"], r["labels"]["monitor_kpi"], r["labels"]["severity"], r["expr"])
        for r in group["rules"]
        if "alert" in r
    ]
    assert recorded == ["conversion_rate", "cart_abandonment", "hourly_revenue"]
    assert alerts == [
        ("KpiBelowObjective", "conversion_rate", "warning", 'monitor:kpi_value{monitor_kpi="conversion_rate"} < 0.02'),
        ("KpiAboveObjective", "cart_abandonment", "info", 'monitor:kpi_value{monitor_kpi="cart_abandonment"} > 0.9'),
        ("KpiBelowObjective", "hourly_revenue", "warning", 'monitor:kpi_value{monitor_kpi="hourly_revenue"} < 50'),
    ]
    total = next(r["expr"] for r in group["rules"] if r.get("labels", {}).get("monitor_kpi") == "hourly_revenue")
    assert total == (
        'sum by (job) (increase(monitor_business_amount_sum{monitor_kpi="revenue", '
        'monitor_business_currency="EUR"}[1h]))'
    )

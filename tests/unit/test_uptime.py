"""The config file's uptime: section, and the uptime rules generated from it."""

from __future__ import annotations

import yaml

from otel_monitor.alerting.rules import generate, uptime_group
from otel_monitor.config.file import parse_config_text
from otel_monitor.semantics.slo import load_slos
from otel_monitor.semantics.uptime import DEFAULT_OBJECTIVE, Probe, Uptime, load_uptime

SECTION = """\
uptime:
  objective: 0.999
  interval: 15s
  timeout: 800ms
  probes:
    - https://shop.example.com/
    - url: https://shop.example.com/api/health
      objective: 0.9995
      method: head
  health_checks:
    database: 0.9999
"""


def _load(text: str) -> tuple[Uptime, list[str]]:
    problems: list[str] = []
    return load_uptime(parse_config_text(text, "otel-monitor.yaml"), problems=problems), problems


def test_the_section_is_read_with_defaults_and_overrides():
    """URLs as strings or mappings; per-probe and per-check objectives; durations in s and ms."""
    uptime, problems = _load(SECTION)
    assert problems == []
    assert uptime.probes == (
        Probe("https://shop.example.com/", "GET", 0.999),
        Probe("https://shop.example.com/api/health", "HEAD", 0.9995),
    )
    assert (uptime.interval, uptime.timeout) == (15.0, 0.8)
    assert uptime.health_objective("database") == 0.9999
    assert uptime.health_objective("payments") == 0.999


def test_no_section_means_no_uptime_rules():
    """Without uptime:, nothing is configured and the rule file has no uptime group."""
    uptime, problems = _load("slos: {}\n")
    assert not uptime.configured and problems == [] and uptime.objective == DEFAULT_OBJECTIVE
    text = generate(load_slos(parse_config_text("slos: {}\n", "c.yaml")), "c.yaml", uptime=uptime)
    assert "otel-monitor.uptime" not in text


def test_bad_entries_are_reported_with_file_and_line_and_skipped():
    """A bad URL, method, objective, duplicate or unknown key names its line; the good probe stays."""
    uptime, problems = _load(
        "uptime:\n"
        "  interval: soon\n"
        "  color: red\n"
        "  probes:\n"
        "    - url: javascript:alert(1)\n"
        "    - {url: 'https://a.test/', method: DELETE}\n"
        "    - {url: 'https://a.test/', objective: 1.5}\n"
        "    - https://b.test/\n"
        "    - https://b.test/\n"
        "  health_checks:\n"
        "    'bad name!': 0.9\n"
    )
    assert [p.url for p in uptime.probes] == ["https://b.test/"]
    assert uptime.interval == 30.0
    assert problems == [
        "otel-monitor.yaml:3: unknown key 'color'",
        "otel-monitor.yaml:2: a duration between 100ms and 60m such as 30s, got 'soon'",
        "otel-monitor.yaml:5: an http:// or https:// URL with a host, got 'javascript:alert(1)'",
        "otel-monitor.yaml:6: method is one of GET, HEAD, POST, OPTIONS, got 'DELETE'",
        "otel-monitor.yaml:7: an uptime objective is a fraction such as 0.999, got 1.5",
        "otel-monitor.yaml:9: GET https://b.test/ is listed twice",
        "otel-monitor.yaml:11: 'bad name!' is not a check name",
    ]


def test_a_url_with_credentials_is_refused_without_echoing_them():
    """http.url is exported with every probe: a URL carrying a password is refused, and the message omits it."""
    uptime, problems = _load("uptime:\n  probes:\n    - https://admin:s3cret@shop.example.com/\n")
    assert uptime.probes == ()
    assert problems == ["otel-monitor.yaml:3: a probe URL must not carry a user name or password"]


def _alerts(uptime: Uptime) -> list[dict]:
    return [r for r in uptime_group(uptime)["rules"] if "alert" in r]


def test_each_probe_gets_burn_rate_alerts_at_its_own_objective():
    """Four burn-rate pairs and a 30-day alert per URL, with limits from its objective."""
    uptime, _ = _load(SECTION)
    alerts = [a for a in _alerts(uptime) if a["labels"]["uptime_of"] == "probe"]
    health = [a for a in alerts if a["labels"]["uptime_target"] == "https://shop.example.com/api/health"]
    assert [a["alert"] for a in health] == ["UptimeBudgetBurn"] * 4 + ["UptimeBelowObjective"]
    # 14.4x a 0.05% budget: 0.72% down over 1h and 5m.
    assert health[0]["expr"] == (
        '1 - monitor:probe_uptime:ratio_1h{http_url="https://shop.example.com/api/health"} > 0.0072\n'
        "and\n"
        '1 - monitor:probe_uptime:ratio_5m{http_url="https://shop.example.com/api/health"} > 0.0072'
    )
    assert health[-1]["expr"] == (
        'monitor:probe_uptime:ratio_30d{http_url="https://shop.example.com/api/health"} < 0.9995'
    )


def test_health_checks_get_their_objective_and_the_rest_the_default():
    """A named check has its own alerts; every other check shares the default's, excluding the named ones."""
    uptime, _ = _load(SECTION.replace("database: 0.9999", "db.primary: 0.9999"))
    alerts = [a for a in _alerts(uptime) if a["labels"]["uptime_of"] == "health_check"]
    by_target = {a["labels"]["uptime_target"] for a in alerts}
    assert by_target == {"db.primary", "default"}
    default = next(a for a in alerts if a["labels"]["uptime_target"] == "default" and a["alert"] != "UptimeBudgetBurn")
    assert default["expr"] == 'monitor:health_check_uptime:ratio_30d{monitor_health_check!~"db\\\\.primary"} < 0.999'


def test_a_quote_in_a_url_cannot_break_out_of_the_selector():
    """The URL is escaped as a PromQL string."""
    uptime = Uptime(probes=(Probe('https://a.test/?q="x"\\'),), configured=True)
    (expr,) = [a["expr"] for a in _alerts(uptime) if a["labels"]["uptime_of"] == "probe" and "30d" in a["expr"]]
    assert expr == 'monitor:probe_uptime:ratio_30d{http_url="https://a.test/?q=\\"x\\"\\\\"} < 0.999'


def test_the_shipped_rule_file_has_the_example_shops_uptime_objectives():
    """collector/prometheus/rules carries the shop's probes and health-check objectives."""
    from tests.support.otelcol import COLLECTOR

    rules = yaml.safe_load((COLLECTOR / "prometheus" / "rules" / "otel-monitor.rules.yaml").read_text())
    (group,) = [g for g in rules["groups"] if g["name"] == "otel-monitor.uptime"]
    targets = {r["labels"]["uptime_target"] for r in group["rules"] if "alert" in r}
    assert targets == {"http://localhost:8000/ping", "http://localhost:8000/api/products", "database", "default"}


def test_otel_monitor_config_checks_the_uptime_section(tmp_path):
    """The launcher's configuration check (otel-monitor config, the rules command) reports a bad uptime: entry."""
    from otel_monitor.launcher.config_check import check_configuration

    path = tmp_path / "otel-monitor.yaml"
    path.write_text("uptime:\n  probes:\n    - url: ftp://example.com/\n")
    problems = check_configuration(str(path), environ={}).problems
    assert f"{path}:3: an http:// or https:// URL with a host, got 'ftp://example.com/'" in problems

"""Runbooks: every generated alert names one, the file exists and says what to check and do."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from otel_monitor.alerting.rules import generate
from otel_monitor.cli import main
from otel_monitor.config.file import parse_config_text
from otel_monitor.console.alerts import AlertBook, RuleState, alertmanager_payload
from otel_monitor.console.store import Store
from otel_monitor.semantics.alert_timing import load_runbook_base
from otel_monitor.semantics.slo import load_slos

ROOT = Path(__file__).resolve().parents[2]
RUNBOOKS = ROOT / "docs" / "runbooks"
RULES = ROOT / "collector" / "prometheus" / "rules" / "otel-monitor.rules.yaml"
SECTIONS = ("## What it means", "## How to check", "## Usual causes", "## Mitigation")


def _alerts(text: str) -> list[dict]:
    return [r for g in yaml.safe_load(text)["groups"] for r in g["rules"] if "alert" in r]


def test_every_committed_alert_has_a_runbook_that_exists():
    """Each alert of the committed rule file carries runbook_url, and that runbook is in docs/runbooks."""
    alerts = _alerts(RULES.read_text())
    assert alerts
    for alert in alerts:
        url = alert["annotations"]["runbook_url"]
        assert url == f"docs/runbooks/{alert['alert']}.md"
        assert (ROOT / url).is_file(), url


def test_every_runbook_has_its_four_sections_and_an_alert():
    """Each runbook says what it means, how to check, the usual causes and the mitigation; none is orphaned."""
    names = {a["alert"] for a in _alerts(RULES.read_text())}
    for path in RUNBOOKS.glob("*.md"):
        if path.name == "README.md":
            continue
        text = path.read_text()
        assert all(s in text for s in SECTIONS), path.name
        assert path.stem in names, f"{path.name}: no generated alert of that name"
        assert f"[{path.stem}]({path.name})" in (RUNBOOKS / "README.md").read_text()


def test_runbook_queries_parse(tmp_path):
    """promtool parses every PromQL block of the runbooks (placeholders filled in)."""
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool not found")
    queries = []
    for path in sorted(RUNBOOKS.glob("*.md")):
        for block in re.findall(r"```promql\n(.*?)```", path.read_text(), re.S):
            queries += [
                q.replace("<op>", "checkout")
                .replace("<category>", "timeout")
                .replace("<kpi>", "refund_rate")
                .replace("<host>", "node-a")
                for q in block.splitlines()
                if q.strip()
            ]
    assert len(queries) > 20
    rules = [{"record": f"runbook:query:{i}", "expr": q} for i, q in enumerate(queries)]
    path = tmp_path / "runbooks.rules.yaml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "runbooks", "rules": rules}]}))
    result = subprocess.run([promtool, "check", "rules", str(path)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_base_url_comes_from_the_config_file(tmp_path, capsys):
    """alerting.runbook_base_url prefixes every runbook_url; a javascript: URL is refused with its line."""
    config = tmp_path / "otel-monitor.yaml"
    config.write_text("alerting:\n  runbook_base_url: https://wiki.example.com/runbooks/\n")
    assert main(["rules", "--config", str(config)]) == 0
    alerts = _alerts(capsys.readouterr().out)
    assert {a["annotations"]["runbook_url"] for a in alerts if a["alert"] == "ServiceDown"} == {
        "https://wiki.example.com/runbooks/ServiceDown.md"
    }
    config.write_text("alerting:\n  runbook_base_url: 'javascript:alert(1)'\n")
    assert main(["rules", "--config", str(config)]) == 1
    assert f"{config}:2: runbook_base_url must be an http(s) URL" in capsys.readouterr().err


def test_generated_rules_for_any_config_have_runbooks():
    """Per-operation SLO groups get the same runbook_url as the defaults."""
    slos = load_slos(parse_config_text("slos:\n  operations:\n    export: {}\n", "c.yaml"))
    for alert in _alerts(generate(slos, "c.yaml", "base")):
        assert alert["annotations"]["runbook_url"] == f"base/{alert['alert']}.md"


def test_console_alerts_and_their_notifications_carry_the_runbook():
    """The console's alert list and its Alertmanager webhook payload give each alert's runbook_url."""
    book = AlertBook(Store())
    book.runbook_base = load_runbook_base(
        parse_config_text("alerting: {runbook_base_url: 'https://wiki/rb'}\n", "c.yaml")
    )
    book.rules["k"] = RuleState("OperationLatencyHigh", "latency", "shop", "checkout", "warning", "pending", 1)
    (pending,) = book.as_json(None)["pending"]
    assert pending["runbook_url"] == "https://wiki/rb/OperationLatencyHigh.md"
    payload = alertmanager_payload([(book.rules["k"], "firing", None)], "http://c", book.runbook_base)
    assert payload["alerts"][0]["annotations"]["runbook_url"] == "https://wiki/rb/OperationLatencyHigh.md"


def test_alertmanager_notifications_show_the_runbook(tmp_path):
    """Each receiver's Slack and e-mail text, rendered by amtool, names every alert's runbook."""
    amtool = shutil.which("amtool")
    if amtool is None:
        pytest.skip("amtool not found")
    config = yaml.safe_load((ROOT / "collector" / "alertmanager" / "alertmanager.yml").read_text())
    data = tmp_path / "data.json"
    data.write_text(
        json.dumps(
            {
                "Alerts": [
                    {
                        "Status": "firing",
                        "Labels": {"alertname": "ServiceDown"},
                        "Annotations": {
                            "summary": "s",
                            "description": "d",
                            "runbook_url": "docs/runbooks/ServiceDown.md",
                        },
                    }
                ],
                "CommonAnnotations": {"summary": "s"},
            }
        )
    )
    empty = tmp_path / "none.tmpl"
    empty.write_text('{{ define "none" }}{{ end }}')
    texts = [
        c["text"] for r in config["receivers"] for kind in ("slack_configs", "email_configs") for c in r.get(kind, [])
    ]
    assert len(texts) >= 3
    for text in texts:
        result = subprocess.run(
            [
                amtool,
                "template",
                "render",
                f"--template.glob={empty}",
                f"--template.text={text}",
                f"--template.data={data}",
            ],
            capture_output=True,
            text=True,
        )
        assert result.returncode == 0, result.stderr
        assert "Runbook: docs/runbooks/ServiceDown.md" in result.stdout


def test_the_console_evaluates_queue_and_uptime_alerts_with_their_runbooks():
    """A console given the config's uptime: section fires QueueDepthHigh, UptimeBelowObjective and
    UptimeBudgetBurn on what it receives, and lists them with their runbook links."""
    from otel_monitor.console.app import Console
    from tests.integration.test_alert_timeline import T0, _side_points, side_scenario

    console = Console(
        parse_config_text(
            "uptime:\n  objective: 0.95\n  probes:\n    - url: http://shop.test/ping\n      objective: 0.91\n",
            "c.yaml",
        )
    )
    values = side_scenario()
    for minute in range(20):
        points = _side_points(values, minute)
        console.store.add_metric_points(points)
        console.uptime.add_points(points)
        console.alerts.evaluate(T0 + minute * 60 * 10**9)
    firing = {
        (a["rule"], a["subject"]): a
        for a in console.alerts.as_json(None)["firing"]
        if a["rule"] in ("queue_depth", "uptime")
    }
    assert set(firing) == {
        ("queue_depth", "order_emails"),
        ("uptime", "http://shop.test/ping"),
        ("uptime", "cache"),
        ("uptime", "database"),
        ("uptime", "search"),
    }
    assert {a["alertname"] for a in firing.values()} == {"QueueDepthHigh", "UptimeBelowObjective", "UptimeBudgetBurn"}
    for alert in firing.values():
        assert alert["runbook_url"] == f"docs/runbooks/{alert['alertname']}.md"
        assert (RUNBOOKS / f"{alert['alertname']}.md").is_file()
    assert firing[("queue_depth", "order_emails")]["value"] == 600
    # The search check burns its budget fast enough to page: the critical burn rate leads its alert.
    search = firing[("uptime", "search")]
    assert (search["alertname"], search["severity"]) == ("UptimeBudgetBurn", "critical")

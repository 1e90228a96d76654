"""`otel-monitor rules`: generation from the SLOs, drift, refusal, and promtool's verdict."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from otel_monitor.alerting.rules import generate, le_matcher
from otel_monitor.cli import main
from otel_monitor.config.file import parse_config_text
from otel_monitor.semantics.slo import load_slos

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE_CONFIG = ROOT / "examples" / "shop" / "otel-monitor.yaml"
RULES = ROOT / "collector" / "prometheus" / "rules" / "otel-monitor.rules.yaml"
RULE_TESTS = sorted((ROOT / "collector" / "prometheus" / "tests").glob("*.test.yaml"))


def _promtool() -> str:
    path = shutil.which("promtool")
    if path is None:
        pytest.skip("promtool not found: apt-get install prometheus")
    return path


def test_committed_rules_match_the_example_config():
    """The committed rule file is exactly what `otel-monitor rules` generates (no drift)."""
    assert main(["rules", "--config", str(EXAMPLE_CONFIG), "--output", str(RULES), "--check"]) == 0


def test_check_reports_a_stale_rule_file(tmp_path, capsys):
    """--check exits 1 and names the `otel-monitor rules` command to run when the file differs."""
    stale = tmp_path / "rules.yaml"
    stale.write_text(RULES.read_text().replace("< 0.95", "< 0.5", 1))
    assert main(["rules", "--config", str(EXAMPLE_CONFIG), "--output", str(stale), "--check"]) == 1
    assert f"otel-monitor rules --config {EXAMPLE_CONFIG} --output {stale}" in capsys.readouterr().err


def test_thresholds_come_from_the_config(tmp_path, capsys):
    """A changed SLO threshold changes the generated alert expression."""
    config = tmp_path / "otel-monitor.yaml"
    config.write_text("slos:\n  operations:\n    export_report:\n      success_rate: {warning: 0.97, critical: 0.93}\n")
    assert main(["rules", "--config", str(config)]) == 0
    out = capsys.readouterr().out
    assert 'monitor:operation_success_ratio:rate5m{monitor_operation="export_report"} < 0.93' in out
    assert 'monitor:operation_success_ratio:rate5m{monitor_operation="export_report"} < 0.97' in out


def test_latency_threshold_between_buckets_is_refused(tmp_path, capsys):
    """Generation refuses a latency threshold that is not a bucket boundary, naming the value."""
    config = tmp_path / "otel-monitor.yaml"
    config.write_text(
        "slos:\n  defaults:\n    latency: {warning: 0.3, critical: 2.0}\n  buckets: [0.1, 0.5, 1.0, 2.0]\n"
    )
    out = tmp_path / "rules.yaml"
    assert main(["rules", "--config", str(config), "--output", str(out)]) == 1
    err = capsys.readouterr().err
    assert "0.3" in err and "bucket" in err and str(config) in err
    assert not out.exists()


def test_bad_slo_value_names_file_and_line(tmp_path, capsys):
    """A bad threshold is reported with the config file and its line."""
    config = tmp_path / "otel-monitor.yaml"
    config.write_text("slos:\n  defaults:\n    success_rate: {warning: 95}\n")
    assert main(["rules", "--config", str(config)]) == 1
    assert f"{config}:3" in capsys.readouterr().err


def test_no_config_is_a_usage_error(monkeypatch, capsys):
    """Without --config or OTEL_MONITOR_CONFIG the command explains what it needs."""
    monkeypatch.delenv("OTEL_MONITOR_CONFIG", raising=False)
    assert main(["rules"]) == 2
    assert "OTEL_MONITOR_CONFIG" in capsys.readouterr().err


def test_bucket_matcher_accepts_both_spellings_of_whole_numbers():
    """le matchers match the collector's "1" and Prometheus 3's "1.0"; fractions exactly."""
    assert le_matcher(1.0) == 'le=~"1|1\\\\.0"'
    assert le_matcher(2.5) == 'le="2.5"'
    assert le_matcher(0.005) == 'le="0.005"'


def test_operations_without_an_slo_get_the_default_rules():
    """Operations not listed fall under one rule group with the default thresholds."""
    slos = load_slos(parse_config_text("slos:\n  operations:\n    a: {}\n    b: {}\n", "c.yaml"))
    text = generate(slos, "c.yaml")
    assert 'monitor_operation!~"a|b"' in text


@pytest.mark.promtool
def test_generated_rules_pass_promtool_check():
    """promtool check rules accepts the committed rule file (syntax and lint)."""
    result = subprocess.run([_promtool(), "check", "rules", str(RULES)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.promtool
@pytest.mark.parametrize("rule_test", RULE_TESTS, ids=[p.name for p in RULE_TESTS])
def test_alerts_fire_and_stay_quiet_as_specified(rule_test):
    """promtool test rules: every alert fires when it should and stays quiet otherwise."""
    result = subprocess.run(
        [_promtool(), "test", "rules", rule_test.name], capture_output=True, text=True, cwd=rule_test.parent
    )
    assert result.returncode == 0, result.stdout + result.stderr

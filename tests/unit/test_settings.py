"""The settings table: resolution order, clear errors, strict mode."""

from __future__ import annotations

import logging

import pytest

from otel_monitor.config.file import ConfigFileError, file_settings, parse_config_text
from otel_monitor.config.settings import SETTINGS, ConfigError, resolve


def test_default_used_when_nothing_set():
    """With nothing set every setting has its declared default."""
    s = resolve(environ={})
    assert s.cardinality_limit == 2000
    assert s.source("cardinality_limit") == "default"


def test_argument_beats_environment_beats_file():
    """Precedence is argument, environment, config file, default."""
    config = parse_config_text("settings:\n  cardinality_limit: 7\n  slow_threshold_ms: 9\n", "m.yaml")
    fs, problems = file_settings(config)
    assert problems == []
    s = resolve(
        {"cardinality_limit": 5}, {"OTEL_MONITOR_CARDINALITY_LIMIT": "6", "OTEL_MONITOR_SLOW_THRESHOLD_MS": "8"}, fs
    )
    assert (s.cardinality_limit, s.source("cardinality_limit")) == (5, "argument")
    assert (s.slow_threshold_ms, s.source("slow_threshold_ms")) == (8.0, "environment")
    s = resolve({}, {}, fs)
    assert (s.slow_threshold_ms, s.source("slow_threshold_ms")) == (9.0, "m.yaml:3")


def test_bad_value_names_variable_and_falls_back(caplog):
    """A bad value is one warning naming the variable and the expectation; the default is used."""
    with caplog.at_level(logging.WARNING, logger="otel_monitor"):
        s = resolve(environ={"OTEL_MONITOR_CARDINALITY_LIMIT": "lots"})
    assert s.cardinality_limit == 2000
    assert len(caplog.records) == 1
    message = caplog.records[0].getMessage()
    assert "OTEL_MONITOR_CARDINALITY_LIMIT='lots'" in message and "expected an integer" in message


def test_strict_mode_raises():
    """OTEL_MONITOR_STRICT=true turns a bad value into ConfigError."""
    with pytest.raises(ConfigError, match="OTEL_MONITOR_SLOW_THRESHOLD_MS"):
        resolve(environ={"OTEL_MONITOR_STRICT": "true", "OTEL_MONITOR_SLOW_THRESHOLD_MS": "-1"})


def test_secret_values_are_not_echoed(caplog):
    """An invalid secret is reported without its value."""
    with caplog.at_level(logging.WARNING, logger="otel_monitor"):
        resolve(environ={"OTEL_MONITOR_USER_ID_KEY": ""})
    assert "<hidden>" in caplog.text


def test_yaml_error_names_file_and_line():
    """Broken YAML is reported with the file and line."""
    with pytest.raises(ConfigFileError, match=r"bad.yaml:3: invalid YAML"):
        parse_config_text("settings:\n  strict: true\n  - oops\n", "bad.yaml")


def test_unknown_section_names_line():
    """An unknown top-level section names its line."""
    with pytest.raises(ConfigFileError, match=r"c.yaml:2: unknown section 'slo'"):
        parse_config_text("operations: []\nslo: {}\n", "c.yaml")


def test_every_setting_is_documented_in_readme():
    """The README's settings table lists every setting of the table."""
    from pathlib import Path

    from otel_monitor.config.settings import markdown_table

    readme = Path(__file__).resolve().parents[2].joinpath("README.md").read_text()
    assert markdown_table() in readme, "run: python -m otel_monitor.config.settings > table and paste, or `make readme`"
    for s in SETTINGS:
        assert s.env in readme

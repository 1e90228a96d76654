"""Scrubbing secrets and personal data: the corpus, the fast path, configuration."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from otel_monitor.config.file import parse_config_text
from otel_monitor.semantics.redaction import REDACTED, Redactor, load_redactor

CORPUS = Path(__file__).resolve().parents[1] / "support" / "corpus"
SECRETS = json.loads((CORPUS / "secrets.json").read_text())
BENIGN = json.loads((CORPUS / "benign.json").read_text())


def scrub(redactor: Redactor, sample: dict) -> str:
    value = sample["value"]
    if isinstance(value, list):
        value = tuple(value)
    result = redactor.value(sample["key"], value) if sample["key"] else redactor.text(value)
    return json.dumps(result)


def test_corpus_is_large_enough():
    """The corpus holds at least 100 secret-bearing and 100 benign samples."""
    assert len(SECRETS) >= 100 and len(BENIGN) >= 100


@pytest.mark.parametrize("sample", SECRETS, ids=lambda s: f"{s['key'] or 'text'}:{s['value'][:30]!r}")
def test_every_secret_sample_is_scrubbed(sample):
    """No secret of the corpus survives."""
    out = scrub(Redactor(), sample)
    assert sample["secret"] not in out and REDACTED in out


def test_few_benign_samples_are_scrubbed():
    """Benign samples are left alone (the wrongly scrubbed count is reported and bounded)."""
    redactor = Redactor()
    wrong = [s["value"] for s in BENIGN if REDACTED in scrub(redactor, s)]
    print(f"\nbenign samples wrongly scrubbed: {len(wrong)} of {len(BENIGN)}: {wrong}")
    assert len(wrong) <= len(BENIGN) // 20


def test_nothing_is_copied_when_nothing_matches():
    """Clean attributes come back as the very same mapping."""
    attributes = {"http.route": "/items/{id}", "http.response.status_code": 200, "db.system.name": "sqlite"}
    assert Redactor().attributes(attributes) is attributes


def test_only_matching_values_change():
    """A scrubbed copy keeps the other attributes untouched."""
    attributes = {"a": "plain", "user.email": "ann@example.com", "n": 3}
    assert Redactor().attributes(attributes) == {"a": "plain", "user.email": REDACTED, "n": 3}


def test_safe_keys_are_never_scrubbed():
    """A safe key keeps its value even when it looks sensitive."""
    redactor = Redactor(safe_keys=["app.contact_email", "auth.method"])
    assert redactor.value("app.contact_email", "ops@example.com") == "ops@example.com"
    assert redactor.value("auth.method", "oauth") == "oauth"


def test_extra_patterns_are_scrubbed():
    """Extra patterns from settings and the config file are applied."""
    config = parse_config_text("redaction:\n  patterns: ['EMP-\\d{6}']\n  keys: [loyalty_no]\n", "c.yaml")
    redactor = load_redactor(True, [r"\bACME-[A-Z0-9]{8}\b"], [], config)
    assert redactor.text("employee EMP-123456 used ACME-7Z8Y9X0W") == f"employee {REDACTED} used {REDACTED}"
    assert redactor.value("customer.loyalty_no", "LN-1") == REDACTED


def test_bad_redaction_section_names_file_and_line(caplog):
    """An invalid pattern is reported with file:line and skipped."""
    config = parse_config_text("redaction:\n  patterns:\n    - '(unclosed'\n    - 'ok'\n", "c.yaml")
    redactor = load_redactor(True, [], [], config)
    assert "c.yaml:3: invalid regular expression '(unclosed'" in caplog.text
    assert redactor.text("ok") == REDACTED


def test_log_bodies_are_scrubbed_recursively():
    """Mapping and list bodies are scrubbed at any depth."""
    body = {"event": "signup", "user": {"email": "z@example.net", "password": "pw-123456"}, "tags": ["a", "b@c.io"]}
    assert Redactor().body(body) == {
        "event": "signup",
        "user": {"email": REDACTED, "password": REDACTED},
        "tags": ["a", REDACTED],
    }


def test_disabled_redactor_changes_nothing():
    """OTEL_MONITOR_REDACT=false turns scrubbing off."""
    assert Redactor(enabled=False).text("password=hunter2") == "password=hunter2"


def test_user_pattern_that_backtracks_forever_is_cut_off(monkeypatch):
    """A catastrophically backtracking extra pattern gives up quickly: the value is scrubbed whole, the failure counted."""
    import time

    from otel_monitor import guard
    from otel_monitor.semantics.redaction import REDACTED, Redactor

    monkeypatch.setenv("OTEL_MONITOR_RAISE_INTERNAL_ERRORS", "false")
    guard.reset_for_tests()
    redactor = Redactor(extra_patterns=[r"(a|aa)+$"])
    started = time.monotonic()
    assert redactor.text("a" * 40 + "!") == REDACTED
    assert time.monotonic() - started < 5  # unbounded, this pattern runs for hours
    assert any("redaction pattern" in name for name in guard.COUNTS)
    assert redactor.text("harmless value") == "harmless value"

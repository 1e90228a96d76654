"""Error classification and fingerprints."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import textwrap
import traceback

import pytest

from otel_monitor import classify_error, error_fingerprint, semconv, set_error_fingerprint
from otel_monitor.config.file import parse_config_text
from otel_monitor.semantics.errors import (
    ErrorClassifier,
    call_outcome,
    fingerprint_from_text,
    load_error_rules,
    normalise_message,
)


def raised(exc: BaseException, cause: BaseException | None = None) -> BaseException:
    """``exc`` as really raised (with a traceback), optionally ``from cause``."""
    try:
        if cause is not None:
            raise exc from cause
        raise exc
    except BaseException as caught:  # noqa: BLE001
        return caught


@pytest.mark.parametrize(
    "exc, category",
    [
        (TimeoutError("slow"), "timeout"),
        (TimeoutError(), "timeout"),
        (ConnectionRefusedError(), "network"),
        (PermissionError(), "auth"),
        (MemoryError(), "resource_exhausted"),
        (KeyError("x"), "bug"),
        (asyncio.CancelledError(), "cancelled"),
        (Exception("what"), "unknown"),
    ],
)
def test_builtin_exceptions_get_their_category(exc, category):
    """Builtin exceptions map to the taxonomy through their class hierarchy."""
    assert classify_error(exc) == category


def test_requests_connect_timeout_is_a_timeout():
    """requests.ConnectTimeout is both a connection error and a timeout: timeout wins."""
    requests = pytest.importorskip("requests")
    assert classify_error(requests.ConnectTimeout("connect timed out")) == "timeout"
    assert classify_error(requests.ConnectionError("refused")) == "network"


def test_sqlalchemy_timeout_error_is_not_the_builtin_timeout():
    """sqlalchemy.exc.TimeoutError (pool exhausted) is resource_exhausted, not timeout."""
    from sqlalchemy import exc

    assert classify_error(exc.TimeoutError("QueuePool limit reached")) == "resource_exhausted"


def test_sqlstate_of_the_driver_error_decides():
    """A SQLAlchemy error wrapping a PostgreSQL statement timeout (57014) is a timeout."""
    from psycopg import errors as pg
    from sqlalchemy import exc

    wrapped = exc.OperationalError("SELECT 1", {}, pg.QueryCanceled("canceling statement due to statement timeout"))
    assert classify_error(wrapped) == "timeout"
    assert classify_error(exc.IntegrityError("INSERT", {}, pg.UniqueViolation("duplicate key"))) == "validation"
    assert classify_error(exc.OperationalError("SELECT 1", {}, Exception("disk I/O"))) == "database"


def test_specific_cause_wins_over_a_generic_wrapper():
    """Walking the chain, a timeout under a RuntimeError wrapper classifies as timeout."""
    assert classify_error(raised(RuntimeError("checkout failed"), TimeoutError("gateway"))) == "timeout"


def test_optional_library_classes_match_by_qualified_name():
    """httpx timeouts are classified without otel-monitor importing httpx itself."""
    import httpx

    assert classify_error(httpx.ConnectTimeout("t")) == "timeout"
    assert classify_error(httpx.ConnectError("refused")) == "network"


@pytest.mark.parametrize(
    "status, category",
    [
        (401, "auth"),
        (403, "auth"),
        (429, "rate_limit"),
        (422, "validation"),
        (404, "validation"),
        (504, "timeout"),
        (503, "dependency"),
        (500, "unknown"),
    ],
)
def test_http_status_codes_follow_http_semantics(status, category):
    """HTTP statuses map to categories (4xx client, 5xx server)."""
    assert classify_error(status_code=status) == category


def test_http_exception_with_status_is_categorised_by_it():
    """An exception carrying a status code (FastAPI HTTPException 429) uses it."""
    from fastapi import HTTPException

    assert classify_error(HTTPException(status_code=429)) == "rate_limit"


def test_config_rules_add_and_override_categories():
    """Rules from the config file add categories by class, status and message."""
    config = parse_config_text(
        textwrap.dedent("""
        errors:
          - category: billing
            class: "*.PaymentRequired"
          - category: rate_limit
            status_code: 402
          - category: dependency
            message: "upstream .* unavailable"
    """),
        "c.yaml",
    )
    classifier = ErrorClassifier(load_error_rules(config))

    class PaymentRequired(Exception):
        pass

    assert classifier.classify(PaymentRequired()) == "billing"
    assert classifier.classify(status_code=402) == "rate_limit"
    assert classifier.classify(ValueError("upstream images unavailable")) == "dependency"


def test_bad_error_rules_name_file_and_line(caplog):
    """A bad rule is reported with file:line and skipped; the good one is kept."""
    config = parse_config_text(
        "errors:\n  - category: x\n    status_code: 999\n  - category: y\n    class: A\n", "c.yaml"
    )
    rules = load_error_rules(config)
    assert [r.category for r in rules] == ["y"]
    assert "c.yaml:2: status_code 999 is not an HTTP status" in caplog.text


def test_severity_defaults_by_category_and_rules_override_it():
    """Every category has a severity; a rule's severity wins; a 4xx is capped at warning."""
    classifier = ErrorClassifier()
    assert {c: classifier.severity(c) for c in ("timeout", "resource_exhausted", "cancelled", "auth")} == {
        "timeout": "error",
        "resource_exhausted": "critical",
        "cancelled": "info",
        "auth": "warning",
    }
    assert all(classifier.severity(c) in semconv.ERROR_SEVERITIES for c in semconv.ERROR_CATEGORIES)
    assert classifier.severity("resource_exhausted", client_error=True) == "warning"
    config = parse_config_text(
        textwrap.dedent("""
        errors:
          - {category: payment_declined, class: "*.PaymentDeclined", severity: info}
          - {category: database, severity: critical}
    """),
        "c.yaml",
    )
    classifier = ErrorClassifier(load_error_rules(config))
    assert classifier.severity("payment_declined") == "info"
    assert classifier.severity("database") == "critical"
    assert classifier.classify(status_code=500) == "unknown"  # a severity-only rule matches nothing


def test_bad_severity_names_file_and_line(caplog):
    """A severity outside info, warning, error, critical is reported with its line and the rule skipped."""
    rules = load_error_rules(parse_config_text("errors:\n  - {category: x, severity: fatal}\n", "c.yaml"))
    assert rules == []
    assert "c.yaml:2: severity 'fatal' is not one of info, warning, error, critical" in caplog.text


@pytest.mark.parametrize(
    ("failed", "status", "error_type", "outcome"),
    [
        (False, 200, None, "success"),
        (False, None, None, "success"),
        (True, 500, "TimeoutError", "server_error"),
        (True, None, "KeyError", "server_error"),
        (False, 401, "401", "unauthenticated"),
        (False, 403, "403", "forbidden"),
        (False, 403, "app.CsrfError", "rejected"),
        (False, 422, "422", "rejected"),
        (False, 404, "404", "client_error"),
        (False, 429, "429", "client_error"),
    ],
)
def test_call_outcome(failed, status, error_type, outcome):
    """Each call gets one bounded outcome; 401, 403, CSRF and 422 are told apart."""
    assert call_outcome(failed, status, error_type) == outcome
    assert outcome in semconv.OPERATION_OUTCOMES


def test_an_app_declared_client_outcome_is_kept():
    """A 400 the app marks as rejected (its own CSRF check) stays rejected; a bogus value is ignored."""
    assert call_outcome(False, 400, None, None, "rejected") == "rejected"
    assert call_outcome(False, 400, None, None, "bogus") == "client_error"


def test_text_classification_resolves_loaded_classes():
    """From a span's exception.type text, the class hierarchy of a loaded class is used."""
    assert ErrorClassifier().classify_text("requests.exceptions.ConnectTimeout") == "timeout"
    assert ErrorClassifier().classify_text("ConnectionResetError") == "network"


def fail_deep(n: int, user: str) -> None:
    if n:
        fail_deep(n - 1, user)
    raise ValueError(f"no stock for order 8812 of {user}")


def test_fingerprint_ignores_recursion_depth_and_message_values():
    """Recursion is folded and values in the message do not split a group."""

    def capture(n: int, user: str) -> BaseException:
        try:
            fail_deep(n, user)
        except ValueError as exc:
            return exc
        raise AssertionError

    assert error_fingerprint(capture(2, "a@x.io")) == error_fingerprint(capture(9, "b@y.io"))


def test_fingerprint_differs_between_call_sites():
    """Different failing code gives a different group."""
    a = raised(KeyError("a"))
    try:
        {}["b"]
    except KeyError as exc:
        b = exc
    assert error_fingerprint(a) != error_fingerprint(b)


def test_fingerprint_from_exported_text_equals_live_one():
    """The exported stack trace text gives the same fingerprint as the live exception."""
    exc = raised(RuntimeError("boom"), ConnectionError("down"))
    text = "".join(traceback.format_exception(exc))
    assert fingerprint_from_text("RuntimeError", text) == error_fingerprint(exc)


def test_fingerprint_without_stack_uses_the_normalised_message():
    """Without a stack, ids, UUIDs, hex and emails are placeholders in the message."""
    a = ValueError("user 1234 (3f2b1c9e-0d1a-4c1b-9a7e-1f2e3d4c5b6a) at 0xdeadbeef: mail a@b.io")
    b = ValueError("user 99 (00000000-0d1a-4c1b-9a7e-1f2e3d4c5b6a) at 0x1f: mail zed@q.org")
    assert error_fingerprint(a) == error_fingerprint(b)
    assert normalise_message("order 42 for a@b.io") == "order <id> for <email>"


def test_code_can_override_the_fingerprint():
    """set_error_fingerprint fixes the group of an exception."""
    exc = raised(ValueError("x"))
    set_error_fingerprint("payment-declined", exc)
    assert error_fingerprint(exc) == "payment-declined"


SCRIPT = """
{padding}
import sys
import otel_monitor

def load_cart(cart_id):
    raise LookupError(f"cart {{cart_id}} missing")

def checkout(cart_id):
    return load_cart(cart_id)

try:
    checkout(int(sys.argv[1]))
except LookupError as exc:
    print(otel_monitor.error_fingerprint(exc))
"""


def test_fingerprint_is_stable_across_processes_paths_and_line_shifts(tmp_path):
    """Two processes, different directories, shifted lines and ids: one fingerprint."""
    outputs = []
    for i, (padding, cart_id) in enumerate([("", 17), ("\n\n\n# moved down\n", 90210)]):
        folder = tmp_path / f"deploy{i}"
        folder.mkdir()
        (folder / "shopapp.py").write_text(SCRIPT.format(padding=padding))
        result = subprocess.run(
            [sys.executable, "shopapp.py", str(cart_id)],
            cwd=folder,
            capture_output=True,
            text=True,
            check=True,
            timeout=60,
        )
        outputs.append(result.stdout.strip())
    assert outputs[0] == outputs[1] and len(outputs[0]) == 16


class ProviderFailed(Exception):
    """An application's own wrapper, unknown to the built-in table."""


def _raised_from_none(handled: BaseException) -> BaseException:
    try:
        try:
            raise handled
        except Exception:  # noqa: BLE001 - whatever the app handled
            raise ProviderFailed("the provider failed") from None
    except ProviderFailed as caught:
        return caught


def test_from_none_after_an_http_503_is_a_dependency_failure():
    """``raise ProviderFailed(...) from None`` while handling an HTTP 503 is ``dependency``, not ``unknown``."""
    import httpx

    request = httpx.Request("POST", "http://payments/v1/charges")
    response = httpx.Response(503, request=request)
    handled = httpx.HTTPStatusError("503 Service Unavailable", request=request, response=response)
    assert classify_error(_raised_from_none(handled)) == "dependency"


def test_from_none_after_a_refused_connection_is_a_network_failure():
    """The hidden context decides the category: a ConnectError under ``from None`` is ``network``."""
    import httpx

    assert classify_error(_raised_from_none(httpx.ConnectError("refused"))) == "network"


def test_from_none_after_a_429_answer_is_rate_limited():
    """The status of the failed call found along the chain picks the category (429: rate_limit)."""

    class Answer(Exception):
        status_code = 429

    assert classify_error(_raised_from_none(Answer("slow down"))) == "rate_limit"


def test_an_exception_without_a_chain_stays_unknown():
    """Nothing to follow: an application exception of its own is ``unknown``."""
    assert classify_error(raised(ProviderFailed("no idea"))) == "unknown"


def test_an_exception_raised_on_a_failed_answer_takes_its_status():
    """``raise ProviderFailed(...)`` after a 503 answer in the same span (no chain at all) is ``dependency``."""
    classifier = ErrorClassifier()
    classifier.note_failed_call(7, 503)
    assert classifier.classify_in_span(raised(ProviderFailed("answered HTTP 503")), 7) == "dependency"
    # Forgotten once used: the next failure of that span is judged on its own.
    assert classifier.classify_in_span(raised(ProviderFailed("later")), 7) == "unknown"


def test_a_failed_call_in_another_span_does_not_classify():
    """Only a call made in the failing span counts; one in a sibling span does not."""
    classifier = ErrorClassifier()
    classifier.note_failed_call(7, 503)
    assert classifier.classify_in_span(raised(ProviderFailed("x")), 8) == "unknown"


def test_a_known_category_wins_over_the_failed_call():
    """A bug raised after a failed call stays a bug: the status only replaces ``unknown``."""
    classifier = ErrorClassifier()
    classifier.note_failed_call(7, 429)
    assert classifier.classify_in_span(raised(KeyError("k")), 7) == "bug"


def test_failed_calls_are_bounded():
    """The notebook of failed calls keeps the newest entries only."""
    classifier = ErrorClassifier()
    for span_id in range(5000):
        classifier.note_failed_call(span_id, 503)
    assert classifier.failed_call_status(0) is None and classifier.failed_call_status(4999) == 503

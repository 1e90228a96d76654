"""Journey milestones, funnels, pseudonymous ids and the first-time store."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

import otel_monitor
from otel_monitor import semconv
from otel_monitor.config.file import parse_config_text
from otel_monitor.semantics.journeys import JourneyRecorder, JourneyStore, load_funnels, pseudonymize
from tests.support.stack import make_stack


class Recorded:
    """A logger and counter that keep what they were given."""

    def __init__(self) -> None:
        self.events: list[dict] = []
        self.counts: list[dict] = []

    def emit(self, **kwargs) -> None:
        self.events.append(kwargs)

    def add(self, amount, attributes, key=None) -> None:
        self.counts.append(dict(attributes))


def test_pseudonymous_id_is_a_keyed_hmac():
    """enduser.pseudo.id is HMAC-SHA256 of the id: stable per key, different across keys."""
    assert pseudonymize(42, "k1") == pseudonymize("42", "k1")
    assert pseudonymize(42, "k1") != pseudonymize(42, "k2")
    assert len(pseudonymize(42, "k1")) == 64


def test_missing_key_is_one_clear_error_and_no_id(caplog):
    """Without OTEL_MONITOR_USER_ID_KEY a user id is dropped, reported once, and the milestone still counts."""
    sink = Recorded()
    recorder = JourneyRecorder(sink, sink, key=None)
    recorder.milestone("signup", user_id="u-1")
    recorder.milestone("signup", user_id="u-2")
    assert caplog.text.count("needs OTEL_MONITOR_USER_ID_KEY") == 1
    assert all(semconv.ENDUSER_PSEUDO_ID not in e["attributes"] for e in sink.events)
    assert "u-1" not in repr(sink.events) and len(sink.counts) == 2


def test_milestone_event_names_journey_and_step():
    """The event is a log record with event_name and the journey attributes."""
    sink = Recorded()
    JourneyRecorder(sink, sink, key="k").milestone("first_save", user_id=7, journey="wardrobe")
    (event,) = sink.events
    assert event["event_name"] == semconv.EVENT_JOURNEY_MILESTONE
    assert event["attributes"][semconv.MONITOR_JOURNEY_NAME] == "wardrobe"
    assert event["attributes"][semconv.ENDUSER_PSEUDO_ID] == pseudonymize(7, "k")


def test_funnels_declare_steps_and_operation_triggers(caplog):
    """Funnels map steps to journeys and operations to steps; a bad step is reported with file:line."""
    config = parse_config_text(
        textwrap.dedent("""
        funnels:
          purchase:
            steps: [signup, {name: first_purchase, operation: checkout}, {bad: 1}]
    """),
        "c.yaml",
    )
    funnels = load_funnels(config)
    assert funnels.steps == {"purchase": ["signup", "first_purchase"]}
    assert funnels.on_operation == {"checkout": [("purchase", "first_purchase")]}
    assert "c.yaml:4: a step is a name" in caplog.text


def test_store_detects_first_time_across_processes(tmp_path):
    """A SQLite store shared by two processes says 'first' only once per user and step."""
    url = f"sqlite:///{tmp_path / 'journeys.db'}"
    script = (
        "import sys; from otel_monitor.semantics.journeys import JourneyStore; "
        "s = JourneyStore(sys.argv[1]); print(s.record('p1', 'purchase', 'first_purchase'))"
    )
    first = subprocess.run(
        [sys.executable, "-c", script, url], capture_output=True, text=True, check=True, timeout=60
    ).stdout.strip()
    second = subprocess.run(
        [sys.executable, "-c", script, url], capture_output=True, text=True, check=True, timeout=60
    ).stdout.strip()
    assert (first, second) == ("True", "False")
    store = JourneyStore(url)
    assert store.record("p2", "purchase", "first_purchase") is True
    store.close()


def test_journey_milestone_returns_first_time_with_a_store(otlp_sink, tmp_path):
    """With a journey store, journey_milestone returns True then False and the event says so."""
    stack = make_stack(otlp_sink, user_id_key="k", journey_store=f"sqlite:///{tmp_path / 'j.db'}")
    try:
        assert otel_monitor.journey_milestone("first_purchase", user_id=5, journey="purchase") is True
        assert otel_monitor.journey_milestone("first_purchase", user_id=5, journey="purchase") is False
        stack.flush()
        assert otlp_sink.wait_for(lambda s: len(s.logs) == 2)
        assert [log["attributes"][semconv.MONITOR_JOURNEY_FIRST] for log in otlp_sink.logs] == [True, False]
    finally:
        stack.close()


def test_operation_success_emits_the_funnel_step(otlp_sink):
    """A funnel step tied to an operation is emitted when that operation succeeds, not when it fails."""
    config = "funnels:\n  purchase:\n    steps: [{name: first_purchase, operation: checkout}]\n"
    stack = make_stack(otlp_sink, config, user_id_key="k")
    try:
        with otel_monitor.operation("checkout"):
            pass
        with pytest.raises(TimeoutError):
            with otel_monitor.operation("checkout"):
                raise TimeoutError
        stack.flush()
        assert otlp_sink.wait_for(lambda s: s.logs)
        assert [log["attributes"][semconv.MONITOR_JOURNEY_STEP] for log in otlp_sink.logs] == ["first_purchase"]
    finally:
        stack.close()

"""otel_monitor.fast.spans: the lean span type records and exports what the SDK's span does."""

from __future__ import annotations

import logging
from collections import OrderedDict
from types import MappingProxyType
from typing import Any

import pytest
from opentelemetry import context as context_api
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, SpanLimits, Tracer, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import (
    ALWAYS_OFF,
    ALWAYS_ON,
    Decision,
    ParentBased,
    Sampler,
    SamplingResult,
    TraceIdRatioBased,
)
from opentelemetry.trace import Link, NonRecordingSpan, SpanContext, SpanKind, StatusCode, TraceFlags
from opentelemetry.trace.span import TraceState

from otel_monitor.fast import spans
from otel_monitor.fast.sampling import parent_rules
from otel_monitor.pipeline.tail_sampling import MonitorSpanExportProcessor, RecordAllSampler


def _provider(
    lean: bool, sampler: Any = ALWAYS_ON, limits: SpanLimits | None = None
) -> tuple[Any, InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider(sampler=sampler, span_limits=limits, shutdown_on_exit=False)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    if lean:
        assert spans.install(provider)
    return provider, exporter


def _exercise(tracer: Any) -> None:
    """The same calls on both span types, including values the SDK refuses."""
    link_context = SpanContext(0xABC, 0xDEF, is_remote=True, trace_flags=TraceFlags(TraceFlags.SAMPLED))
    with tracer.start_as_current_span(
        "GET",
        kind=SpanKind.SERVER,
        attributes={"url.path": "/a/1", "n": 1},
        links=[Link(link_context, {"why": "batch"})],
    ) as span:
        span.set_attribute("http.route", "/a/{id}")
        span.set_attribute("none", None)
        span.set_attribute("mapping", {"a": [1, 2]})  # copied, its list made a tuple
        span.set_attribute("object", object())  # no string of its own: None, with a warning
        later = [1, 2, 3]
        span.set_attribute("list", later)  # kept as a tuple, as it was when set
        later.append(4)
        span.set_attribute("long", "x" * 50)
        span.set_attributes({"http.response.status_code": 500, "error.type": "500"})
        span.update_name("GET /a/{id}")
        span.add_event("retry", {"attempt": 2})
        span.add_link(link_context, {"why": "later"})
        with tracer.start_as_current_span("SELECT shop.db", kind=SpanKind.CLIENT) as child:
            child.set_attribute("db.query.text", "SELECT 1")
        try:
            raise ValueError("boom")
        except ValueError as exc:
            span.record_exception(exc)
        span.set_status(StatusCode.ERROR, "failed")


def _view(span: ReadableSpan) -> dict[str, Any]:
    return {
        "name": span.name,
        "kind": span.kind,
        "attributes": dict(span.attributes),
        "dropped_attributes": span.dropped_attributes,
        "status": (span.status.status_code, span.status.description),
        "events": [
            (e.name, {k: v for k, v in e.attributes.items() if k != "exception.stacktrace"}) for e in span.events
        ],
        "links": [(link.context.span_id, dict(link.attributes)) for link in span.links],
        "parent": span.parent.span_id if span.parent else None,
        "sampled": span.context.trace_flags.sampled,
        "timed": span.start_time is not None and span.end_time >= span.start_time,
    }


def test_a_lean_span_exports_what_the_sdks_span_exports() -> None:
    limits = SpanLimits(max_span_attribute_length=20)
    sdk, sdk_out = _provider(lean=False, limits=limits)
    lean, lean_out = _provider(lean=True, limits=limits)
    _exercise(sdk.get_tracer("t"))
    tracer = lean.get_tracer("t")
    assert type(tracer) is spans.MonitorTracer
    _exercise(tracer)
    expected = [_view(s) for s in sdk_out.get_finished_spans()]
    got = [_view(s) for s in lean_out.get_finished_spans()]
    # parents differ (fresh ids); compare the rest, and that the child names its parent
    for e, g in zip(expected, got, strict=True):
        e.pop("parent"), g.pop("parent")
    assert got == expected
    child, root = lean_out.get_finished_spans()
    assert child.parent.span_id == root.context.span_id
    assert root.attributes["list"] == (1, 2, 3)
    assert root.attributes["mapping"] == {"a": (1, 2)}


@pytest.mark.parametrize(
    ("attributes", "kept_plain"),
    [
        ({"a": "x" * 8, "b": 1, "c": 1.5, "d": True}, True),  # at both limits exactly
        ({"a": "x" * 9}, False),  # a string over the length limit: cut
        ({"a": 1, "b": 2, "c": 3, "d": 4, "e": 5}, False),  # over the count limit: the oldest dropped
        ({"a": None}, False),
        ({"a": b"bytes"}, False),
        ({"a": (1, 2)}, False),
    ],
    ids=["plain", "long string", "too many", "None", "bytes", "tuple"],
)
def test_a_sampled_span_keeps_its_plain_dict_only_where_the_bounded_mapping_would_change_nothing(
    attributes: dict[str, Any], kept_plain: bool
) -> None:
    limits = SpanLimits(max_span_attributes=4, max_span_attribute_length=8)
    views = []
    for lean in (False, True):
        provider, out = _provider(lean, limits=limits)
        span = provider.get_tracer("t").start_span("s")
        for key, value in attributes.items():
            span.set_attribute(key, value)
        span.end()
        (finished,) = out.get_finished_spans()
        views.append(_view(finished))
    assert views[1] == views[0]
    assert (type(finished._attributes) is dict) is kept_plain


def test_attribute_count_limit_keeps_the_newest_and_counts_the_dropped_as_the_sdk_does() -> None:
    limits = SpanLimits(max_span_attributes=3)
    views = []
    for lean in (False, True):
        provider, out = _provider(lean, limits=limits)
        span = provider.get_tracer("t").start_span("s", attributes={"a": 1, "b": 2})
        for key in "cdef":
            span.set_attribute(key, key)
        span.set_attributes({"g": 7, "h": 8})
        span.end()
        (finished,) = out.get_finished_spans()
        views.append((dict(finished.attributes), finished.dropped_attributes))
    assert views[1] == views[0]
    assert views[1][0] == {"f": "f", "g": 7, "h": 8}


@pytest.mark.parametrize(
    "writes",
    [
        [{"a": 1, "b": 2, "c": 3, "d": 4, "e": 5}],  # past the limit in one call, at the start
        [{"a": 1}, {"b": 2, "a": 9}, {"c": 3, "d": 4}],  # a key set again is the newest
        [{"b": 1}, {"d": 2, "c": 3}],  # new keys only: appended in their order
        [{"b": 1, "a": 2}, {"d": 3, "c": 4}],  # new keys only, past the limit: the newest kept
        [{"a": 1, "b": [1, 2]}, {"c": (3,), "d": 4}],  # containers: the checked way
        [{"a": 1, "": 2, "b": 3}],  # a key the SDK refuses
        [{"a": 1, 5: 2, "b": 3}],
        [MappingProxyType({"a": 1, "b": 2}), MappingProxyType({"b": 3, "": 4}), {"c": 5}],  # a read-only view
        [OrderedDict(a=1, b=2), OrderedDict(c=3, a=4)],  # any other mapping
        [{"a": 1, "b": 2}, OrderedDict([("b", 3), (7, 4)])],
    ],
    ids=[
        "over-limit",
        "set-again",
        "new-keys",
        "new-keys-over-limit",
        "containers",
        "empty-key",
        "int-key",
        "mapping-proxy",
        "other-mapping",
        "other-mapping-int-key",
    ],
)
def test_attributes_written_together_end_as_the_sdks_do(writes: list[dict[Any, Any]]) -> None:
    views = []
    for lean in (False, True):
        provider, out = _provider(lean, limits=SpanLimits(max_span_attributes=3))
        span = provider.get_tracer("t").start_span("s", attributes=writes[0])
        for more in writes[1:]:
            span.set_attributes(more)
        span.end()
        (finished,) = out.get_finished_spans()
        views.append((list(finished.attributes.items()), finished.dropped_attributes))
    assert views[1] == views[0]


def test_writes_after_end_are_ignored_and_a_second_end_does_not_export_again(caplog: pytest.LogCaptureFixture) -> None:
    """What the SDK's span refuses after its end, ours refuses with the same warnings."""
    messages, finished = [], []
    for lean in (False, True):
        provider, out = _provider(lean)
        span = provider.get_tracer("t").start_span("s")
        span.end()
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="opentelemetry.sdk.trace"):
            span.set_attribute("late", 1)
            span.set_attributes({"later": 2})
            span.update_name("renamed")
            span.add_event("late event")
            span.add_link(SpanContext(1, 2, is_remote=True))
            span.set_status(StatusCode.ERROR)
            span.end()
        messages.append([r.getMessage() for r in caplog.records])
        (one,) = out.get_finished_spans()
        finished.append((one.name, dict(one.attributes), len(one.events), len(one.links), one.status.status_code))
        assert not span.is_recording()
    assert messages[1] == messages[0]
    assert len(messages[1]) == 7
    assert finished[1] == finished[0] == ("s", {}, 0, 0, StatusCode.UNSET)


def test_keys_the_sdk_refuses_are_refused_and_a_key_set_again_is_the_newest() -> None:
    views = []
    for lean in (False, True):
        provider, out = _provider(lean, limits=SpanLimits(max_span_attributes=2))
        span = provider.get_tracer("t").start_span("s")
        span.set_attribute("a", 1)
        span.set_attribute("b", 2)
        span.set_attribute("a", 3)  # now the newest: "b" goes first at the limit
        span.set_attribute("c", 4)
        span.set_attribute(1, "not a string key")  # type: ignore[arg-type]
        span.set_attribute("", "empty key")
        span.set_attribute(["unhashable"], "x")  # type: ignore[arg-type]
        span.end()
        (finished,) = out.get_finished_spans()
        views.append((dict(finished.attributes), finished.dropped_attributes))
    assert views[1] == views[0]
    assert views[1][0] == {"a": 3, "c": 4}


def test_attribute_writes_racing_with_end_neither_fail_nor_break_the_export() -> None:
    """Another thread may still write to a span while it ends: no write may raise, the export stays whole."""
    import sys
    import threading

    provider, out = _provider(lean=True)
    tracer = provider.get_tracer("t")
    errors: list[BaseException] = []
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-5)
    try:
        for _ in range(2000):
            span = tracer.start_span("s", attributes={f"k{i}": f"v{i}" for i in range(40)})

            def write(span: Any = span) -> None:
                try:
                    for i in range(40):
                        span.set_attribute(f"w{i}", ["x"])  # a container: copied by a call first
                except BaseException as exc:  # noqa: BLE001
                    errors.append(exc)

            writer = threading.Thread(target=write)
            writer.start()
            try:
                span.end()
            except BaseException as exc:  # noqa: BLE001
                errors.append(exc)
            writer.join()
    finally:
        sys.setswitchinterval(interval)
    assert errors == []
    finished = out.get_finished_spans()
    assert len(finished) == 2000
    assert all(len(s.attributes) >= 40 for s in finished)


@pytest.mark.parametrize("remote", [False, True])
@pytest.mark.parametrize("parent_sampled", [False, True])
def test_a_child_follows_its_parent_as_the_sampler_would(remote: bool, parent_sampled: bool) -> None:
    """The tracer decides a child without calling the sampler; the outcome is the sampler's."""
    state = TraceState([("vendor", "x")])
    parent = SpanContext(
        0x1234,
        0x5678,
        is_remote=remote,
        trace_state=state,
        trace_flags=TraceFlags(TraceFlags.SAMPLED if parent_sampled else TraceFlags.DEFAULT),
    )
    ctx = trace.set_span_in_context(NonRecordingSpan(parent))
    sampler = RecordAllSampler(ParentBased(TraceIdRatioBased(0.5)), parent_rules=parent_rules)
    assert sampler.follows_parent
    expected = sampler.should_sample(ctx, parent.trace_id, "child", attributes={"k": "v"})
    provider, _ = _provider(lean=True, sampler=sampler)
    asked = []
    sampler.should_sample = lambda *a, **k: asked.append(a)  # type: ignore[method-assign]
    span = provider.get_tracer("t").start_span("child", context=ctx, attributes={"k": "v"})
    assert asked == []  # decided from the parent alone
    got = span.get_span_context()
    assert got.trace_flags.sampled is expected.decision.is_sampled() is parent_sampled
    assert span.is_recording() is expected.decision.is_recording() is True
    assert got.trace_state == expected.trace_state == state
    assert got.trace_id == parent.trace_id and span.parent == parent
    assert dict(span.attributes) == dict(expected.attributes) == {"k": "v"}


def test_a_sampler_with_its_own_rule_for_parents_is_asked() -> None:
    sampler = RecordAllSampler(ParentBased(ALWAYS_ON, local_parent_sampled=ALWAYS_OFF), parent_rules=parent_rules)
    assert not sampler.follows_parent
    provider, _ = _provider(lean=True, sampler=sampler)
    tracer = provider.get_tracer("t")
    with tracer.start_as_current_span("root") as root:
        assert root.get_span_context().trace_flags.sampled
        child = tracer.start_span("child")
    assert not child.get_span_context().trace_flags.sampled  # the custom rule, not the parent's flag
    assert child.is_recording()  # recorded for metrics all the same


@pytest.mark.parametrize("lean", [False, True])
def test_a_recorded_only_span_keeps_the_attributes_it_started_with(lean: bool) -> None:
    """The delegate's DROP carries no attributes; the recorded span must still have its own."""
    provider, _ = _provider(lean, sampler=RecordAllSampler(ParentBased(ALWAYS_OFF), parent_rules=parent_rules))
    span = provider.get_tracer("t").start_span("GET", kind=SpanKind.SERVER, attributes={"url.path": "/x"})
    assert not span.get_span_context().trace_flags.sampled
    assert span.attributes["url.path"] == "/x"


def test_an_unsampled_failed_request_is_exported_with_checked_attributes() -> None:
    """Recorded-only spans carry unchecked values until they are kept for export."""
    exporter = InMemorySpanExporter()
    processor = MonitorSpanExportProcessor(exporter, keep_errors=True, schedule_delay_millis=60_000)
    provider = TracerProvider(
        sampler=RecordAllSampler(ParentBased(ALWAYS_OFF), parent_rules=parent_rules),
        shutdown_on_exit=False,
        span_limits=SpanLimits(max_span_attribute_length=20),
    )
    provider.add_span_processor(processor)
    spans.install(provider)
    tracer = provider.get_tracer("t")
    with tracer.start_as_current_span("GET /x", kind=SpanKind.SERVER, attributes={"url.path": "/x"}) as root:
        with tracer.start_as_current_span("SELECT") as child:
            child.set_attribute("object", object())
            child.set_attribute("list", ["a", "b"])
            child.set_attribute("long", "y" * 50)
        root.set_status(StatusCode.ERROR)
    with tracer.start_as_current_span("GET /fine"):
        pass
    provider.force_flush()
    exported = {s.name: s for s in exporter.get_finished_spans()}
    assert sorted(exported) == ["GET /x", "SELECT"]
    assert dict(exported["GET /x"].attributes) == {"url.path": "/x"}
    # checked on the way out, as the SDK checks them on the way in: limits apply
    assert dict(exported["SELECT"].attributes) == {"object": None, "list": ("a", "b"), "long": "y" * 20}
    assert not exported["SELECT"].context.trace_flags.sampled
    processor.shutdown()


def test_install_leaves_other_providers_alone_and_converts_tracers_already_given_out() -> None:
    provider, out = _provider(lean=False)
    early = provider.get_tracer("early")
    assert type(early) is Tracer
    assert spans.install(provider)
    assert type(early) is spans.MonitorTracer
    early.start_span("s").end()
    assert out.get_finished_spans()[0].name == "s"

    class Custom(TracerProvider):
        pass

    assert not spans.install(Custom(shutdown_on_exit=False))
    assert not spans.install(trace.NoOpTracerProvider())


def test_a_span_started_under_a_detached_context_is_a_root() -> None:
    provider, _ = _provider(lean=True)
    tracer = provider.get_tracer("t")
    with tracer.start_as_current_span("outer"):
        token = context_api.attach(context_api.Context())
        try:
            inner = tracer.start_span("inner")
        finally:
            context_api.detach(token)
    assert inner.parent is None


@pytest.mark.parametrize("root", [TraceIdRatioBased(0.5), ALWAYS_ON, ALWAYS_OFF])
def test_a_root_is_sampled_as_the_samplers_ratio_rule_would(root: Any) -> None:
    sampler = RecordAllSampler(ParentBased(root), parent_rules=parent_rules)
    assert sampler.root_bound is not None
    provider, _ = _provider(lean=True, sampler=sampler)
    tracer = provider.get_tracer("t")
    half = TraceIdRatioBased.get_bound_for_rate(0.5)
    for trace_id in (1, half - 1, half, half + 1, (1 << 64) - 1, (1 << 64) + 5, (1 << 128) - 1):
        provider.id_generator = tracer.id_generator = _FixedIds(trace_id)
        expected = sampler.should_sample(None, trace_id, "root", attributes={"k": 1})
        span = tracer.start_span("root", attributes={"k": 1})
        assert span.get_span_context().trace_flags.sampled is expected.decision.is_sampled(), hex(trace_id)
        assert span.is_recording() and span.parent is None
        assert dict(span.attributes) == dict(expected.attributes) == {"k": 1}


def test_a_root_rule_other_than_a_ratio_is_asked() -> None:
    class EveryOther(Sampler):
        def __init__(self) -> None:
            self.asked = 0

        def should_sample(self, *args: Any, **kwargs: Any) -> SamplingResult:
            self.asked += 1
            return SamplingResult(Decision.RECORD_AND_SAMPLE if self.asked % 2 else Decision.DROP, None, None)

        def get_description(self) -> str:
            return "every other"

    root = EveryOther()
    sampler = RecordAllSampler(ParentBased(root), parent_rules=parent_rules)
    assert sampler.follows_parent and sampler.root_bound is None
    provider, _ = _provider(lean=True, sampler=sampler)
    tracer = provider.get_tracer("t")
    flags = [tracer.start_span(f"root {i}").get_span_context().trace_flags.sampled for i in range(4)]
    assert root.asked == 4 and flags == [True, False, True, False]

    class Named(ParentBased):
        pass

    # a subclass may decide otherwise
    assert not RecordAllSampler(Named(ALWAYS_ON), parent_rules=parent_rules).follows_parent
    assert RecordAllSampler(Named(ALWAYS_ON), parent_rules=parent_rules).root_bound is None
    assert RecordAllSampler(TraceIdRatioBased(0.5), parent_rules=parent_rules).root_bound is None


def test_a_sampler_whose_delegate_is_replaced_is_followed_anew() -> None:
    sampler = RecordAllSampler(ParentBased(ALWAYS_ON), parent_rules=parent_rules)
    assert sampler.root_bound == 1 << 64
    sampler.delegate = TraceIdRatioBased(0.5)
    assert not sampler.follows_parent and sampler.root_bound is None


class _FixedIds:
    def __init__(self, trace_id: int) -> None:
        self.trace_id = trace_id

    def generate_trace_id(self) -> int:
        return self.trace_id

    def generate_span_id(self) -> int:
        return 0x1

    def is_trace_id_random(self) -> bool:
        return True


def test_an_sdk_whose_span_moved_on_keeps_its_own_span_type(monkeypatch: pytest.MonkeyPatch) -> None:
    """A span of ours that fails the trial run through the SDK's methods is not installed."""

    def set_status_of_a_newer_sdk(self: Any, *args: Any, **kwargs: Any) -> None:
        return self._a_field_this_span_type_does_not_set  # type: ignore[no-any-return]

    provider, _out = _provider(lean=False)
    for name in ("OTEL_SPAN_EVENT_COUNT_LIMIT", "OTEL_SPAN_LINK_COUNT_LIMIT", "OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT"):
        monkeypatch.setenv(name, "0")  # the app's limits are not the trial's
    assert spans.trial_run()
    monkeypatch.setattr(spans.MonitorSpan, "set_status", set_status_of_a_newer_sdk)
    assert not spans.install(provider)
    assert type(provider.get_tracer("t")) is Tracer
    monkeypatch.undo()
    assert spans.install(provider)


class _Recording:
    """A processor whose every hook does something."""

    def __init__(self, calls: list[tuple[str, str]], name: str) -> None:
        self.calls, self.name = calls, name

    def on_start(self, span: Any, parent_context: Any = None) -> None:
        self.calls.append((self.name, "start"))

    def _on_ending(self, span: Any) -> None:
        self.calls.append((self.name, "ending"))

    def on_end(self, span: Any) -> None:
        self.calls.append((self.name, "end"))

    def shutdown(self) -> None:
        pass

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True


def test_every_hook_that_does_something_is_called_in_order_and_added_processors_join() -> None:
    from otel_monitor.guard import GuardedSpanProcessor
    from otel_monitor.pipeline.processors import OperationSpanProcessor

    provider, exporter = _provider(lean=True)
    calls: list[tuple[str, str]] = []
    provider.add_span_processor(_Recording(calls, "a"))
    provider.add_span_processor(GuardedSpanProcessor(_Recording(calls, "guarded")))
    tracer = provider.get_tracer("t")
    tracer.start_span("one").end()
    assert calls == [
        ("a", "start"),
        ("guarded", "start"),
        ("a", "ending"),
        ("guarded", "ending"),
        ("a", "end"),
        ("guarded", "end"),
    ]
    plan = spans._hooks(provider._active_span_processor)
    # The simple processor's empty on_start and _on_ending are left out; its on_end is not.
    assert len(plan[1]) == 2 and len(plan[2]) == 2 and len(plan[3]) == 3
    assert spans._does_nothing(OperationSpanProcessor.on_start)
    # A processor whose empty hook was replaced on the instance is called.
    replaced = SimpleSpanProcessor(InMemorySpanExporter())
    replaced.on_start = lambda span, parent_context=None: calls.append(("replaced", "start"))
    assert not spans._hook_does_nothing(replaced, "on_start") and spans._hook_does_nothing(replaced, "_on_ending")
    # A hook wrapped after spans have run (the plan kept) is the one called, as the SDK looks it up each time.
    first = provider._active_span_processor._span_processors[1]
    original_on_end = first.on_end
    first.on_end = lambda span: (calls.append(("a", "wrapped end")), original_on_end(span))
    calls.clear()
    tracer.start_span("wrapped").end()
    assert ("a", "wrapped end") in calls and ("a", "end") in calls
    del first.on_end
    exporter.clear()
    calls.clear()
    span = tracer.start_span("two")
    provider.add_span_processor(_Recording(calls, "late"))  # joins spans that end from now on, as in the SDK
    span.end()
    assert calls == [
        ("a", "start"),
        ("guarded", "start"),
        ("a", "ending"),
        ("guarded", "ending"),
        ("late", "ending"),
        ("a", "end"),
        ("guarded", "end"),
        ("late", "end"),
    ]
    assert [s.name for s in exporter.get_finished_spans()] == ["two"]


def test_ids_from_a_generator_with_its_own_methods_are_its_own() -> None:
    provider, exporter = _provider(lean=True)
    provider.id_generator.generate_span_id = lambda: 0x1234  # e.g. deterministic ids in an app's tests
    provider.id_generator.generate_trace_id = lambda: 0xABCD
    provider.get_tracer("t").start_span("x").end()
    (span,) = exporter.get_finished_spans()
    assert (span.context.trace_id, span.context.span_id) == (0xABCD, 0x1234)


def test_a_multi_processor_whose_methods_were_replaced_is_called_as_it_is(monkeypatch: pytest.MonkeyPatch) -> None:
    from opentelemetry.sdk.trace import SynchronousMultiSpanProcessor

    ended: list[str] = []
    original = SynchronousMultiSpanProcessor.on_end
    monkeypatch.setattr(
        SynchronousMultiSpanProcessor, "on_end", lambda self, span: (ended.append(span.name), original(self, span))
    )
    provider, exporter = _provider(lean=True)
    provider.get_tracer("t").start_span("x").end()
    assert ended[-1] == "x" and [s.name for s in exporter.get_finished_spans()] == ["x"]  # (the trial run's first)


def test_another_multi_processor_is_called_as_it_is() -> None:
    from opentelemetry.sdk.trace import ConcurrentMultiSpanProcessor

    calls: list[tuple[str, str]] = []
    multi = ConcurrentMultiSpanProcessor(2)
    multi.add_span_processor(_Recording(calls, "c"))
    provider = TracerProvider(active_span_processor=multi, shutdown_on_exit=False)
    assert spans.install(provider)
    provider.get_tracer("t").start_span("x").end()
    assert sorted(calls) == [("c", "end"), ("c", "ending"), ("c", "start")]
    multi.shutdown()


def test_hooks_that_only_pass_are_told_from_hooks_that_work() -> None:
    def docstring_only(self: Any, span: Any) -> None:
        """Nothing."""

    def returns_a_value(self: Any, span: Any) -> int:
        return 1

    def works(self: Any, span: Any) -> None:
        span.touched = True

    assert spans._does_nothing(docstring_only)
    assert not spans._does_nothing(returns_a_value)
    assert not spans._does_nothing(works)
    assert not spans._does_nothing(print)  # no Python code to read: called


def test_what_export_adds_to_a_span_that_kept_its_dict_obeys_the_spans_value_length_limit() -> None:
    """Our exporter's additions are cut to the span's limit, read from its limits when it holds no bounded mapping."""
    from opentelemetry.sdk.metrics import MeterProvider

    from otel_monitor.pipeline import instruments as metrics
    from otel_monitor.pipeline.processors import OperationSpanProcessor, SpanEnricher
    from otel_monitor.semantics import errors
    from otel_monitor.semantics.operations import OperationRules
    from otel_monitor.semantics.redaction import load_redactor
    from otel_monitor.semantics.slo import DEFAULT_BUCKETS

    provider, out = _provider(lean=True, limits=SpanLimits(max_span_attribute_length=12))
    span = provider.get_tracer("t").start_span("charge", attributes={"step": "pay"})
    try:
        raise ValueError("declined by the payment provider")
    except ValueError as exc:
        span.record_exception(exc)
    span.set_status(StatusCode.ERROR, "declined")
    span.end()
    (finished,) = out.get_finished_spans()
    assert type(finished._attributes) is dict
    operations = OperationSpanProcessor(
        OperationRules(), metrics.create_instruments(MeterProvider(), DEFAULT_BUCKETS), errors.ErrorClassifier()
    )
    exported = SpanEnricher(operations, load_redactor(), None).enrich(finished)
    added = {key: value for key, value in exported.attributes.items() if key != "step"}
    assert "monitor.error.fingerprint" in added and "error.type" in added
    assert all(len(value) <= 12 for value in added.values() if isinstance(value, str)), added
    assert any(len(value) == 12 for value in added.values() if isinstance(value, str)), added  # some were cut


def test_a_none_key_is_dropped_and_counted_as_the_sdk_does() -> None:
    """``set_attribute(None, v)`` is warned about, dropped and counted in ``dropped_attributes``, as by the SDK."""
    views = []
    for lean in (False, True):
        provider, out = _provider(lean)
        span = provider.get_tracer("t").start_span("s")
        span.set_attribute("a", 1)
        span.set_attribute(None, "x")  # type: ignore[arg-type]
        span.end()
        (finished,) = out.get_finished_spans()
        views.append((dict(finished.attributes), finished.dropped_attributes))
    assert views[1] == views[0] == ({"a": 1}, 1)


def test_a_processor_that_deep_copies_the_span_in_on_end_gets_a_readable_copy() -> None:
    """An app's processor that archives ``copy.deepcopy(span)`` in ``on_end`` works, as with the SDK's span."""
    import copy

    from opentelemetry.sdk.trace import SpanProcessor

    class Archive(SpanProcessor):
        def __init__(self) -> None:
            self.kept: list[ReadableSpan] = []

        def on_end(self, span: ReadableSpan) -> None:
            self.kept.append(copy.deepcopy(span))

    views = []
    for lean in (False, True):
        provider, _ = _provider(lean)
        archive = Archive()
        provider.add_span_processor(archive)
        _exercise(provider.get_tracer("t"))
        assert all(type(kept) is ReadableSpan for kept in archive.kept)
        views.append([{k: v for k, v in _view(kept).items() if k != "parent"} for kept in archive.kept])
    assert views[1] == views[0]


def test_the_trial_run_does_not_detect_the_resource(monkeypatch: pytest.MonkeyPatch) -> None:
    """Resource detection runs once, for the app's provider: the span type's trial run has a resource of its own."""
    from opentelemetry.sdk.resources import Resource

    created = []
    original = Resource.create

    def counting(*args: Any, **kwargs: Any) -> Any:
        created.append(1)
        return original(*args, **kwargs)

    monkeypatch.setattr(Resource, "create", staticmethod(counting))
    assert spans.trial_run()
    assert created == []


def test_text_made_with_str_obeys_the_value_length_limit() -> None:
    """A value turned into text with ``str()`` is cut to the attribute length limit (the SDK leaves it whole).

    An intended difference (docs/distribution.md): the SDK converts such a value after its length check, so a
    large ``__str__`` escapes ``OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT``; otel-monitor's span applies the limit.
    """

    class Text:
        def __str__(self) -> str:
            return "abcdefghij"

    provider, out = _provider(True, limits=SpanLimits(max_span_attribute_length=4))
    span = provider.get_tracer("t").start_span("s")
    span.set_attribute("k", Text())
    span.end()
    (finished,) = out.get_finished_spans()
    assert dict(finished.attributes) == {"k": "abcd"}

"""A leaner recording span for the SDK's tracer: same API, same exported data.

The SDK's ``Span`` pays on every span for what few spans use: a lock taken by
every ``set_attribute``, ``update_name`` and ``set_status``; a
``BoundedAttributes`` (with its own lock) whose every write checks and copies
the value; an empty ``BoundedList`` each for events and links; and a
``ReadableSpan`` copy at the end.  A server request's span sees about ten
attribute writes and a rename, most of them for a span that is recorded only
so that metrics stay exact (``RECORD_ONLY``) and is then forgotten.

:class:`MonitorSpan` is the SDK's ``Span`` (a subclass: ``isinstance`` checks,
``record_exception``, ``add_event``, ``add_link``, ``set_status`` and the
``ReadableSpan`` properties are the SDK's own) with these differences:

* attributes are written to a plain dict, unchecked; they are checked and
  bounded (the SDK's ``BoundedAttributes``, same limits, same warnings) once,
  when a span is handed to an exporter: at its end when it is sampled, or by
  :func:`exportable` when an unsampled span is kept because it failed or was
  slow.  A sampled span whose attributes the bounded mapping would leave as
  they are (within the limits, scalar values) keeps the plain dict
  (:func:`_checked`).  Span processors see the written values; ours read
  them defensively;
* writes take no lock; ``end`` copies the attributes in one step under the
  span's lock and keeps the copy, so a span ends once and a write racing with
  its end is lost (as a write that loses the race for the SDK's lock is)
  without either side failing.  A key that is not a non-empty string, or a
  write past the attribute limit, switches the span to the SDK's checked
  mapping under its lock;
* events and links get their bounded lists on first use;
* the span passed to ``on_end`` is the span itself (a ``ReadableSpan``, and
  ended it refuses every change), not the SDK's copy of its fields.

:class:`MonitorTracer` is the SDK's ``Tracer`` whose ``start_span`` makes
these spans; :func:`install` makes a ``TracerProvider`` hand out such tracers.

:meth:`MonitorTracer.held_child` gives the SQLAlchemy query spans of an
unsampled request a smaller form, :class:`HeldSpan`: a record of the span's
name, attributes, times and status, made into a ``ReadableSpan`` only if the
request is kept for export (it failed or was slow). It is used only where
nothing could tell the difference: the span is not sampled and is never made
current, and every span processor on the provider is one of ours that does
nothing with such a span but hold it (see :func:`_plan`). An app that adds a
span processor of its own gets real spans, as before.
"""

from __future__ import annotations

import copy
import logging
import random
from collections.abc import Mapping, Sequence
from time import time_ns
from typing import TYPE_CHECKING, Any

from opentelemetry import context as context_api
from opentelemetry import trace as trace_api
from opentelemetry.attributes import BoundedAttributes, _clean_attribute_value
from opentelemetry.sdk.trace import ReadableSpan, Span, Tracer, TracerProvider
from opentelemetry.sdk.trace._tracer_metrics import NoOpTracerMetrics
from opentelemetry.sdk.trace.id_generator import RandomIdGenerator
from opentelemetry.sdk.trace.sampling import Decision
from opentelemetry.sdk.util import BoundedList
from opentelemetry.trace import NonRecordingSpan, SpanContext, SpanKind, TraceFlags

from otel_monitor import patching
from otel_monitor.pipeline import tail_sampling

if TYPE_CHECKING:
    from opentelemetry.trace import TraceState

logger = logging.getLogger("opentelemetry.sdk.trace")

_EMPTY: tuple[Any, ...] = ()
_SAMPLED = TraceFlags(TraceFlags.SAMPLED)
_NOT_SAMPLED = TraceFlags(TraceFlags.DEFAULT)
_SAMPLED_RANDOM = TraceFlags(TraceFlags.SAMPLED | TraceFlags.RANDOM_TRACE_ID)
_NOT_SAMPLED_RANDOM = TraceFlags(TraceFlags.DEFAULT | TraceFlags.RANDOM_TRACE_ID)
_get_current_span = trace_api.get_current_span
_NO_LIMIT = 1 << 62


def _bounded(attributes: Any, limits: Any) -> BoundedAttributes:
    return BoundedAttributes(
        limits.max_span_attributes, attributes, immutable=True, max_value_len=limits.max_span_attribute_length
    )


# Values the SDK's bounded mapping keeps as they are, in every SDK version we support
# (a held child's attributes must be of these too).
KEPT_AS_THEY_ARE = frozenset({str, int, float, bool})


def _checked(attributes: dict[str, Any], limits: Any) -> Any:
    """``attributes`` (a plain dict of ours) as the SDK's ``BoundedAttributes`` would keep them.

    The dict itself when the bounded mapping would change nothing: no more
    attributes than the limit and every value a ``str`` within the length
    limit, an ``int``, a ``float`` or a ``bool`` (the keys are non-empty strings, or
    the span would hold the bounded mapping already). Readers see the same
    mapping and ``dropped_attributes`` is 0 either way; what is saved is the
    mapping's own object, lock and per-item copy, on every sampled span.
    Otherwise, the bounded mapping.
    """
    max_attributes = limits.max_span_attributes
    if max_attributes is None or len(attributes) <= max_attributes:
        max_length = limits.max_span_attribute_length
        for value in attributes.values():
            kind = value.__class__
            if kind not in KEPT_AS_THEY_ARE or (kind is str and max_length is not None and len(value) > max_length):
                break
        else:
            return attributes
    return _bounded(attributes, limits)


_RECORD_AND_SAMPLE = Decision.RECORD_AND_SAMPLE
_RECORD_ONLY = Decision.RECORD_ONLY
_TRACE_ID_LIMIT = (1 << 64) - 1
_PLAIN = frozenset({str, int, float, bool, bytes, type(None)})
_UNSET = trace_api.Status(trace_api.StatusCode.UNSET)
_NO_KEY = object()  # _set_checked with no key to write: only switch to the checked mapping


class MonitorSpan(Span):
    """The SDK's recording span with lock-free, deferred-checked attributes (see the module)."""

    def __init__(  # the SDK's own signature, in its order
        self,
        name: str,
        context: SpanContext,
        parent: SpanContext | None,
        resource: Any,
        attributes: Any,
        span_processor: Any,
        kind: SpanKind,
        links: Sequence[trace_api.Link],
        instrumentation_info: Any,
        record_exception: bool,
        set_status_on_exception: bool,
        limits: Any,
        instrumentation_scope: Any,
        record_end_metrics: Any,
    ) -> None:
        # ReadableSpan's fields, then Span's, without the SDK's per-span allocations.
        self._limits = limits
        self._max_attributes = limits.max_span_attributes if limits.max_span_attributes is not None else _NO_LIMIT
        self._name = name
        self._context = context
        self._kind = kind
        self._instrumentation_info = instrumentation_info
        self._instrumentation_scope = instrumentation_scope
        self._parent = parent
        self._start_time: int | None = None
        self._end_time: int | None = None
        self._attributes: Any = {}
        self._lock = _new_lock()  # before the attributes: past the limit they take the checked way, under it
        if attributes:
            self.set_attributes(attributes)
        self._events: Any = _EMPTY
        self._links: Any = self._new_links(links) if links else _EMPTY
        self._resource = resource
        self._status = _UNSET
        self._sampler = None
        self._trace_config = None
        self._record_exception = record_exception
        self._set_status_on_exception = set_status_on_exception
        self._span_processor = span_processor
        self._record_end_metrics = record_end_metrics

    def __deepcopy__(self, memo: dict[int, Any]) -> ReadableSpan:
        # What the SDK hands a processor's on_end is a ReadableSpan, which an app may deep-copy
        # (to archive it): a copy of this span is that ReadableSpan, not the live span and its lock.
        return copy.deepcopy(self._readable_span(), memo)

    def set_attributes(self, attributes: Mapping[str, Any]) -> None:
        if self._end_time is not None:
            logger.warning("Setting attribute on ended span.")  # once, as the SDK warns
            return
        mine = self._attributes
        if mine.__class__ is dict:
            for key, value in attributes.items():
                if key.__class__ is not str or not key or value.__class__ not in _PLAIN:
                    break
            else:
                # Plain keys and values (nearly always): set_attribute's own writes.
                if mine.keys().isdisjoint(attributes):
                    mine.update(attributes)  # all new keys: appended in their order, as one by one
                else:
                    for key, value in attributes.items():
                        mine.pop(key, None)  # a key set again becomes the newest
                        mine[key] = value
                if len(mine) > self._max_attributes:
                    self._set_checked(_NO_KEY, None)  # the SDK's bounded mapping keeps the newest, as one by one
                return
        if any(key.__class__ is not str or not key for key in attributes):
            self._set_checked(None, None, attributes)
            return
        for key, value in attributes.items():
            self.set_attribute(key, value)

    def set_attribute(self, key: str, value: Any) -> None:
        if value.__class__ not in _PLAIN:
            # Containers are copied now, as the SDK does, so later changes by the caller do not show.
            value = _clean_attribute_value(value, None)
        mine = self._attributes
        if self._end_time is not None:
            logger.warning("Setting attribute on ended span.")
            return
        if mine.__class__ is not dict or key.__class__ is not str or not key:
            self._set_checked(key, value)
            return
        # end() copies the dict in one step under the span's lock and keeps the copy:
        # a write racing with it lands in the old dict and is lost, as in the SDK a
        # write that loses the race for the lock is dropped; neither side can fail.
        mine.pop(key, None)  # a key set again is the newest, as in the SDK (it matters at the limit)
        mine[key] = value
        if len(mine) > self._max_attributes:
            self._set_checked(_NO_KEY, None)

    def _set_checked(self, key: Any, value: Any, items: Mapping[Any, Any] | None = None) -> None:
        # The SDK's own way, under the span's lock: past the attribute limit (the
        # SDK's bounded mapping keeps the newest and counts what it drops), a key
        # that is not a non-empty string (set_attribute warns and drops it), or
        # ``items`` with such a key (the SDK's set_attributes, its mapping's
        # _set_items, turns the key into its text).
        with self._lock:
            if self._end_time is not None:
                ended = True
            else:
                ended = False
                if self._attributes.__class__ is dict:
                    self._attributes = BoundedAttributes(
                        self._max_attributes,
                        self._attributes,
                        immutable=False,
                        max_value_len=self._limits.max_span_attribute_length,
                    )
                if items is not None:
                    set_items = getattr(self._attributes, "_set_items", None)
                    if set_items is not None:
                        set_items(items)
                    else:
                        for item_key, item_value in items.items():
                            self._attributes[item_key] = item_value
                elif key is not _NO_KEY:
                    self._attributes[key] = value  # an invalid key is warned about and counted here
        if ended:
            logger.warning("Setting attribute on ended span.")

    def update_name(self, name: str) -> None:
        if self._end_time is not None:
            logger.warning("Tried calling %s on an ended span.", "update_name")
            return
        self._name = name

    def _add_event(self, event: Any) -> None:
        with self._lock:
            if self._end_time is None:
                if self._events is _EMPTY:
                    self._events = self._new_events()
                self._events.append(event)
                return
        logger.warning("Tried calling %s on an ended span.", "_add_event")

    def _add_link(self, link: trace_api.Link) -> None:
        with self._lock:
            if self._end_time is None:
                if self._links is _EMPTY:
                    self._links = BoundedList(self._limits.max_links)
                self._links.append(link)
                return
        logger.warning("Tried calling %s on an ended span.", "_add_link")

    def start(self, start_time: int | None = None, parent_context: context_api.Context | None = None) -> None:
        if self._start_time is not None:
            logger.warning("Calling start() on a started span.")
            return
        self._start_time = start_time if start_time is not None else time_ns()
        for processor in _hooks(self._span_processor)[1]:
            processor.on_start(self, parent_context=parent_context)

    def end(self, end_time: int | None = None) -> None:
        with self._lock:
            if self._start_time is None:
                raise RuntimeError("Calling end() on a not started span.")
            if self._end_time is not None:
                logger.warning("Calling end() on an ended span.")
                return
            self._end_time = end_time if end_time is not None else time_ns()
            attributes = self._attributes
            if attributes.__class__ is BoundedAttributes:
                attributes._immutable = True  # written only under this lock  # noqa: SLF001 - SDK span internals (compat: lean_spans)
            else:
                # A copy made in one step: a write that passed the _end_time check just
                # before lands in the old dict, as the SDK drops a write that loses its lock.
                attributes = dict(attributes)
                if self._context is not None and self._context.trace_flags.sampled:
                    attributes = _checked(attributes, self._limits)  # on its way to an exporter
                self._attributes = attributes
        if self._record_end_metrics:
            self._record_end_metrics()
        _, _, endings, ends, _ = _hooks(self._span_processor)
        for processor in endings:
            processor._on_ending(self)  # noqa: SLF001 - the SDK's span processor hook
        # The span itself is the ReadableSpan processors get: ended, it refuses
        # every change, so the SDK's copy would only cost time.
        for processor in ends:
            processor.on_end(self)

    def _readable_span(self) -> ReadableSpan:
        # A snapshot (processors get the ended span itself): its attributes checked,
        # the live span's left as they are.
        attributes = self._attributes
        if self._end_time is None or attributes.__class__ is not BoundedAttributes:
            attributes = _bounded(dict(attributes), self._limits)
        return ReadableSpan(
            name=self._name,
            context=self._context,
            parent=self._parent,
            resource=self._resource,
            attributes=attributes,
            events=self._events,
            links=self._links,
            kind=self._kind,
            status=self._status,
            start_time=self._start_time,
            end_time=self._end_time,
            instrumentation_info=self._instrumentation_info,
            instrumentation_scope=self._instrumentation_scope,
        )


def _does_nothing(function: Any) -> bool:
    """A processor hook whose body is only ``pass`` or a docstring (the SDK's on_start and _on_ending)."""
    import dis

    if getattr(function, "__code__", None) is None:
        return False
    steps = [
        (step.opname, step.argval)
        for step in dis.get_instructions(function)
        if step.opname not in ("RESUME", "NOP", "CACHE")
    ]
    return steps in ([("LOAD_CONST", None), ("RETURN_VALUE", None)], [("RETURN_CONST", None)])


def _hook_does_nothing(processor: Any, name: str) -> bool:
    # The method as the processor has it (an instance's own attribute included), when its body is empty.
    function = getattr(getattr(processor, name, None), "__func__", None)
    return function is not None and _does_nothing(function)


def _plan(multi: Any) -> tuple[Any, tuple[Any, ...], tuple[Any, ...], tuple[Any, ...], Any]:
    """The processors whose on_start, _on_ending and on_end a span's start and end call, in the SDK's order.

    The SDK's ``SynchronousMultiSpanProcessor`` calls each processor's
    ``on_start``, ``_on_ending`` and ``on_end`` in turn; most processors' first
    two are empty (the batch and simple processors', ours behind their guard)
    and are left out. Each hook is still looked up on its processor at every
    call, as the SDK does, so a hook wrapped later runs; an empty hook
    replaced by a working one is seen once the processor list changes. Any
    other multi-processor, or one whose methods were replaced, is called as it is.

    The fifth element is what :meth:`MonitorTracer.held_child` needs, or None
    when a processor could see the difference between a held child and a span:
    ``(holders, operations, watched)``, the export processors that hold an
    unsampled child until its local root ends, the operation processors that
    look at it (for a rule that names it an operation), and every processor
    and guard whose ``on_end`` must still be its class's own when a child is held.
    """
    from opentelemetry.sdk.trace import SynchronousMultiSpanProcessor

    from otel_monitor.guard import GuardedSpanProcessor

    processors = getattr(multi, "_span_processors", None)
    cls = type(multi)
    if (
        cls is not SynchronousMultiSpanProcessor
        or not isinstance(processors, tuple)
        or any(getattr(cls, name) is not getattr(_SDK_MULTI, name) for name in ("on_start", "_on_ending", "on_end"))
        or any(name in vars(multi) for name in ("on_start", "_on_ending", "on_end"))
    ):
        return (None, (multi,), (multi,), (multi,), None)
    starts, endings = [], []
    for processor in processors:
        target = processor.inner if type(processor) is GuardedSpanProcessor else processor
        if not _hook_does_nothing(target, "on_start"):
            starts.append(processor)
        if getattr(target, "_on_ending", None) is not None and not _hook_does_nothing(target, "_on_ending"):
            endings.append(processor)
    plan = (processors, tuple(starts), tuple(endings), processors, _holding_plan(processors))
    multi._otel_monitor_hooks = plan  # noqa: SLF001 - our marker on a dependency's object
    return plan


def _holding_plan(processors: tuple[Any, ...]) -> Any:
    """``(holders, operations, watched)`` for :meth:`MonitorTracer.held_child`, or None (see :func:`_plan`).

    Known: our operation processor behind its guard (it names an unsampled
    client span's operation only by a rule, asked for each held child) and
    our export processor (it holds an unsampled child, when it keeps failed or
    slow requests). Exactly those classes, so no subclass's hook is skipped;
    their ``on_start`` and ``_on_ending`` are empty.
    """
    from otel_monitor.guard import GuardedSpanProcessor
    from otel_monitor.pipeline.processors import OperationSpanProcessor
    from otel_monitor.pipeline.tail_sampling import MonitorSpanExportProcessor

    holders: list[Any] = []
    operations: list[Any] = []
    watched: list[Any] = []
    for processor in processors:
        cls = type(processor)
        if cls is GuardedSpanProcessor and type(processor.inner) is OperationSpanProcessor:
            operations.append(processor.inner)
            watched += (processor, processor.inner)
        elif cls is MonitorSpanExportProcessor:
            if processor.holds_unsampled:
                holders.append(processor)
            watched.append(processor)
        else:
            return None
    return tuple(holders), tuple(operations), tuple(watched)


def _hooks(multi: Any) -> tuple[Any, tuple[Any, ...], tuple[Any, ...], tuple[Any, ...], Any]:
    """:func:`_plan`, kept on the multi-processor until its processor list changes (a processor added)."""
    plan: tuple[Any, tuple[Any, ...], tuple[Any, ...], tuple[Any, ...], Any] | None = getattr(
        multi, "_otel_monitor_hooks", None
    )
    if plan is not None and plan[0] is getattr(multi, "_span_processors", None):
        return plan
    return _plan(multi)


def _sdk_multi() -> Any:
    from opentelemetry.sdk.trace import SynchronousMultiSpanProcessor

    # Its methods as the SDK defines them, taken when this module loads.
    return type(
        "SDKMultiSpanProcessor",
        (),
        {name: getattr(SynchronousMultiSpanProcessor, name) for name in ("on_start", "_on_ending", "on_end")},
    )


_SDK_MULTI = _sdk_multi()


def _new_lock() -> Any:
    import threading

    global _new_lock
    _new_lock = threading.Lock  # bound once, then the C constructor itself
    return _new_lock()


def exportable(span: ReadableSpan) -> ReadableSpan:
    """An ended unsampled span of ours, its attributes now checked and bounded, for an exporter.

    A :class:`HeldSpan` becomes the ``ReadableSpan`` the span would have been.
    Any other span (the SDK's, or one whose attributes are already checked) is
    returned as it is.
    """
    if span.__class__ is HeldSpan:
        return span.readable()
    if isinstance(span, MonitorSpan) and span.end_time is not None and span._attributes.__class__ is dict:  # noqa: SLF001 - SDK span internals (compat: lean_spans)
        # A copy in one step: a write racing with end() cannot break it.
        span._attributes = _bounded(dict(span._attributes), span._limits)  # noqa: SLF001 - SDK span internals (compat: lean_spans)
    return span


class HeldSpan:
    """An unsampled child span kept as a record until its local root ends (:meth:`MonitorTracer.held_child`).

    It has what the code that runs a query span calls (``is_recording``,
    ``set_status``, ``end``) and what the export processor reads of a held
    child (``parent``, ``status``, times); :meth:`readable` makes the
    ``ReadableSpan`` the span would have been, when its request is kept.
    Its span id is drawn then: nothing saw it before (a held child is never
    made current, and no processor looked at it).
    """

    __slots__ = ("_attributes", "_holders", "_tracer", "end_time", "kind", "name", "parent", "start_time", "status")

    def __init__(
        self,
        tracer: Any,
        name: str,
        kind: SpanKind,
        attributes: Mapping[str, Any],
        parent: SpanContext,
        holders: tuple[Any, ...],
    ) -> None:
        self._tracer = tracer
        self.name = name
        self.kind = kind
        self._attributes = attributes  # a read-only mapping of plain values (checked by held_child's caller)
        self.parent = parent
        self._holders = holders
        self.start_time = time_ns()
        self.end_time: int | None = None
        self.status = _UNSET

    def is_recording(self) -> bool:
        return self.end_time is None

    def set_status(self, status: Any, description: str | None = None) -> None:
        """The SDK's rules: OK is final, UNSET is ignored, a ``StatusCode`` takes the description."""
        if self.end_time is not None:
            logger.warning("Tried calling %s on an ended span.", "set_status")
            return
        if self.status.status_code is trace_api.StatusCode.OK:
            return
        if isinstance(status, trace_api.Status):
            if status.status_code is not trace_api.StatusCode.UNSET:
                self.status = status
        elif isinstance(status, trace_api.StatusCode) and status is not trace_api.StatusCode.UNSET:
            self.status = trace_api.Status(status, description)

    def end(self, end_time: int | None = None) -> None:
        if self.end_time is not None:
            logger.warning("Calling end() on an ended span.")
            return
        self.end_time = end_time if end_time is not None else time_ns()
        for holder in self._holders:
            holder.hold(self)

    def readable(self) -> ReadableSpan:
        """The span this record stands for, as its export processor would have had it; attributes checked."""
        tracer = self._tracer
        parent = self.parent
        span_id = tracer.id_generator.generate_span_id()  # only for a kept request: the generator's own call
        flags = _NOT_SAMPLED_RANDOM if parent.trace_flags.random_trace_id else _NOT_SAMPLED
        context = SpanContext(
            parent.trace_id, span_id, is_remote=False, trace_flags=flags, trace_state=parent.trace_state
        )
        return ReadableSpan(
            name=self.name,
            context=context,
            parent=parent,
            resource=tracer.resource,
            attributes=_bounded(dict(self._attributes), tracer._span_limits),  # noqa: SLF001 - SDK span internals (compat: lean_spans)
            kind=self.kind,
            status=self.status,
            start_time=self.start_time,
            end_time=self.end_time,
            instrumentation_info=tracer.instrumentation_info,
            instrumentation_scope=tracer._instrumentation_scope,  # noqa: SLF001 - SDK span internals (compat: lean_spans)
        )


class MonitorTracer(Tracer):
    """The SDK's tracer, making :class:`MonitorSpan` spans; same sampling, ids and processors."""

    def start_span(  # the API's signature
        self,
        name: str,
        context: context_api.Context | None = None,
        kind: SpanKind = SpanKind.INTERNAL,
        attributes: Any = None,
        links: Sequence[trace_api.Link] | None = (),
        start_time: int | None = None,
        record_exception: bool = True,
        set_status_on_exception: bool = True,
    ) -> trace_api.Span:
        current = _get_current_span(context).get_span_context()
        if current is not None and not isinstance(current, SpanContext):
            raise TypeError("parent_span_context must be a SpanContext or None.")
        if not self._tracer_config.is_enabled:
            return NonRecordingSpan(context=current)
        parent: SpanContext | None = current
        ids = self.id_generator
        # The default generator's ids, without three method calls (unless its methods were replaced on it).
        random_ids = ids.__class__ is RandomIdGenerator and not ids.__dict__
        if parent is None or not parent.is_valid:
            parent = None
            if random_ids:
                trace_id = random.getrandbits(128)
                while trace_id == 0:  # INVALID_TRACE_ID, as the generator retries
                    trace_id = random.getrandbits(128)
                random_trace_id = True
            else:
                trace_id = ids.generate_trace_id()
                random_trace_id = ids.is_trace_id_random()
        else:
            trace_id = parent.trace_id
            random_trace_id = parent.trace_flags.random_trace_id
        sampler: Any = self.sampler  # ours may carry follows_parent and root_bound
        trace_state: TraceState | None
        if parent is not None and getattr(sampler, "follows_parent", False):
            # The sampler's own rule for a child, without looking the parent up
            # three more times: the parent's flag decides, its trace state carries over.
            sampled = parent.trace_flags.sampled
            decision = _RECORD_AND_SAMPLE if sampled else _RECORD_ONLY
            trace_state = parent.trace_state
        elif parent is None and getattr(sampler, "root_bound", None) is not None:
            # Its rule for a root: the trace id ratio (RecordAllSampler records what it drops).
            sampled = trace_id & _TRACE_ID_LIMIT < sampler.root_bound
            decision = _RECORD_AND_SAMPLE if sampled else _RECORD_ONLY
            trace_state = None
        else:
            result = sampler.should_sample(context, trace_id, name, kind, attributes, links or ())
            decision, trace_state, attributes = result.decision, result.trace_state, result.attributes
            sampled = decision.is_sampled()
        if random_trace_id:
            flags = _SAMPLED_RANDOM if sampled else _NOT_SAMPLED_RANDOM
        else:
            flags = _SAMPLED if sampled else _NOT_SAMPLED
        if random_ids:
            span_id = random.getrandbits(64)
            while span_id == 0:  # INVALID_SPAN_ID
                span_id = random.getrandbits(64)
        else:
            span_id = ids.generate_span_id()
        span_context = SpanContext(trace_id, span_id, is_remote=False, trace_flags=flags, trace_state=trace_state)
        tracer_metrics = self._tracer_metrics
        # The SDK's span self-metrics, unless they are off (its default): then there is nothing to call.
        record_end_metrics = (
            None if tracer_metrics.__class__ is NoOpTracerMetrics else tracer_metrics.start_span(parent, decision)
        )
        if not decision.is_recording():
            return NonRecordingSpan(context=span_context)
        span = MonitorSpan(
            name,
            span_context,
            parent,
            self.resource,
            attributes,
            self.span_processor,
            kind,
            links or (),
            self.instrumentation_info,
            record_exception,
            set_status_on_exception,
            self._span_limits,
            self._instrumentation_scope,
            record_end_metrics,
        )
        span.start(start_time=start_time, parent_context=context)
        return span

    def held_child(self, name: str, kind: SpanKind, attributes: Mapping[str, Any]) -> HeldSpan | None:
        """A child of the current span as a :class:`HeldSpan`, started; None when it must be a span.

        For a span the caller never makes current, whose ``attributes`` are a
        mapping nobody changes, of string keys and plain values (bounded at
        export as the span's would be). A record only when nothing could tell
        it from a span: the parent is local and not
        sampled, so the sampler's own rule makes the child recorded-only; the
        tracer is enabled and the SDK's span self-metrics are off; every span
        processor is one of ours (:func:`_holding_plan`), none with a hook
        replaced on it; and no operation rule names the span. Otherwise the
        caller starts a span with :meth:`start_span`.
        """
        parent = _get_current_span().get_span_context()
        if not parent.is_valid or parent.is_remote or parent.trace_flags.sampled:
            return None
        if (
            not getattr(self.sampler, "follows_parent", False)
            or not self._tracer_config.is_enabled
            or self._tracer_metrics.__class__ is not NoOpTracerMetrics
        ):
            return None
        held = _hooks(self.span_processor)[4]
        if held is None:
            return None
        holders, operations, watched = held
        for processor in watched:
            hooks = processor.__dict__
            if "on_end" in hooks or "on_start" in hooks or "_on_ending" in hooks:
                return None
        span = HeldSpan(self, name, kind, attributes, parent, holders)
        for operation in operations:
            if operation.rules.name_for(span, attributes) is not None:
                return None  # an operation: its metric is recorded from the span, as for any other
        return span


def install(provider: Any) -> bool:
    """Make an SDK ``TracerProvider`` hand out :class:`MonitorTracer`; False when it does not.

    Not for any other provider, and not when a span of ours fails a trial run
    through the SDK's own span methods (an SDK whose ``Span`` has moved on):
    the SDK's span type then stays.  Tracers the provider already gave out are
    converted too (a ``MonitorTracer`` has no state of its own, only a
    different ``start_span``).
    """
    if type(provider) is not TracerProvider or not trial_run():
        return False
    original = provider.get_tracer

    def get_tracer(*args: Any, **kwargs: Any) -> Any:
        tracer = original(*args, **kwargs)
        if type(tracer) is Tracer:
            tracer.__class__ = MonitorTracer
        return tracer

    patching.replace(provider, "get_tracer", get_tracer)
    with provider._tracers_lock:  # noqa: SLF001 - SDK provider's tracers (compat: lean_spans)
        for tracer in provider._tracers.values():  # noqa: SLF001 - SDK provider's tracers (compat: lean_spans)
            if type(tracer) is Tracer:
                tracer.__class__ = MonitorTracer
    return True


def trial_run() -> bool:
    """Every span method, on a provider of its own with nothing to export to."""
    from opentelemetry.metrics import NoOpMeterProvider
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import SpanLimits
    from opentelemetry.sdk.trace.sampling import ALWAYS_ON

    try:
        # Limits and meter of its own: the app's OTEL_SPAN_* limits and SDK metrics are not the trial's.
        # An empty resource: the app's resource detectors run once, for the app's provider, not for the trial.
        trial = TracerProvider(
            sampler=ALWAYS_ON,
            shutdown_on_exit=False,
            meter_provider=NoOpMeterProvider(),
            resource=Resource.get_empty(),
            span_limits=SpanLimits(
                max_span_attributes=128,
                max_events=128,
                max_links=128,
                max_attributes=128,
                max_event_attributes=128,
                max_link_attributes=128,
            ),
        )
        tracer = trial.get_tracer("otel_monitor.fast.spans")
        tracer.__class__ = MonitorTracer
        with tracer.start_as_current_span("trial", attributes={"a": 1}) as span:
            child = tracer.start_span("child", links=[trace_api.Link(span.get_span_context())])
            child.add_link(span.get_span_context(), {"b": 2})
            child.add_event("event", {"c": [3]})
            child.record_exception(ValueError("trial"))
            child.set_status(trace_api.StatusCode.ERROR, "trial")
            child.set_attributes({"d": "e"})
            child.update_name("renamed")
            child.end()
            if not isinstance(child, MonitorSpan):
                return False
            readable = child._readable_span()  # noqa: SLF001 - the SDK's own snapshot of a span
            return (
                readable.name == "renamed"
                and len(readable.events) == 2
                and len(readable.links) == 2
                and (readable.attributes or {}).get("d") == "e"
                and readable.status.status_code is trace_api.StatusCode.ERROR
            )
    except Exception as exc:  # noqa: BLE001 - any failure means: keep the SDK's span type
        logger.debug("otel-monitor keeps the SDK's span type: %r", exc)
        return False


tail_sampling.register_exportable(exportable)

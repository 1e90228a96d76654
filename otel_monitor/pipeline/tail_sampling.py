"""Sampling that keeps metrics exact and keeps the requests worth looking at.

* :class:`RecordAllSampler` wraps the sampler chosen by ``OTEL_TRACES_SAMPLER``
  and turns its DROP into RECORD_ONLY: every span is still seen by our
  processors (so operation metrics count every request) while only sampled
  ones are exported.
* :class:`MonitorSpanExportProcessor` is the batch export processor. Besides
  sampled spans it exports the local spans of an *unsampled* request when the
  request failed or was slow, decided when its local root span ends.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from opentelemetry.context import Context
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter
from opentelemetry.sdk.trace.sampling import Decision, Sampler, SamplingResult
from opentelemetry.trace import SpanKind, StatusCode, get_current_span
from opentelemetry.trace.span import TraceState
from opentelemetry.util.types import Attributes

from otel_monitor import semconv
from otel_monitor.guard import internal_error, renew_after_fork


def _as_is(span: ReadableSpan) -> ReadableSpan:
    return span


# What an exporter takes for an ended span: a fast span type registers its own
# conversion here when it is imported (otel_monitor.fast.spans), so this layer
# never imports the fast paths.
exportable: Callable[[ReadableSpan], ReadableSpan] = _as_is


def register_exportable(convert: Callable[[ReadableSpan], ReadableSpan]) -> None:
    """Make ``convert`` the function that turns an ended span into what an exporter takes."""
    global exportable
    exportable = convert


class RecordAllSampler(Sampler):
    """Delegate the decision; record (never drop) what the delegate drops.

    A recorded-only span keeps the attributes it was started with: the
    delegate's DROP carries none, and a failed or slow request's span that is
    kept needs them (``url.path``, ``server.address``).
    """

    def __init__(
        self, delegate: Sampler, parent_rules: Callable[[Sampler], tuple[bool, int | None]] | None = None
    ) -> None:
        #: How the delegate's rules are read (``otel_monitor.fast.sampling.parent_rules``, passed
        #: in by the launcher); without it the delegate is always asked.
        self.parent_rules = parent_rules
        self.delegate = delegate

    @property
    def delegate(self) -> Sampler:
        return self._delegate

    @delegate.setter
    def delegate(self, delegate: Sampler) -> None:
        self._delegate = delegate
        #: A child follows its parent's flag: the delegate is ``ParentBased``
        #: with its default rules for parents (only the root's rule differs).
        #: The tracer of :mod:`otel_monitor.fast.spans` then decides without calling us.
        #: With ``follows_parent``: a root is sampled when its trace id's low 64
        #: bits are under ``root_bound`` (the ratio rule of ``TraceIdRatioBased``;
        #: ``ALWAYS_ON`` and ``ALWAYS_OFF`` are its two ends), or None when the
        #: root's rule is some other sampler, which is then asked.
        rules = self.parent_rules
        follows, bound = rules(delegate) if rules is not None else (False, None)
        self.follows_parent = type(self) is RecordAllSampler and follows  # not a subclass's rule
        self.root_bound = bound if self.follows_parent else None

    def should_sample(
        self,
        parent_context: Context | None,
        trace_id: int,
        name: str,
        kind: SpanKind | None = None,
        attributes: Attributes = None,
        links: Any = None,
        trace_state: TraceState | None = None,
    ) -> SamplingResult:
        result = self.delegate.should_sample(parent_context, trace_id, name, kind, attributes, links, trace_state)
        if result.decision is Decision.DROP:
            if trace_state is None:
                trace_state = get_current_span(parent_context).get_span_context().trace_state
            return SamplingResult(Decision.RECORD_ONLY, attributes, result.trace_state or trace_state)
        return result

    def get_description(self) -> str:
        return f"RecordAll{{{self.delegate.get_description()}}}"


class MonitorSpanExportProcessor(BatchSpanProcessor):
    """Batch export of sampled spans, plus unsampled requests that failed or were slow.

    Unsampled spans are held per trace until the local root ends (children end
    first), then exported or forgotten; so are the records that stand for
    unsampled query spans (:meth:`hold`). At most ``max_pending`` spans are held;
    beyond that the oldest trace's spans are forgotten.
    """

    def __init__(
        self,
        exporter: SpanExporter,
        *,
        keep_errors: bool = True,
        slow_threshold_ms: float = 0.0,
        max_pending: int = 4096,
        client_errors_fail: bool = False,
        **batch_options: Any,
    ) -> None:
        super().__init__(exporter, **batch_options)
        self._keep_errors = keep_errors
        self._client_errors_fail = client_errors_fail
        self._slow_ns = int(slow_threshold_ms * 1e6)
        self._tail = keep_errors or self._slow_ns > 0
        self._pending: OrderedDict[int, list[ReadableSpan]] = OrderedDict()
        self._pending_count = 0
        self._max_pending = max_pending
        self._pending_lock = threading.Lock()
        renew_after_fork(self, "_pending_lock")

    def on_end(self, span: ReadableSpan) -> None:
        context = span.context
        if context is None:
            return
        if context.trace_flags.sampled:
            self._batch_processor.emit(span)
            return
        if self._tail:
            # try/except rather than guarded(): same containment, less per-span overhead.
            try:
                with self._pending_lock:
                    self._hold_or_decide(span)
            except Exception as exc:  # noqa: BLE001
                internal_error("unsampled error/slow span keeping", exc)

    @property
    def holds_unsampled(self) -> bool:
        """Whether an unsampled child is held until its local root ends (a held child of otel_monitor.fast.spans is
        handed to :meth:`hold` then)."""
        return self._tail

    def hold(self, span: Any) -> None:
        """An ended :class:`~otel_monitor.fast.spans.HeldSpan`: held as an unsampled child span is."""
        try:
            with self._pending_lock:
                self._hold(span.parent.trace_id, span)
        except Exception as exc:  # noqa: BLE001
            internal_error("unsampled error/slow span keeping", exc)

    def _hold(self, trace_id: int, span: Any) -> None:
        # A child: hold it until its local root ends.
        self._pending.setdefault(trace_id, []).append(span)
        self._pending_count += 1
        while self._pending_count > self._max_pending and self._pending:
            _, dropped = self._pending.popitem(last=False)
            self._pending_count -= len(dropped)

    def _hold_or_decide(self, span: ReadableSpan) -> None:
        trace_id = span.context.trace_id
        parent = span.parent
        if parent is not None and not parent.is_remote:
            self._hold(trace_id, span)
            return
        held = self._pending.pop(trace_id, [])
        self._pending_count -= len(held)
        if self._worth_keeping(span, held):
            # Recorded-only spans carry their attributes unchecked, held children are
            # records (otel_monitor.fast.spans): exportable() makes each what an exporter takes.
            for child in held:
                self._batch_processor.emit(exportable(child))
            self._batch_processor.emit(exportable(span))

    def _worth_keeping(self, root: ReadableSpan, children: list[ReadableSpan]) -> bool:
        if self._slow_ns and root.end_time is not None and root.start_time is not None:
            if root.end_time - root.start_time >= self._slow_ns:
                return True
        if self._keep_errors:
            if root.status.status_code is StatusCode.ERROR:
                return True
            if self._client_errors_fail and root.kind is SpanKind.SERVER:
                # OTEL_MONITOR_CLIENT_ERRORS_FAIL: a 4xx answer is a failed request too.
                status = (root.attributes or {}).get(semconv.HTTP_RESPONSE_STATUS_CODE)
                if isinstance(status, int) and 400 <= status < 500:
                    return True
            return any(child.status.status_code is StatusCode.ERROR for child in children)
        return False


__all__ = ["MonitorSpanExportProcessor", "RecordAllSampler"]

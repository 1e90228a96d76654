"""Sampler wrappers: record every span so that metrics stay exact under sampling.

Processors only see spans the sampler records.  :class:`RecordOnlySampler`
turns a wrapped sampler's DROP into RECORD_ONLY: the span is not exported (the
batch processor skips unsampled spans) but our processors still see it, so
``monitor.operation.duration`` counts every request whatever the ratio.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from opentelemetry.sdk.trace.sampling import Decision, Sampler, SamplingResult


class RecordOnlySampler(Sampler):
    """Wraps ``sampler``: DROP becomes RECORD_ONLY, every other decision is kept."""

    def __init__(self, sampler: Sampler) -> None:
        self._sampler = sampler

    def should_sample(
        self,
        parent_context: Any,
        trace_id: int,
        name: str,
        kind: Any = None,
        attributes: Any = None,
        links: Sequence[Any] | None = None,
        trace_state: Any = None,
    ) -> SamplingResult:
        result = self._sampler.should_sample(
            parent_context, trace_id, name, kind, attributes, links, trace_state)
        if result.decision is Decision.DROP:
            return SamplingResult(Decision.RECORD_ONLY, result.attributes, result.trace_state)
        return result

    def get_description(self) -> str:
        return f"RecordOnly{{{self._sampler.get_description()}}}"

"""The SDK sampler's rules, read so the lean span type can decide without asking it (compat: lean_spans).

The SDK's ``ParentBased`` keeps its four rules for parents and its rule for a
root private. When they are the defaults (a sampled parent's child sampled,
an unsampled parent's not), :class:`~otel_monitor.fast.spans.MonitorTracer`
decides a child from its parent's flag, and a root from its trace id when the
root's rule is a ratio (or always on or off), instead of calling the
sampler. The launcher passes :func:`parent_rules` to
:class:`~otel_monitor.pipeline.tail_sampling.RecordAllSampler`; without it
the sampler is always asked.
"""

from __future__ import annotations

from typing import Any


def parent_rules(sampler: Any) -> tuple[bool, int | None]:
    """``(follows_parent, root_bound)`` of ``sampler``.

    ``follows_parent``: it is the SDK's own ``ParentBased`` (or
    ``ParentBasedTraceIdRatio``) with its default rules for parents; a
    subclass may decide otherwise. ``root_bound``, with ``follows_parent``: a
    root is sampled when its trace id's low 64 bits are under it (the ratio
    rule of ``TraceIdRatioBased``; ``ALWAYS_ON`` and ``ALWAYS_OFF`` are its two
    ends), or None when the root's rule is some other sampler.
    """
    follows = _follows_parent(sampler)
    return follows, _root_bound(sampler) if follows else None


def _follows_parent(sampler: Any) -> bool:
    from opentelemetry.sdk.trace.sampling import ALWAYS_OFF, ALWAYS_ON, ParentBased, ParentBasedTraceIdRatio

    return (
        isinstance(sampler, ParentBased)
        and type(sampler) in (ParentBased, ParentBasedTraceIdRatio)
        and (
            sampler._remote_parent_sampled is ALWAYS_ON  # noqa: SLF001 - the SDK keeps its rules private
            and sampler._local_parent_sampled is ALWAYS_ON  # noqa: SLF001 - the SDK keeps its rules private
            and sampler._remote_parent_not_sampled is ALWAYS_OFF  # noqa: SLF001 - the SDK keeps its rules private
            and sampler._local_parent_not_sampled is ALWAYS_OFF  # noqa: SLF001 - the SDK keeps its rules private
        )
    )


def _root_bound(sampler: Any) -> int | None:
    from opentelemetry.sdk.trace.sampling import ALWAYS_OFF, ALWAYS_ON, TraceIdRatioBased

    root = sampler._root  # noqa: SLF001 - the SDK sampler's root rule, read for its ratio
    if root is ALWAYS_ON:
        return TraceIdRatioBased.TRACE_ID_LIMIT + 1
    if root is ALWAYS_OFF:
        return 0
    if type(root) is TraceIdRatioBased:
        return int(root.bound)
    return None

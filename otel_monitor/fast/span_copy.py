"""A light copy of an ended span for export, made through the SDK's private fields.

The export-time wrapper (``pipeline.processors.SpanEnricher``) never changes
the SDK's span: when it adds attributes or scrubs a field it exports a copy.
The public ``ReadableSpan(...)`` constructor loses the counts of events and
links the SDK dropped, which live in private fields; this copy keeps every
field and replaces only those that changed. The launcher passes it to the
pipeline (``build_pipeline(copy=light_copy)``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from opentelemetry.sdk.trace import Event, ReadableSpan
from opentelemetry.trace import Link, Status


def light_copy(
    span: ReadableSpan,
    name: str,
    attributes: Any,
    resource: Any,
    events: Sequence[Event] | None = None,
    links: Sequence[Link] | None = None,
    status: Status | None = None,
) -> ReadableSpan:
    """``span`` with these fields changed (None: kept); the SDK's span stays untouched."""
    copied = ReadableSpan.__new__(ReadableSpan)
    copied.__dict__.update(span.__dict__)
    copied._attributes = attributes  # noqa: SLF001 - fields of our copy of an SDK ReadableSpan
    copied._name = name  # noqa: SLF001 - fields of our copy of an SDK ReadableSpan
    copied._resource = resource  # noqa: SLF001 - fields of our copy of an SDK ReadableSpan
    if events is not None:
        copied._events = tuple(events)  # noqa: SLF001 - fields of our copy of an SDK ReadableSpan
    if links is not None:
        copied._links = tuple(links)  # noqa: SLF001 - fields of our copy of an SDK ReadableSpan
    if status is not None:
        copied._status = status  # noqa: SLF001 - fields of our copy of an SDK ReadableSpan
    return copied

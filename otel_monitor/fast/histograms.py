"""Histogram records straight into the SDK's aggregations, through its private metric storage.

One ``Histogram.record`` of the SDK builds a ``Measurement``, asks the exemplar
filter, walks every reader's storage and view, and hashes the attributes
before it aggregates; ``monitor.operation.duration`` is recorded once per
request. Kept because it pays: counted per request in the production profile
(``benchmarks/README.md``, "Fast paths and what they buy"), it takes more
than the 3% bar off the instrumented request's added cost. The launcher
passes :meth:`DirectAggregations.for_instrument` to
``pipeline.instruments.create_instruments`` (``OTEL_MONITOR_DIRECT_HISTOGRAMS``,
compat: direct_histograms).
"""

from __future__ import annotations

from collections.abc import Mapping
from time import time_ns
from typing import Any

_INFINITY = float("inf")


class DirectAggregations:
    """The SDK aggregations a histogram's attribute set lands in, so a hot record skips the SDK's dispatch.

    One ``Histogram.record`` of the SDK builds a ``Measurement`` (cleaning its
    attributes), asks the exemplar filter, walks every reader's storage and view,
    copies and hashes the attributes, then aggregates: about 7 µs, of which the
    aggregation itself is under 1.  The aggregation object for an attribute set
    never changes once the SDK created it, so after the first record of a set
    through the SDK we keep the list of its aggregations (one per reader and
    view) and later records go straight to them.  Collection, temporality,
    views and exporters stay the SDK's own.

    Anything this does not understand takes the SDK's path: exemplars on, a
    meter disabled by a configurator, a non-finite or negative value, an
    attribute set the SDK did not create an aggregation for, or SDK internals
    that are not where they are expected.  A replaced set of reader storages
    (a reader added, or fresh state after fork) empties the cache.
    """

    def __init__(self, instrument: Any, max_sets: int) -> None:
        from opentelemetry.sdk.metrics._internal._view_instrument_match import _hash_attributes
        from opentelemetry.sdk.metrics._internal.exemplar.exemplar_filter import AlwaysOffExemplarFilter
        from opentelemetry.sdk.metrics._internal.measurement import Measurement

        self._instrument = instrument
        self._consumer = instrument._measurement_consumer  # noqa: SLF001 - SDK metric storage internals (compat: direct_histograms)
        self._always_off = AlwaysOffExemplarFilter
        self._measurement = Measurement
        self._hash = _hash_attributes
        self._max_sets = max_sets
        self.enabled = True
        # One immutable pair, read once per call: the storages the cache was built for, and the
        # cache.  Replacing it is a single assignment, so no thread sees one without the other.
        self._state: tuple[Any, dict[Any, list[Any]]] = (None, {})

    @classmethod
    def for_instrument(cls, instrument: Any, max_sets: int) -> DirectAggregations | None:
        try:
            from opentelemetry.sdk.metrics._internal.instrument import Histogram
        except ImportError:
            return None
        consumer = getattr(instrument, "_measurement_consumer", None)
        if not isinstance(instrument, Histogram) or not hasattr(consumer, "_reader_storages"):
            return None
        try:
            return cls(instrument, max_sets)
        except (ImportError, AttributeError):
            return None

    def record(self, amount: float, key: Any) -> bool:
        """Aggregate directly; False when the SDK's own ``record`` must take this one."""
        storages = self._consumer._reader_storages  # noqa: SLF001 - SDK metric storage internals (compat: direct_histograms)
        built_for, by_key = self._state
        if storages is not built_for:
            self._state = (storages, {})
            return False
        targets = by_key.get(key)
        if targets is None or not 0.0 <= amount < _INFINITY or not self._instrument._is_enabled():  # noqa: SLF001 - SDK metric storage internals (compat: direct_histograms)
            return False
        measurement = self._measurement(amount, time_ns(), self._instrument, None, None)  # type: ignore[arg-type]
        for aggregation in targets:
            aggregation.aggregate(measurement, False)
        return True

    def known_sets(self) -> int:
        """How many attribute sets now go straight to their aggregations."""
        return len(self._state[1])

    def learn(self, attributes: Mapping[str, Any] | None, key: Any) -> None:
        """After the SDK recorded ``attributes``: remember their aggregations, when that is safe."""
        try:
            self._learn(attributes, key)
        except (AttributeError, ImportError, TypeError):
            self.enabled = False  # the SDK's internals moved: its own path from now on

    def _learn(self, attributes: Mapping[str, Any] | None, key: Any) -> None:
        storages, by_key = self._state
        if storages is None or storages is not self._consumer._reader_storages or key in by_key:  # noqa: SLF001 - SDK metric storage internals (compat: direct_histograms)
            return
        if not isinstance(self._consumer._sdk_config.exemplar_filter, self._always_off):  # noqa: SLF001 - SDK metric storage internals (compat: direct_histograms)
            return
        targets = []
        given = dict(attributes or {})
        for storage in storages.values():
            for match in storage._instrument_view_instrument_matches.get(self._instrument, ()):  # noqa: SLF001 - SDK metric storage internals (compat: direct_histograms)
                kept = given
                if match._view._attribute_keys is not None:  # noqa: SLF001 - SDK metric storage internals (compat: direct_histograms)
                    kept = {k: v for k, v in given.items() if k in match._view._attribute_keys}  # noqa: SLF001 - SDK metric storage internals (compat: direct_histograms)
                aggregation = match._attributes_aggregation.get(self._hash(kept))  # noqa: SLF001 - SDK metric storage internals (compat: direct_histograms)
                if aggregation is None:
                    return
                targets.append(aggregation)
        # Written into the cache built for `storages` only: were the storages replaced
        # meanwhile, that cache is already unreachable and these targets are lost with it.
        if targets and len(by_key) < self._max_sets and self._consumer._reader_storages is storages:  # noqa: SLF001 - SDK metric storage internals (compat: direct_histograms)
            by_key[key] = targets

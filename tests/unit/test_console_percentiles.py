"""The console's percentiles: within the stated error of the truth, inside the observed range,
and exact at SLO thresholds."""

from __future__ import annotations

import math
from bisect import bisect_left

from hypothesis import given, settings
from hypothesis import strategies as st

from otel_monitor.console.store import Histogram
from otel_monitor.semantics.slo import DEFAULT_BUCKETS, PERCENTILE_RELATIVE_ERROR, SLOs

BOUNDS = SLOs().buckets
durations = st.lists(st.floats(min_value=1e-5, max_value=60.0, allow_nan=False), min_size=1, max_size=300)


def _histogram(values: list[float]) -> Histogram:
    hist = Histogram()
    for v in values:
        hist.add(BOUNDS, {bisect_left(BOUNDS, v): 1}, v, 1, None, v, v)
    return hist


def _nearest_rank(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


def test_default_buckets_are_dense_and_keep_every_default_threshold() -> None:
    """Neighbouring bounds at most 14.3% apart from 10 µs to 60 s; the default SLO thresholds are bounds."""
    assert DEFAULT_BUCKETS[0] == 1e-5 and DEFAULT_BUCKETS[-1] == 60.0
    assert PERCENTILE_RELATIVE_ERROR < 0.143
    assert SLOs().missing_buckets() == []
    assert all(len(repr(b)) <= 8 for b in DEFAULT_BUCKETS)  # readable `le` labels: 0.000224, not 0.00022400000000000002


@settings(max_examples=200, deadline=None)
@given(durations, st.sampled_from([0.5, 0.9, 0.95, 0.99]))
def test_a_percentile_is_within_the_stated_error_and_the_observed_range(values: list[float], q: float) -> None:
    hist = _histogram(values)
    found = hist.locate(q)
    assert found is not None
    estimate, error = found
    truth = _nearest_rank(values, q)
    assert min(values) <= estimate <= max(values)
    assert error is not None and error <= PERCENTILE_RELATIVE_ERROR + 1e-9
    assert abs(estimate - truth) <= error * truth * (1 + 1e-9) + 1e-12


@settings(max_examples=200, deadline=None)
@given(durations, st.sampled_from(sorted(SLOs().latency_thresholds())), st.sampled_from([0.5, 0.95, 0.99]))
def test_a_threshold_on_a_bound_is_judged_exactly(values: list[float], threshold: float, q: float) -> None:
    """ "p95 above 0.5 s" from the histogram is what the calls themselves say."""
    hist = _histogram(values)
    assert (hist.percentile(q) > threshold) == (_nearest_rank(values, q) > threshold)  # type: ignore[operator]


def test_one_slow_request_is_its_own_percentiles() -> None:
    """One 2.5005 s request: p50 = p95 = p99 = 2.5005 s, where 3.75 s and 4.875 s were shown before."""
    hist = _histogram([2.5005])
    assert [hist.percentile(q) for q in (0.5, 0.95, 0.99)] == [2.5005] * 3
    assert (hist.min, hist.max) == (2.5005, 2.5005)

"""Per-minute values of every metric received, for the console's metrics explorer.

One series per (service, metric, instance, attribute set), bounded (the least
recently updated goes first).  Each minute keeps what its kind can be charted by:

- a sum: the increase in that minute (cumulative points are differenced per
  series; a new start time or a lower value is a restarted process), charted as
  a rate per second;
- a gauge: the minute's last value;
- a histogram: the minute's calls as a :class:`Histogram` (percentiles);
- an exponential histogram or a summary: the minute's count and sum.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from otel_monitor import semconv

MINUTE_NS = 60_000_000_000
_DELTA = 1  # AggregationTemporality.DELTA in OTLP
SeriesKey = tuple[str, str, str, tuple[tuple[str, Any], ...]]


def _hashable(value: Any) -> Any:
    return value if isinstance(value, (str, int, float, bool)) or value is None else repr(value)


@dataclass
class Series:
    """One attribute set of one metric of one instance."""

    kind: str
    unit: str
    attributes: dict[str, Any]
    # minute -> increase (sum), last value (gauge), Histogram (histogram) or [count, sum]
    minutes: dict[int, Any] = field(default_factory=dict)
    last: tuple[int, Any] | None = None  # (start time, cumulative value) of the previous point


class MetricSeries:
    """Every metric's per-minute values; thread safety is the store's lock."""

    def __init__(self, max_series: int, evicted: dict[str, int], histogram: Callable[[], Any]) -> None:
        # The store's Histogram class, passed in: this module is below the store.
        self.histogram = histogram
        self.max_series = max_series
        self.evicted = evicted
        self.series: OrderedDict[SeriesKey, Series] = OrderedDict()

    def add(self, service: str, point: dict[str, Any], started_ns: int) -> None:
        kind = point["type"]
        instance = str(point["resource"].get(semconv.SERVICE_INSTANCE_ID, ""))
        attrs = point["attributes"]
        key = (service, point["name"], instance, tuple(sorted((k, _hashable(v)) for k, v in attrs.items())))
        series = self.series.get(key)
        if series is None or series.kind != kind:
            series = self.series[key] = Series(kind, point["unit"], dict(attrs))
            if len(self.series) > self.max_series:
                self.series.popitem(last=False)
                self.evicted["metric_series"] += 1
        else:
            self.series.move_to_end(key)
        minute = point["time_unix_nano"] // MINUTE_NS
        if kind == "gauge":
            series.minutes[minute] = float(point["value"])
            return
        if kind == "sum":
            increase = self._increase(series, point, float(point["value"]), started_ns)
            if increase is not None:
                series.minutes[minute] = series.minutes.get(minute, 0.0) + increase
            return
        if kind == "histogram":
            buckets = list(point["bucket_counts"])
            bounds = tuple(point["explicit_bounds"])
            value = (point["count"], point["sum"], buckets, bounds)
            delta = self._increase(series, point, value, started_ns)
            if delta is None or delta[0] <= 0:
                return
            hist = series.minutes.get(minute)
            if hist is None:
                hist = series.minutes[minute] = self.histogram()
            # Extremes are exact only for a delta point or a series' first point.
            exact = delta is value
            hist.add(
                delta[3],
                delta[2],
                delta[1],
                delta[0],
                None,
                point.get("min") if exact else None,
                point.get("max") if exact else None,
            )
            return
        count_sum: tuple[Any, ...] = (point["count"], point["sum"], [], ())
        delta = self._increase(series, point, count_sum, started_ns)
        if delta is not None:
            entry = series.minutes.setdefault(minute, [0, 0.0])
            entry[0] += delta[0]
            entry[1] += delta[1]

    @staticmethod
    def _increase(series: Series, point: dict[str, Any], value: Any, started_ns: int) -> Any:
        """The increase since the series' previous point; None when the point is only a baseline."""
        if point.get("temporality") == _DELTA:
            return value
        start = point["start_time_unix_nano"]
        last, series.last = series.last, (start, value)
        total = value[0] if isinstance(value, tuple) else value
        if last is None:
            # A series begun before the console started: only later increases count.
            return value if start >= started_ns - MINUTE_NS else None
        last_start, last_value = last
        previous = last_value[0] if isinstance(value, tuple) else last_value
        if start != last_start or total < previous:
            return value  # a restarted process counts from zero again
        if not isinstance(value, tuple):
            return value - last_value
        if value[3] != last_value[3] or len(value[2]) != len(last_value[2]):
            return value
        return (
            value[0] - last_value[0],
            value[1] - last_value[1],
            [a - b for a, b in zip(value[2], last_value[2], strict=True)],
            value[3],
        )

    def trim(self, oldest_minute: int) -> None:
        for key in list(self.series):
            minutes = self.series[key].minutes
            for m in [m for m in minutes if m < oldest_minute]:
                del minutes[m]

"""How long a sender may stay silent: a number of its own metric export intervals.

The console learns each instance's export cadence from the metric points it
sends: a periodic metric reader stamps every point of one collection with the
collection's time, so the gaps between an instance's distinct collection times
are its export interval (``OTEL_METRIC_EXPORT_INTERVAL``, 60 s by default in
every SDK).  An instance silent for longer than ``intervals`` of its own
intervals is stale; a service is stale when none of its instances is live.
Until an instance's interval is known (fewer than three exports seen, or a
sender of spans or logs only) the console's fixed stale-after applies.
"""

from __future__ import annotations

from collections import OrderedDict, deque
from collections.abc import Iterable, Mapping
from statistics import median_high
from typing import Any

from otel_monitor import semconv

# The default number of export intervals a sender may miss.
DEFAULT_INTERVALS = 3.0
# Gaps kept per instance; their median is the interval, so one early flush
# (a shutdown, a test's force_flush) does not shorten it.
_GAPS_KEPT = 8
# Gaps needed before the interval is trusted.
_GAPS_NEEDED = 2
# Collection times closer than this belong to one export (a batch split into several requests).
_SAME_EXPORT_NS = 100_000_000


class ExportCadence:
    """Each (service, service.instance.id)'s metric export interval, bounded to ``max_instances``."""

    def __init__(self, intervals: float = DEFAULT_INTERVALS, max_instances: int = 10_000) -> None:
        self.intervals = intervals  # 0: every sender gets the fixed stale-after
        self.max_instances = max_instances
        self._last: OrderedDict[tuple[str, str], int] = OrderedDict()
        self._gaps: dict[tuple[str, str], deque[int]] = {}

    def note_batch(self, points: Iterable[Mapping[str, Any]]) -> None:
        """One OTLP metrics request: the newest collection time of each instance in it."""
        newest: dict[tuple[str, str], int] = {}
        for point in points:
            resource = point["resource"]
            key = (
                str(resource.get(semconv.SERVICE_NAME, "unknown_service")),
                str(resource.get(semconv.SERVICE_INSTANCE_ID, "")),
            )
            t = point["time_unix_nano"]
            if t > newest.get(key, 0):
                newest[key] = t
        for key, t in newest.items():
            self.note(key, t)

    def note(self, key: tuple[str, str], t: int) -> None:
        """A collection of ``key`` at ``t`` (ns); older or same-export times are ignored."""
        last = self._last.get(key)
        if last is not None and t - last < _SAME_EXPORT_NS:
            return
        if last is not None:
            gaps = self._gaps.get(key)
            if gaps is None:
                gaps = self._gaps[key] = deque(maxlen=_GAPS_KEPT)
            gaps.append(t - last)
        self._last[key] = t
        self._last.move_to_end(key)
        if len(self._last) > self.max_instances:
            gone, _ = self._last.popitem(last=False)
            self._gaps.pop(gone, None)

    def forget(self, key: tuple[str, str]) -> None:
        """Drop an instance the store no longer keeps: heard from again, it is learnt afresh."""
        self._last.pop(key, None)
        self._gaps.pop(key, None)

    def interval_ns(self, service: str, instance: str) -> int | None:
        """The instance's export interval, or None while unknown."""
        gaps = self._gaps.get((service, instance))
        if gaps is None or len(gaps) < _GAPS_NEEDED:
            return None
        return int(median_high(gaps))

    def stale_after_ns(self, service: str, instance: str, fallback_ns: int) -> int:
        """How long the instance may stay silent: ``intervals`` of its interval, else ``fallback_ns``."""
        if self.intervals <= 0:
            return fallback_ns
        interval = self.interval_ns(service, instance)
        return fallback_ns if interval is None else int(self.intervals * interval)


def instance_stale(store: Any, service: str, instance: str, last_seen_ns: int, now_ns: int) -> bool:
    """Whether the instance has been silent for longer than its stale-after."""
    return now_ns - last_seen_ns > store.export_cadence.stale_after_ns(service, instance, store.stale_after_ns)


def service_liveness(store: Any, service: str, now_ns: int) -> tuple[bool, int]:
    """``(stale, stale_after_ns)`` of a service: stale when none of its instances is live.

    Its stale-after is that of its most recently heard-from instance (the
    fixed one when the store keeps no instance of it).  Call under the store's lock.
    """
    last_seen = store.services.get(service)
    rollups, kept = store.rollups.get(service), store.instances
    # The service's own instances, from its index (not a scan of every service's).
    instances = [(i, kept[(service, i)]) for i in (rollups.instances if rollups else ()) if (service, i) in kept]
    if not instances:
        if last_seen is None:
            return True, store.stale_after_ns
        return now_ns - last_seen > store.stale_after_ns, store.stale_after_ns
    newest, _ = max(instances, key=lambda it: it[1])
    threshold = store.export_cadence.stale_after_ns(service, newest, store.stale_after_ns)
    stale = all(instance_stale(store, service, i, t, now_ns) for i, t in instances)
    return stale, threshold

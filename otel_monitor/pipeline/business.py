"""Business KPIs on OpenTelemetry metrics: amounts with a currency, counts, distinct users.

::

    from otel_monitor import business

    business.amount("revenue", 49.90, currency="EUR")   # an order: count, sum and distribution
    business.amount("refund", 12.00, currency="EUR")
    business.count("cart_started")                       # a business event
    business.user("visitor", user_id=user.id)            # a distinct user today

Three instruments of the telemetry contract carry them, each point labelled
``monitor.kpi`` with the KPI name:

- ``monitor.business.amount`` (histogram, ``monitor.business.currency``): its
  sum is revenue, its count the number of orders, sum / count the average
  order value, and its buckets the distribution;
- ``monitor.business.events`` (counter): counts, whose ratios are rates
  (cart abandonment = 1 - checkouts / carts started), declared in the
  config file's ``kpis:`` section with objectives (:mod:`otel_monitor.semantics.kpis`);
- ``monitor.business.users`` (counter, ``monitor.business.returning``): one the
  first time a user is seen on a UTC day, so its increase over a day is the
  daily active users and the returning share the return-visit rate.

Distinct users stay exact and pseudonymous.  The raw id never leaves the
process: it is HMAC'ed with ``OTEL_MONITOR_USER_ID_KEY`` as journey ids are.
With ``OTEL_MONITOR_JOURNEY_STORE`` the first sighting of a pseudonymous id per
KPI and day is an insert into the journey store's table, whose primary key lets
exactly one process win (as for journey first times): the count is exact
across processes and restarts, and a user seen on an earlier day is
``returning``.  Without a store, each process keeps the ids it saw today
(bounded, :data:`MAX_USERS_PER_DAY` per KPI): exact for one process, an
overcount when several processes see the same user.

KPI names are bounded metric attributes: lowercase words (``[a-z][a-z0-9_]*``,
64 characters at most); currencies are ISO 4217 codes.  A bad name, amount or
currency is logged once and dropped: like every helper of ours, these never
raise into the app.
"""

from __future__ import annotations

import logging
import math
import re
import threading
import time
from collections import OrderedDict
from typing import Any

from otel_monitor import runtime, semconv
from otel_monitor.pipeline import instruments as metrics
from otel_monitor.semantics.journeys import pseudonymize

_log = logging.getLogger("otel_monitor")
_NAME = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
_CURRENCY = re.compile(r"^[A-Z]{3}$")
# Ids remembered per KPI and day without a journey store, and first sightings
# remembered with one (to spare the database a refused insert per call).
MAX_USERS_PER_DAY = 100_000
_DAY = 86_400

_reported: set[str] = set()
_labels: dict[tuple[str, ...], dict[str, Any]] = {}


def _problem(message: str) -> None:
    """Log a misuse once per message: a loop of bad calls must not flood the log."""
    if message not in _reported and len(_reported) < 1000:
        _reported.add(message)
        _log.error("otel-monitor business: %s; the value is dropped", message)


def _check_name(kind: str, name: Any) -> bool:
    if isinstance(name, str) and _NAME.match(name):
        return True
    _problem(f"{kind}({name!r}): a KPI name is lowercase letters, digits and _ (64 at most)")
    return False


def _attributes(*pairs: tuple[str, Any]) -> tuple[tuple[str, ...], dict[str, Any]]:
    key = tuple(str(v) for _, v in pairs)
    labels = _labels.get(key)
    if labels is None:
        labels = dict(pairs)
        if len(_labels) < 10_000:
            _labels[key] = labels
    return key, labels


def amount(kpi: str, value: float, *, currency: str) -> None:
    """Record one amount of ``kpi`` (an order's total, a refund) in ``currency`` units (ISO 4217 code)."""
    from otel_monitor.guard import guarded

    with guarded("business.amount"):
        if not _check_name("amount", kpi):
            return
        if not isinstance(currency, str) or not _CURRENCY.match(currency):
            _problem(f"amount({kpi!r}, currency={currency!r}): a currency is an ISO 4217 code such as EUR")
            return
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
            _problem(
                f"amount({kpi!r}, {value!r}): an amount is a finite number, 0 or more (record refunds as their own KPI)"
            )
            return
        key, labels = _attributes((semconv.MONITOR_KPI, kpi), (semconv.MONITOR_BUSINESS_CURRENCY, currency))
        metrics.instruments_in_use().business_amounts.record(float(value), labels, key=("amount", *key))


def count(kpi: str, n: int = 1) -> None:
    """Count ``n`` business events of ``kpi`` (a cart started, an order placed, a sign-up)."""
    from otel_monitor.guard import guarded

    with guarded("business.count"):
        if not _check_name("count", kpi):
            return
        if isinstance(n, bool) or not isinstance(n, int) or n < 0:
            _problem(f"count({kpi!r}, {n!r}): a count is a whole number, 0 or more")
            return
        key, labels = _attributes(
            (semconv.MONITOR_KPI, kpi),
        )
        metrics.instruments_in_use().business_events.add(n, labels, key=("count", *key))


class DistinctUsers:
    """Decides whether a pseudonymous user is seen for the first time today, and whether they returned."""

    def __init__(self, store: Any = None) -> None:
        self.store = store
        self._lock = threading.Lock()
        # (kpi, day) -> ids seen that day (newest last); without a store, also ids seen on earlier days.
        self._today: dict[tuple[str, int], OrderedDict[str, None]] = {}
        self._ever: dict[str, OrderedDict[str, None]] = {}

    def first_today(self, kpi: str, pseudo_id: str, now: float) -> tuple[bool, bool]:
        """``(first time today, seen on an earlier day)``."""
        day = int(now // _DAY)
        with self._lock:
            seen = self._today.setdefault((kpi, day), OrderedDict())
            if pseudo_id in seen:
                return False, False
            for old in [k for k in self._today if k[0] == kpi and k[1] < day]:
                del self._today[old]  # yesterday's ids are no longer needed to decide today's
            seen[pseudo_id] = None
            if len(seen) > MAX_USERS_PER_DAY:
                seen.popitem(last=False)
        if self.store is not None:
            # The primary key (pseudo id, journey, step) makes exactly one insert win, across processes.
            first = self.store.record(pseudo_id, f"kpi.{kpi}", time.strftime("day %Y-%m-%d", time.gmtime(now)))
            if not first:
                return False, False
            return True, not self.store.record(pseudo_id, f"kpi.{kpi}", "first seen")
        with self._lock:
            ever = self._ever.setdefault(kpi, OrderedDict())
            returning = pseudo_id in ever
            ever[pseudo_id] = None
            ever.move_to_end(pseudo_id)
            if len(ever) > MAX_USERS_PER_DAY:
                ever.popitem(last=False)
        return True, returning


def distinct_users() -> DistinctUsers:
    """The one tracker, on the journey store of the runtime's journey recorder (if any)."""
    recorder = metrics.journey_recorder()
    state = runtime.current()
    with state.lock:
        tracker = state.distinct_users
        if tracker is None or tracker.store is not recorder.store:
            tracker = state.distinct_users = DistinctUsers(recorder.store)
        return tracker


def user(
    kpi: str, *, user_id: str | int | None = None, pseudo_id: str | None = None, now: float | None = None
) -> bool | None:
    """Count ``user_id`` once per UTC day for ``kpi`` (daily active users, visitors, buyers).

    Returns True when it was the user's first time today (counted), False when
    already counted, None when it could not be decided (no user id, or no
    ``OTEL_MONITOR_USER_ID_KEY`` to pseudonymise it).  Never raises.
    """
    from otel_monitor.guard import guarded, internal_error

    with guarded("business.user"):
        if not _check_name("user", kpi):
            return None
        if pseudo_id is None:
            key = metrics.journey_recorder().key
            if user_id is None:
                return None
            if not key:
                _problem(f"user({kpi!r}, user_id=...) needs OTEL_MONITOR_USER_ID_KEY to pseudonymise user ids")
                return None
            pseudo_id = pseudonymize(user_id, key)
        try:
            first, returning = distinct_users().first_today(kpi, pseudo_id, time.time() if now is None else now)
        except Exception as exc:  # noqa: BLE001 - a store outage must not fail the request
            internal_error("journey store", exc)
            return None
        if first:
            key_, labels = _attributes((semconv.MONITOR_KPI, kpi), (semconv.MONITOR_BUSINESS_RETURNING, returning))
            metrics.instruments_in_use().business_users.add(1, labels, key=("user", *key_))
        return first
    return None

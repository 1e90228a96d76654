"""Business KPIs: amounts with a currency, counts and distinct users on the contract's metrics."""

from __future__ import annotations

import logging

import pytest

from otel_monitor import business, semconv
from otel_monitor.semantics.journeys import JourneyStore
from tests.support.stack import make_stack

DAY = 86_400.0
T0 = 20_000 * DAY  # midnight UTC, a fixed clock


def _points(stack, name: str) -> dict[tuple, object]:
    return {tuple(sorted(p.attributes.items())): p for p in stack.points(name)}


def test_amounts_give_revenue_orders_and_order_value(otlp_sink):
    """Three orders in EUR and a refund: the histogram's sum is the revenue, its count the orders."""
    stack = make_stack(otlp_sink, user_id_key="k")
    try:
        for total in (10.0, 25.5, 64.5):
            business.amount("revenue", total, currency="EUR")
        business.amount("refund", 25.5, currency="EUR")
        points = _points(stack, semconv.METRIC_BUSINESS_AMOUNT)
    finally:
        stack.close()
    revenue = points[((semconv.MONITOR_BUSINESS_CURRENCY, "EUR"), (semconv.MONITOR_KPI, "revenue"))]
    refund = points[((semconv.MONITOR_BUSINESS_CURRENCY, "EUR"), (semconv.MONITOR_KPI, "refund"))]
    assert (revenue.sum, revenue.count, revenue.sum / revenue.count) == (100.0, 3, pytest.approx(100 / 3))
    assert (revenue.min, revenue.max) == (10.0, 64.5)
    assert (refund.sum, refund.count) == (25.5, 1)


def test_counts_are_events_by_kpi(otlp_sink):
    """count() adds to monitor.business.events per KPI."""
    stack = make_stack(otlp_sink)
    try:
        for _ in range(4):
            business.count("cart_started")
        business.count("order_placed", 3)
        points = _points(stack, semconv.METRIC_BUSINESS_EVENTS)
    finally:
        stack.close()
    assert {k: p.value for k, p in points.items()} == {
        ((semconv.MONITOR_KPI, "cart_started"),): 4,
        ((semconv.MONITOR_KPI, "order_placed"),): 3,
    }


def test_distinct_users_are_counted_once_a_day_and_returning_told_apart(otlp_sink):
    """Users 1, 2, 1 on day 1 and 1, 3 on day 2: 2 then 2 distinct, of whom user 1 returns on day 2."""
    stack = make_stack(otlp_sink, user_id_key="k")
    try:
        results = [business.user("visitor", user_id=u, now=T0 + 60) for u in (1, 2, 1)]
        results += [business.user("visitor", user_id=u, now=T0 + DAY + 60) for u in (1, 3)]
        points = _points(stack, semconv.METRIC_BUSINESS_USERS)
    finally:
        stack.close()
    assert results == [True, True, False, True, True]
    key = semconv.MONITOR_KPI, "visitor"
    assert {k: p.value for k, p in points.items()} == {
        ((semconv.MONITOR_BUSINESS_RETURNING, False), key): 3,
        ((semconv.MONITOR_BUSINESS_RETURNING, True), key): 1,
    }


def test_distinct_users_are_exact_across_processes_through_the_journey_store(tmp_path):
    """Two processes sharing the journey store count a user seen by both once, and a later day as returning."""
    url = f"sqlite:///{tmp_path / 'j.db'}"
    one, two = business.DistinctUsers(JourneyStore(url)), business.DistinctUsers(JourneyStore(url))
    assert one.first_today("visitor", "p1", T0 + 1) == (True, False)
    assert two.first_today("visitor", "p1", T0 + 2) == (False, False)
    assert two.first_today("visitor", "p2", T0 + 3) == (True, False)
    assert one.first_today("visitor", "p1", T0 + DAY + 1) == (True, True)
    assert two.first_today("visitor", "p1", T0 + DAY + 2) == (False, False)


def test_user_ids_never_leave_raw_and_need_the_key(otlp_sink, caplog):
    """Without OTEL_MONITOR_USER_ID_KEY nothing is counted and the reason is logged once."""
    stack = make_stack(otlp_sink)
    try:
        with caplog.at_level(logging.ERROR, logger="otel_monitor"):
            assert business.user("visitor", user_id=7) is None
            assert business.user("visitor", user_id=8) is None
        assert stack.points(semconv.METRIC_BUSINESS_USERS) == []
    finally:
        stack.close()
    assert caplog.text.count("needs OTEL_MONITOR_USER_ID_KEY") == 1


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: business.amount("Revenue!", 1.0, currency="EUR"), "a KPI name is lowercase"),
        (lambda: business.amount("revenue", 1.0, currency="euro"), "ISO 4217"),
        (lambda: business.amount("revenue", float("nan"), currency="EUR"), "finite number"),
        (lambda: business.amount("revenue", -5, currency="EUR"), "finite number"),
        (lambda: business.count("orders", -1), "whole number"),
        (lambda: business.count("x" * 65), "a KPI name is lowercase"),
    ],
)
def test_bad_input_is_dropped_with_a_clear_message(otlp_sink, caplog, call, message):
    """A bad name, currency or value records nothing, raises nothing, and says why."""
    stack = make_stack(otlp_sink)
    try:
        with caplog.at_level(logging.ERROR, logger="otel_monitor"):
            call()
        assert stack.points(semconv.METRIC_BUSINESS_AMOUNT) == []
        assert stack.points(semconv.METRIC_BUSINESS_EVENTS) == []
    finally:
        stack.close()
    assert message in caplog.text


def test_funnel_counter_marks_first_times_with_a_store(otlp_sink, tmp_path):
    """With a journey store the milestone counter's first=true points count each user once per step."""
    import otel_monitor

    stack = make_stack(otlp_sink, user_id_key="k", journey_store=f"sqlite:///{tmp_path / 'j.db'}")
    try:
        for user in (1, 1, 2):
            otel_monitor.journey_milestone("first_purchase", user_id=user, journey="purchase")
        points = _points(stack, semconv.METRIC_JOURNEY_MILESTONES)
    finally:
        stack.close()
    base = (
        (semconv.MONITOR_JOURNEY_FIRST, True),
        (semconv.MONITOR_JOURNEY_NAME, "purchase"),
        (semconv.MONITOR_JOURNEY_STEP, "first_purchase"),
    )
    assert points[base].value == 2
    assert points[((semconv.MONITOR_JOURNEY_FIRST, False), *base[1:])].value == 1


def test_console_shows_the_business_kpis(tmp_path):
    """The console's service summary gives revenue, orders, order value, counts and distinct users as sent."""
    from otel_monitor.console.cli import serve
    from tests.support.console_telemetry import CONFIG, get, meter

    path = tmp_path / "otel-monitor.yaml"
    path.write_text(CONFIG)
    with serve(port=0, config_path=str(path), evaluate_every=3600) as console:
        with meter(console.url) as (m, provider):
            amounts = m.create_histogram(semconv.METRIC_BUSINESS_AMOUNT, unit="{amount}")
            events = m.create_counter(semconv.METRIC_BUSINESS_EVENTS, unit="{event}")
            users = m.create_counter(semconv.METRIC_BUSINESS_USERS, unit="{user}")
            for total in (10.0, 25.5, 64.5):
                amounts.record(total, {semconv.MONITOR_KPI: "revenue", semconv.MONITOR_BUSINESS_CURRENCY: "EUR"})
            events.add(4, {semconv.MONITOR_KPI: "cart_started"})
            events.add(1, {semconv.MONITOR_KPI: "order_placed"})
            for returning, n in ((False, 3), (True, 1)):
                users.add(n, {semconv.MONITOR_KPI: "visitor", semconv.MONITOR_BUSINESS_RETURNING: returning})
            provider.force_flush()
            amounts.record(20.0, {semconv.MONITOR_KPI: "revenue", semconv.MONITOR_BUSINESS_CURRENCY: "EUR"})
            provider.force_flush()  # cumulative: only the new order is added
        (service,) = get(f"{console.url}/api/summary?service=shop")["services"]
    assert service["business"] == {
        "amounts": [{"kpi": "revenue", "currency": "EUR", "total": 120.0, "count": 4, "average": 30.0}],
        "counts": {"cart_started": 4, "order_placed": 1},
        "users": [{"kpi": "visitor", "users": 4, "returning": 1, "return_rate": 0.25}],
    }

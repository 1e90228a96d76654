"""The console store's bound on services and instances, and its per-service indexes.

Over ``max_services`` the service heard from least recently goes, with
everything kept of it (roll-ups, checks, instances, metric list, error groups);
one heard from again starts from nothing; the services kept count exactly as
in a store that never saw the others.  The alert evaluation worked out a few
services at a time finds what the whole evaluation finds.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest

from otel_monitor import semconv
from otel_monitor.console.aggregates import Queries
from otel_monitor.console.alerts import AlertBook
from otel_monitor.console.store import Limits, Store

S = 1_000_000_000
T0 = 1_700_000_000 * S  # data time; queries pass their own "now" just after it
NOW = T0 + 30 * S


def resource(service: str, instance: str = "i-1") -> dict[str, Any]:
    return {semconv.SERVICE_NAME: service, semconv.SERVICE_INSTANCE_ID: instance}


def op_span(service: str, n: int, *, failed: bool = False, instance: str = "i-1", end: int = T0) -> dict[str, Any]:
    attrs: dict[str, Any] = {semconv.MONITOR_OPERATION: "checkout"}
    if failed:
        attrs[semconv.ERROR_TYPE] = "ValueError"
        attrs[semconv.MONITOR_ERROR_CATEGORY] = "bug"
    return {
        "resource": resource(service, instance),
        "scope": "",
        "trace_id": f"{hash((service, n)) & (2**128 - 1):032x}",
        "span_id": f"{(n + 1):016x}",
        "parent_span_id": "",
        "name": "checkout",
        "kind": 2,
        "start_time_unix_nano": end - 20_000_000,
        "end_time_unix_nano": end,
        "attributes": attrs,
        "events": [],
        "status_code": 2 if failed else 0,
        "status_message": "",
    }


def point(service: str, name: str, kind: str, **fields: Any) -> dict[str, Any]:
    return {
        "resource": resource(service, fields.pop("instance", "i-1")),
        "scope": "",
        "name": name,
        "unit": fields.pop("unit", "1"),
        "type": kind,
        "start_time_unix_nano": T0 - 60 * S,
        "time_unix_nano": fields.pop("t", T0),
        "attributes": fields.pop("attributes", {}),
        **fields,
    }


def duration(service: str, count: int, errors: int = 0) -> list[dict[str, Any]]:
    ok = point(
        service,
        semconv.METRIC_OPERATION_DURATION,
        "histogram",
        unit="s",
        temporality=1,
        count=count - errors,
        sum=0.05 * (count - errors),
        bucket_counts=[count - errors, 0],
        explicit_bounds=[0.1],
        attributes={semconv.MONITOR_OPERATION: "pay"},
    )
    if not errors:
        return [ok]
    failed = dict(ok, count=errors, sum=0.05 * errors, bucket_counts=[errors, 0])
    failed["attributes"] = {semconv.MONITOR_OPERATION: "pay", semconv.MONITOR_ERROR_CATEGORY: "bug"}
    return [ok, failed]


def health(service: str, value: float, instance: str = "i-1") -> dict[str, Any]:
    return point(
        service,
        semconv.METRIC_HEALTH_STATUS,
        "gauge",
        instance=instance,
        value=value,
        attributes={semconv.MONITOR_HEALTH_CHECK: "db", semconv.MONITOR_HEALTH_CRITICAL: True},
    )


def cache_lookups(service: str, value: float) -> dict[str, Any]:
    return point(
        service,
        semconv.METRIC_CACHE_REQUESTS,
        "sum",
        temporality=1,
        monotonic=True,
        value=value,
        attributes={semconv.MONITOR_CACHE_NAME: "prices", semconv.MONITOR_CACHE_HIT: True},
    )


def log(service: str, event: str, attrs: dict[str, Any]) -> dict[str, Any]:
    return {
        "resource": resource(service),
        "scope": "",
        "time_unix_nano": T0,
        "observed_time_unix_nano": T0,
        "severity_number": 9,
        "severity_text": "INFO",
        "body": "",
        "attributes": attrs,
        "event_name": event,
        "trace_id": "",
        "span_id": "",
        "flags": 0,
    }


def feed(store: Store, service: str, calls: int = 3) -> None:
    """Every kind of data the store keeps per service: spans, metrics, checks, logs."""
    store.add_spans([op_span(service, n, failed=n == 0) for n in range(calls)])
    store.add_metric_points([*duration(service, 10, errors=1), health(service, 0.0), cache_lookups(service, 4)])
    # Runtime usage, and a cumulative counter (its baseline is kept per series).
    memory = point(service, "process.memory.usage", "sum", value=1e8, temporality=2)
    fallbacks = point(service, semconv.METRIC_FALLBACKS, "sum", value=1.0, temporality=2, monotonic=True)
    store.add_metric_points([memory, fallbacks])
    store.add_logs(
        [
            log(
                service,
                semconv.EVENT_JOURNEY_MILESTONE,
                {
                    semconv.MONITOR_JOURNEY_NAME: "buy",
                    semconv.MONITOR_JOURNEY_STEP: "cart",
                    semconv.ENDUSER_PSEUDO_ID: f"u-{service}",
                },
            ),
            log(
                service,
                semconv.EVENT_HEALTH_CHANGE,
                {semconv.MONITOR_HEALTH_CHECK: "db", semconv.MONITOR_HEALTH_STATE: "down"},
            ),
        ]
    )


def everything_about(store: Store, service: str) -> list[str]:
    """The tables that still hold something of ``service``."""
    tables: dict[str, Any] = {
        "services": [s for s in store.services if s == service],
        "rollups": [s for s in store.rollups if s == service],
        "instances": [k for k in store.instances if k[0] == service],
        "instance_resources": [k for k in store.instance_resources if k[0] == service],
        "instance_first_seen": [k for k in store.instance_first_seen if k[0] == service],
        "instance_usage": [k for k in store.instance_usage if k[0] == service],
        "metric_catalog": [k for k in store.metric_catalog if k[0] == service],
        "metric_series": [k for k in store.metric_series.series if k[0] == service],
        "baselines": [k for k in store._last if k[0] == service],
        "errors": [k for k in store.errors if k[0] == service],
        "incidents": [i for i in store.incidents if i["service"] == service],
        "monitored": [s for s in store.monitored_services if s == service],
        "export_cadence": [k for k in store.export_cadence._last if k[0] == service],
    }
    return [name for name, found in tables.items() if found]


def test_over_the_limit_the_service_heard_from_least_recently_goes() -> None:
    """a, b, c kept; a heard from again; d comes: b goes, counted."""
    store = Store(limits=Limits(max_services=3))
    for service in ("a", "b", "c"):
        feed(store, service)
    store.add_spans([op_span("a", 10)])
    feed(store, "d")
    assert Queries(store, NOW).services() == ["a", "c", "d"]
    assert list(store.rollups) == ["c", "a", "d"]
    assert store.evicted["services"] == 1


def test_an_evicted_service_leaves_nothing_behind() -> None:
    """Its roll-ups, checks, instances, metric list, series, baselines, error groups and incidents go."""
    store = Store(limits=Limits(max_services=1))
    feed(store, "gone")
    assert len(everything_about(store, "gone")) == 13  # the helper sees every table
    feed(store, "kept")
    assert everything_about(store, "gone") == []
    q = Queries(store, NOW)
    assert {r["service"] for r in q.operations(None, "15m")} == {"kept"}
    assert {c["service"] for c in q.health(None, "15m")} == {"kept"}
    assert [s["service"] for s in q.summary(None, "15m")] == ["kept"]
    assert [e["service"] for e in q.errors(None, "15m")] == ["kept"]
    assert q.funnels(None, "15m", {})[0]["steps"][0]["users"] == 1


def test_a_service_heard_from_again_starts_from_nothing() -> None:
    """Evicted with 10 metric calls and 3 span calls, back with 4: it shows 4."""
    store = Store(limits=Limits(max_services=1))
    feed(store, "a")
    feed(store, "b")
    store.add_metric_points(duration("a", 4))
    rows = Queries(store, NOW).operations("a", "15m")
    assert [(r["operation"], r["calls"], r["errors"]) for r in rows] == [("pay", 4, 0)]
    assert Queries(store, NOW).health("a", "15m") == []
    assert everything_about(store, "b") == []


def test_the_services_kept_count_as_if_the_others_never_came() -> None:
    """Every figure of the kept services equals a store fed only their data."""
    limited = Store(limits=Limits(max_services=5))
    alone = Store()
    for n in range(40):
        feed(limited, f"churn-{n}")
    for n in range(5):
        feed(limited, f"kept-{n}", calls=n + 2)
        feed(alone, f"kept-{n}", calls=n + 2)
    assert limited.evicted["services"] == 40
    a, b = Queries(limited, NOW), Queries(alone, NOW)
    assert a.services() == b.services()
    assert a.operations(None, "15m") == b.operations(None, "15m")
    assert a.summary(None, "15m") == b.summary(None, "15m")
    assert a.health(None, "15m") == b.health(None, "15m")
    assert a.errors(None, "15m") == b.errors(None, "15m")
    assert a.metrics(None, "15m") == b.metrics(None, "15m")


def test_the_limit_holds_after_every_batch() -> None:
    """One batch naming 50 new services keeps the 10 last of them."""
    store = Store(limits=Limits(max_services=10))
    store.add_spans([op_span(f"s-{n:02}", n) for n in range(50)])
    assert len(store.services) == len(store.rollups) == 10
    assert sorted(store.services) == [f"s-{n:02}" for n in range(40, 50)]
    assert store.evicted["services"] == 40
    assert len(store.instances) == 10


def test_an_evicted_instance_takes_its_check_state_and_usage() -> None:
    """Over ``max_instances``, the oldest instance goes: its check value no longer decides the check."""
    store = Store(limits=Limits(max_instances=2))
    memory = point("svc", "process.memory.usage", "sum", instance="i-1", value=1e8, temporality=2)
    store.add_metric_points([health("svc", 0.0, "i-1"), memory])
    assert ("svc", "i-1") in store.instance_usage
    store.add_metric_points([health("svc", 1.0, "i-2"), health("svc", 1.0, "i-3")])
    q = Queries(store, NOW)
    assert sorted(i["instance"] for i in q.instances("svc")) == ["i-2", "i-3"]
    (check,) = q.health("svc", "15m")
    assert (check["state"], check["instances"]) == ("up", 2)
    assert ("svc", "i-1") not in store.instance_usage
    assert store.evicted["instances"] == 1


def test_alerts_worked_out_a_few_services_at_a_time_match_the_whole() -> None:
    """The stepwise evaluation (yielding after every step) finds the same rule states."""
    store = Store()
    for n in range(45):
        store.add_metric_points(duration(f"svc-{n:02}", 20, errors=10 if n % 3 == 0 else 0))
        store.add_metric_points([health(f"svc-{n:02}", 0.0 if n % 5 == 0 else 1.0)])
    whole, stepwise = AlertBook(store), AlertBook(store)
    whole.evaluate(NOW)
    asyncio.run(stepwise.evaluate_in_steps(NOW, budget_s=0.0))
    assert stepwise.rules.keys() == whole.rules.keys()
    assert len({s.service for s in whole.rules.values()}) == 15 + 9 - 3  # failing ops, down checks, both


def limits_from(argv: list[str], environ: dict[str, str]) -> Limits:
    import argparse

    from otel_monitor.console.cli import add_arguments, console_limits

    parser = argparse.ArgumentParser()
    add_arguments(parser)
    return console_limits(parser.parse_args(argv), environ)


def test_the_limits_come_from_the_flag_else_the_variable_else_the_default() -> None:
    """--max-services/--max-instances win over OTEL_MONITOR_CONSOLE_MAX_*, which win over 10,000."""
    assert (limits_from([], {}).max_services, limits_from([], {}).max_instances) == (10_000, 10_000)
    environ = {"OTEL_MONITOR_CONSOLE_MAX_SERVICES": "50", "OTEL_MONITOR_CONSOLE_MAX_INSTANCES": "70"}
    assert (limits_from([], environ).max_services, limits_from([], environ).max_instances) == (50, 70)
    flags = limits_from(["--max-services", "7", "--max-instances", "9"], environ)
    assert (flags.max_services, flags.max_instances) == (7, 9)


def test_a_bad_limit_variable_is_named_and_the_default_used(caplog: pytest.LogCaptureFixture) -> None:
    """OTEL_MONITOR_CONSOLE_MAX_SERVICES=0: one warning naming it, and 10,000."""
    with caplog.at_level(logging.WARNING, logger="otel_monitor"):
        limits = limits_from([], {"OTEL_MONITOR_CONSOLE_MAX_SERVICES": "0"})
    assert limits.max_services == 10_000
    assert any("OTEL_MONITOR_CONSOLE_MAX_SERVICES" in r.getMessage() for r in caplog.records)


def test_a_bad_limit_flag_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    """--max-services 0 stops argument parsing with the reason."""
    with pytest.raises(SystemExit):
        limits_from(["--max-services", "0"], {})
    assert "--max-services" in capsys.readouterr().err


def test_a_thousand_alerts_at_once_are_not_a_thousand_log_lines(caplog: pytest.LogCaptureFixture) -> None:
    """Fifty changes are logged one by one, the rest counted in one line."""
    store = Store()
    store.add_metric_points([p for n in range(100) for p in duration(f"svc-{n:03}", 20, errors=10)])
    with caplog.at_level(logging.INFO, logger="otel_monitor.console.alerts"):
        AlertBook(store).evaluate(NOW)
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 51
    assert lines[-1] == "otel-monitor console: and 250 more alert changes (listed on the alerts page)"


def test_evictions_and_the_limits_show_in_the_services_endpoint() -> None:
    """/api/services (the console's own counters, shown in its footer) counts the services evicted."""
    from starlette.testclient import TestClient

    from otel_monitor.console.app import Console, create_app

    console = Console(limits=Limits(max_services=2))
    for service in ("a", "b", "c"):
        feed(console.store, service)
    answer = TestClient(create_app(console), base_url="http://127.0.0.1").get("/api/services").json()
    assert answer["services"] == ["b", "c"]
    assert answer["evicted"]["services"] == 1
    assert (answer["limits"]["max_services"], answer["limits"]["max_instances"]) == (2, 10_000)

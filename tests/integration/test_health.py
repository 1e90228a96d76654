"""Health registry: check states against real dependencies, the background runner, telemetry over OTLP."""

from __future__ import annotations

import asyncio
import os
import time

import pytest
from sqlalchemy import create_engine

from otel_monitor import semconv
from otel_monitor.health.checks import disk_check, http_check, memory_check, redis_check, sqlalchemy_check
from otel_monitor.health.registry import CheckOutcome, HealthCheck, HealthRegistry
from tests.support.health_support import Dependency


def states(registry: HealthRegistry) -> dict[str, str]:
    return {c.name: c.state for c in registry.report().checks}


@pytest.fixture
def dependency():
    with Dependency() as dep:
        yield dep


def test_sqlite_check_up(tmp_path):
    """SELECT 1 on a real SQLite file database is up."""
    engine = create_engine(f"sqlite:///{tmp_path / 'shop.db'}")
    registry = HealthRegistry([sqlalchemy_check(engine)], interval=60)
    report = registry.run_once()
    assert states(registry) == {"database": "up"}
    assert report.status == "healthy" and report.http_status == 200


def test_sqlite_unreachable_is_down_with_reason(tmp_path):
    """A database that cannot be opened is down, and the detail names the driver's error."""
    engine = create_engine(f"sqlite:///{tmp_path / 'missing' / 'shop.db'}")
    registry = HealthRegistry([sqlalchemy_check(engine)], interval=60)
    report = registry.run_once()
    (status,) = report.checks
    assert status.state == "down" and "OperationalError" in status.detail
    assert report.status == "unhealthy" and report.http_status == 503


def test_http_dependency_moves_up_degraded_down_and_back(dependency):
    """A local HTTP dependency goes up, degraded when slow, down on 500, and up again."""
    registry = HealthRegistry([http_check(dependency.url, name="payments", degraded_after=0.1, timeout=2)], interval=60)
    seen = []
    for mode in ("ok", "slow", "fail", "ok"):
        dependency.mode = mode
        seen.append(registry.run_once().checks[0].state)
    assert seen == ["up", "degraded", "down", "up"]
    assert registry.report().checks[0].detail == "HTTP 200"


def test_http_failure_detail_names_status(dependency):
    """A 500 answer is down with the status code in the detail."""
    dependency.mode = "fail"
    (status,) = HealthRegistry([http_check(dependency.url, name="payments")], interval=60).run_once().checks
    assert (status.state, status.detail) == ("down", "HTTP 500 Internal Server Error")


def test_stopped_http_dependency_is_down(dependency):
    """A dependency that no longer listens is down with a connection error."""
    check = http_check(dependency.url, name="payments")
    dependency.__exit__()
    (status,) = HealthRegistry([check], interval=60).run_once().checks
    assert status.state == "down" and "ConnectionRefusedError" in status.detail


def test_hanging_dependency_is_down_by_timeout_and_recovers(dependency):
    """An HTTP dependency that hangs is down after the check's timeout, and up once it answers again."""
    registry = HealthRegistry([http_check(dependency.url, name="payments", timeout=0.3)], interval=60)
    dependency.mode = "hang"
    (status,) = registry.run_once().checks
    assert status.state == "down" and status.detail in ("timed out after 0.3s", "TimeoutError: timed out")
    dependency.mode = "ok"
    dependency.release.set()
    # The timed-out probe thread ends once the dependency lets go; until then the check stays down.
    deadline = time.monotonic() + 10
    while (state := registry.run_once().checks[0].state) != "up" and time.monotonic() < deadline:
        time.sleep(0.05)
    assert state == "up"


def test_hung_sync_check_is_not_started_again():
    """While a sync check is still stuck, later runs report it down without starting another thread."""
    import threading

    unblock, calls = threading.Event(), []

    def stuck() -> None:
        calls.append(1)
        unblock.wait(30)

    registry = HealthRegistry([HealthCheck("legacy", stuck, timeout=0.2)], interval=60)
    assert registry.run_once().checks[0].detail == "timed out after 0.2s"
    assert registry.run_once().checks[0].detail == "still hanging since an earlier run (timeout 0.2s)"
    assert len(calls) == 1
    unblock.set()
    assert any(registry.run_once().checks[0].state == "up" for _ in range(20))


def test_user_checks_sync_and_async():
    """User checks may be sync or async and return None, a bool, a state or CheckOutcome, or raise."""
    registry = HealthRegistry(interval=60)

    @registry.check(critical=False)
    def flag_off() -> bool:
        return False

    @registry.check()
    async def queue() -> CheckOutcome:
        await asyncio.sleep(0)
        return CheckOutcome("degraded", "backlog 600")

    @registry.check(critical=False)
    async def broken() -> None:
        raise ConnectionError("no route to host")

    registry.add(lambda: None, name="plain")
    registry.add(lambda: 42, name="bad_return", critical=False)
    report = registry.run_once()
    by_name = {c.name: c for c in report.checks}
    assert {n: c.state for n, c in by_name.items()} == {
        "flag_off": "down",
        "queue": "degraded",
        "broken": "down",
        "plain": "up",
        "bad_return": "down",
    }
    assert by_name["queue"].detail == "backlog 600"
    assert by_name["broken"].detail == "ConnectionError: no route to host"
    assert "must return None, a bool" in by_name["bad_return"].detail
    assert report.status == "degraded" and report.http_status == 200


def test_async_check_timeout_is_down():
    """An async check that does not finish within its timeout is down."""

    async def slow() -> None:
        await asyncio.sleep(5)

    (status,) = HealthRegistry([HealthCheck("slow", slow, timeout=0.2)], interval=60).run_once().checks
    assert (status.state, status.detail) == ("down", "timed out after 0.2s")


def test_background_runner_tracks_changes(dependency):
    """Started, the registry re-runs its checks on its own and the cache follows the dependency."""
    registry = HealthRegistry([http_check(dependency.url, name="payments")], interval=0.1)
    registry.start()
    try:
        assert registry.wait_for(lambda r: r.checks[0].state == "up")
        first_change = registry.report().checks[0].changed_at
        dependency.mode = "fail"
        assert registry.wait_for(lambda r: r.checks[0].state == "down")
        dependency.mode = "ok"
        assert registry.wait_for(lambda r: r.checks[0].state == "up")
        assert registry.report().checks[0].changed_at > first_change
    finally:
        registry.stop()


def test_pending_critical_check_is_starting():
    """Before a critical check's first result the service reports starting with 503."""
    registry = HealthRegistry([HealthCheck("database", lambda: None)], interval=60)
    report = registry.report()
    assert (report.status, report.http_status, report.checks[0].state) == ("starting", 503, "pending")


def test_duplicate_check_name_rejected():
    """Two checks with one name is an error naming it."""
    registry = HealthRegistry([disk_check("/")], interval=60)
    with pytest.raises(ValueError, match="'disk' is already registered"):
        registry.add(disk_check("/tmp"))


def test_disk_thresholds(tmp_path):
    """Free disk below min_free_ratio is degraded, below down_free_ratio down."""
    registry = HealthRegistry(
        [
            disk_check(str(tmp_path), name="roomy", min_free_ratio=0.0, down_free_ratio=0.0),
            disk_check(str(tmp_path), name="tight", min_free_ratio=1.0, down_free_ratio=0.0),
            disk_check(str(tmp_path), name="full", min_free_ratio=1.0, down_free_ratio=1.0),
        ],
        interval=60,
    )
    registry.run_once()
    assert states(registry) == {"roomy": "up", "tight": "degraded", "full": "down"}


def test_memory_thresholds():
    """Process RSS against a limit: up well below, degraded near, down at the limit."""
    import psutil

    rss = psutil.Process(os.getpid()).memory_info().rss
    registry = HealthRegistry(
        [
            memory_check(name="plenty", limit_bytes=rss * 100),
            memory_check(name="near", limit_bytes=int(rss * 1.1), degraded_ratio=0.5, down_ratio=2.0),
            memory_check(name="over", limit_bytes=rss // 2),
        ],
        interval=60,
    )
    registry.run_once()
    assert states(registry) == {"plenty": "up", "near": "degraded", "over": "down"}


def test_redis_check_down_when_nothing_listens():
    """A Redis client whose server is not there is down (connection refused)."""
    redis = pytest.importorskip("redis", reason='pip install "otel-monitor[redis]"')
    import socket

    with socket.socket() as sock:  # a port with nothing listening
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    client = redis.Redis(host="127.0.0.1", port=port, socket_connect_timeout=0.5, retry=Retry(NoBackoff(), 0))
    (status,) = HealthRegistry([redis_check(client)], interval=60).run_once().checks
    assert status.state == "down" and "ConnectionError" in status.detail


def test_incident_events_and_metrics_arrive_over_otlp(otlp_sink, dependency):
    """State changes are monitor.health.change events and the status/duration metrics reach an OTLP receiver."""
    from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
    from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
    from opentelemetry.sdk._logs import LoggerProvider
    from opentelemetry.sdk._logs.export import BatchLogRecordProcessor
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader

    logger_provider = LoggerProvider()
    logger_provider.add_log_record_processor(
        BatchLogRecordProcessor(OTLPLogExporter(endpoint=f"{otlp_sink.endpoint}/v1/logs"), schedule_delay_millis=100)
    )
    meter_provider = MeterProvider(
        metric_readers=[
            PeriodicExportingMetricReader(
                OTLPMetricExporter(endpoint=f"{otlp_sink.endpoint}/v1/metrics"), export_interval_millis=200
            )
        ]
    )
    registry = HealthRegistry(
        [http_check(dependency.url, name="payments", critical=True)],
        interval=60,
        meter_provider=meter_provider,
        logger_provider=logger_provider,
    )
    try:
        for mode in ("ok", "fail"):
            dependency.mode = mode
            registry.run_once()
        # Predicates read s.metrics directly: wait_for holds the sink's lock (metric_points takes it too).
        assert otlp_sink.wait_for(
            lambda s: any(p["name"] == semconv.METRIC_HEALTH_STATUS and p["value"] == 0.0 for p in s.metrics)
        )
        dependency.mode = "ok"
        registry.run_once()
        assert otlp_sink.wait_for(
            lambda s: len([r for r in s.logs if r["event_name"] == semconv.EVENT_HEALTH_CHANGE]) >= 2
        )
        assert otlp_sink.wait_for(
            lambda s: [p["value"] for p in s.metrics if p["name"] == semconv.METRIC_HEALTH_STATUS][-1] == 1.0
        )
    finally:
        meter_provider.shutdown()
        logger_provider.shutdown()
    events = [r for r in otlp_sink.logs if r["event_name"] == semconv.EVENT_HEALTH_CHANGE]
    # The first result was up: no event; then the incident opens (down) and closes (up).
    assert [
        (e["attributes"][semconv.MONITOR_HEALTH_STATE], e["attributes"].get(semconv.MONITOR_HEALTH_PREVIOUS_STATE))
        for e in events
    ] == [("down", "up"), ("up", "down")]
    assert events[0]["attributes"][semconv.MONITOR_HEALTH_CHECK] == "payments"
    assert events[0]["severity_text"] == "ERROR" and "HTTP 500" in events[0]["body"]
    status_points = otlp_sink.metric_points(semconv.METRIC_HEALTH_STATUS)
    assert status_points[0]["type"] == "gauge"
    assert status_points[0]["attributes"] == {
        semconv.MONITOR_HEALTH_CHECK: "payments",
        semconv.MONITOR_HEALTH_CRITICAL: True,
    }
    durations = otlp_sink.latest_points(semconv.METRIC_HEALTH_CHECK_DURATION)
    assert durations and durations[0]["unit"] == "s" and durations[0]["count"] == 3


def test_two_registries_on_one_meter_provider_are_both_observed(tmp_path):
    """The status gauge reports the checks of every registry bound to a meter provider, not only the first's."""
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader

    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader])
    engine = create_engine(f"sqlite:///{tmp_path / 'shop.db'}")
    first = HealthRegistry([sqlalchemy_check(engine)], interval=60, meter_provider=provider)
    second = HealthRegistry(
        [disk_check(str(tmp_path), min_free_ratio=0, down_free_ratio=0)], interval=60, meter_provider=provider
    )
    first.run_once()
    second.run_once()
    data = reader.get_metrics_data()
    points = [
        point
        for rm in data.resource_metrics
        for sm in rm.scope_metrics
        for metric in sm.metrics
        if metric.name == semconv.METRIC_HEALTH_STATUS
        for point in metric.data.data_points
    ]
    assert sorted(p.attributes[semconv.MONITOR_HEALTH_CHECK] for p in points) == ["database", "disk"]
    provider.shutdown()

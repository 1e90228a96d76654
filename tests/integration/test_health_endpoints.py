"""The /health and /health/detailed endpoints on a real uvicorn server."""

from __future__ import annotations

import threading

import pytest

from tests.support.health_support import Dependency, ServedApp

fastapi = pytest.importorskip("fastapi", reason='pip install "otel-monitor[fastapi]"')

from otel_monitor.health.checks import http_check  # noqa: E402
from otel_monitor.health.endpoints import add_health_endpoints  # noqa: E402
from otel_monitor.health.registry import HealthCheck, HealthRegistry  # noqa: E402


@pytest.fixture
def dependency():
    with Dependency() as dep:
        yield dep


def serve(registry: HealthRegistry, **options) -> ServedApp:
    app = fastapi.FastAPI()

    @app.get("/items")
    async def items() -> list[str]:
        return ["hat"]

    add_health_endpoints(app, registry, **options)
    return ServedApp(app)


def test_liveness_answers_ok_even_when_dependencies_are_down():
    """/health says the process answers (200) whatever the dependencies' state."""
    registry = HealthRegistry([HealthCheck("database", lambda: False)], interval=60)
    registry.run_once()
    with serve(registry) as served:
        assert served.get("/health") == (200, {"status": "ok"})
        assert served.get("/health/detailed")[0] == 503
    registry.stop()


def test_detailed_lists_each_check_and_maps_states_to_codes(dependency):
    """/health/detailed lists state, latency and last change per check; 200 healthy/degraded, 503 critical down."""
    registry = HealthRegistry(
        [http_check(dependency.url, name="payments", critical=False), HealthCheck("database", lambda: None)],
        interval=0.1,
    )
    with serve(registry) as served:
        # A non-critical check with no result yet leaves the service healthy: wait for every check's first result.
        assert registry.wait_for(lambda r: r.status == "healthy" and all(c.state != "pending" for c in r.checks))
        code, body = served.get("/health/detailed")
        assert code == 200 and body["status"] == "healthy"
        payments = next(c for c in body["checks"] if c["name"] == "payments")
        assert payments["state"] == "up" and payments["critical"] is False
        assert payments["latency_ms"] >= 0 and payments["last_change"].endswith("Z")
        dependency.mode = "fail"
        assert registry.wait_for(lambda r: r.status == "degraded")
        code, body = served.get("/health/detailed")
        assert (code, body["status"]) == (200, "degraded")
    registry.stop()


def test_detailed_answers_at_once_while_a_dependency_hangs(dependency):
    """While a critical dependency hangs, /health/detailed still answers from the cache, then reports it down."""
    registry = HealthRegistry([http_check(dependency.url, name="payments", critical=True, timeout=1.5)], interval=0.2)
    with serve(registry) as served:
        assert registry.wait_for(lambda r: r.status == "healthy")
        dependency.mode = "hang"
        seen = []
        # The client gives up after 0.5 s, well inside the check's 1.5 s timeout: every answer is from the cache.
        while not registry.wait_for(lambda r: r.status == "unhealthy", timeout=0.05) and len(seen) < 200:
            seen.append(served.get("/health/detailed", timeout=0.5)[0])
        # The check may time out between the wait and the request: only the last answer can be that 503.
        assert seen and set(seen[:-1]) <= {200} and seen[-1] in (200, 503)
        code, body = served.get("/health/detailed", timeout=0.5)
        assert code == 503 and body["checks"][0]["detail"] in ("timed out after 1.5s", "TimeoutError: timed out")
        dependency.mode = "ok"
        dependency.release.set()
        assert registry.wait_for(lambda r: r.status == "healthy")
        assert served.get("/health/detailed", timeout=0.5)[0] == 200
    registry.stop()


def test_token_protects_the_detail_but_not_the_verdict():
    """With a token, anonymous callers get only the verdict, a wrong token 401, the right one the detail."""
    registry = HealthRegistry([HealthCheck("database", lambda: None)], interval=60)
    registry.run_once()
    with serve(registry, token="s3cret") as served:
        assert served.get("/health/detailed") == (200, {"status": "healthy"})
        assert served.get("/health/detailed", {"Authorization": "Bearer nope"})[0] == 401
        code, body = served.get("/health/detailed", {"Authorization": "Bearer s3cret"})
        assert code == 200 and body["checks"][0]["name"] == "database"
        assert served.get("/health/detailed?token=s3cret")[1]["checks"][0]["state"] == "up"
    registry.stop()


def test_endpoints_start_the_registry():
    """Adding the endpoints starts the background runner, so results appear without any request."""
    ran = threading.Event()
    registry = HealthRegistry([HealthCheck("database", ran.set)], interval=60)
    add_health_endpoints(fastapi.FastAPI(), registry)
    try:
        assert ran.wait(10)
        assert registry.wait_for(lambda r: r.status == "healthy")
    finally:
        registry.stop()


def test_custom_paths():
    """The endpoints can live at other paths (e.g. /livez and /readyz)."""
    registry = HealthRegistry([HealthCheck("database", lambda: None)], interval=60)
    registry.run_once()
    with serve(registry, path="/livez", detailed_path="/readyz") as served:
        assert served.get("/livez") == (200, {"status": "ok"})
        assert served.get("/readyz")[1]["status"] == "healthy"
        assert served.get("/health")[0] == 404
    registry.stop()

"""Health checks against a real PostgreSQL server that is stopped and started again."""

from __future__ import annotations

import pytest
from sqlalchemy import create_engine

from otel_monitor.health.checks import sqlalchemy_check
from otel_monitor.health.registry import HealthRegistry
from tests.support.postgres import postgres_server, postgres_url  # noqa: F401 (fixtures)

pytestmark = pytest.mark.postgres


def test_postgres_up_down_and_back(postgres_server):  # noqa: F811
    """The database check is up, down while the server is stopped, and up again after it restarts."""
    engine = create_engine(postgres_server.url)
    registry = HealthRegistry([sqlalchemy_check(engine, timeout=5)], interval=60)
    try:
        assert registry.run_once().checks[0].state == "up"
        postgres_server.stop()
        (status,) = registry.run_once().checks
        assert status.state == "down" and "OperationalError" in status.detail
        assert registry.report().http_status == 503
        postgres_server.start()
        assert registry.run_once().checks[0].state == "up"
        assert registry.report().http_status == 200
    finally:
        engine.dispose()


def test_postgres_url_fixture_gives_a_working_sqlalchemy_url(postgres_url):  # noqa: F811
    """The reusable fixture yields a psycopg 3 SQLAlchemy URL of a server that answers."""
    from sqlalchemy import text

    assert postgres_url.startswith("postgresql+psycopg://")
    engine = create_engine(postgres_url)
    with engine.connect() as connection:
        assert connection.execute(text("SELECT 1")).scalar() == 1
    engine.dispose()

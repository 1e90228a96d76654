"""Built-in health checks, and the ``health:`` section of the config file.

Each built-in returns a :class:`~otel_monitor.health.registry.HealthCheck`; its
function runs in the background runner of a
:class:`~otel_monitor.health.registry.HealthRegistry`, never on a request.

``health:`` in the ``OTEL_MONITOR_CONFIG`` file::

    health:
      interval: 15
      endpoints: true
      checks:
        - {name: database, type: sqlalchemy, url_env: DATABASE_URL, critical: true, timeout: 2, degraded_ms: 500}
        - {name: payments, type: http, url: http://127.0.0.1:8081/health, critical: false}
        - {name: disk, type: disk, path: /, min_free_ratio: 0.2}
"""

from __future__ import annotations

import http.client
import os
import shutil
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from otel_monitor.config.file import ConfigFile
from otel_monitor.health.registry import DEGRADED, DOWN, UP, CheckOutcome, HealthCheck


def sqlalchemy_check(
    engine: Any,
    *,
    name: str = "database",
    timeout: float = 2.0,
    degraded_after: float | None = 0.5,
    critical: bool = True,
) -> HealthCheck:
    """``SELECT 1`` on a SQLAlchemy ``Engine`` or ``AsyncEngine``."""
    from sqlalchemy import text

    if hasattr(engine, "sync_engine"):  # AsyncEngine: run on the runner's own loop

        async def ping_async() -> None:
            async with engine.connect() as connection:
                await connection.execute(text("SELECT 1"))

        return HealthCheck(name, ping_async, timeout, degraded_after, critical, kind="sqlalchemy")

    def ping() -> None:
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))

    return HealthCheck(name, ping, timeout, degraded_after, critical, kind="sqlalchemy")


def redis_check(
    client: Any,
    *,
    name: str = "cache",
    timeout: float = 1.0,
    degraded_after: float | None = 0.1,
    critical: bool = False,
) -> HealthCheck:
    """``PING`` on a ``redis.Redis`` or ``redis.asyncio.Redis`` client."""
    import inspect

    if inspect.iscoroutinefunction(client.ping):

        async def ping_async() -> bool:
            return bool(await client.ping())

        return HealthCheck(name, ping_async, timeout, degraded_after, critical, kind="redis")
    return HealthCheck(name, lambda: bool(client.ping()), timeout, degraded_after, critical, kind="redis")


def http_check(
    url: str,
    *,
    name: str | None = None,
    timeout: float = 2.0,
    degraded_after: float | None = 1.0,
    critical: bool = False,
    method: str = "GET",
    expect_status: Callable[[int], bool] | None = None,
    headers: dict[str, str] | None = None,
) -> HealthCheck:
    """An HTTP dependency: up on a 2xx/3xx answer (or ``expect_status(code)``), down otherwise."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"http_check needs an http:// or https:// URL, got {url!r}")
    accept = expect_status or (lambda code: 200 <= code < 400)
    target = urllib.parse.urlunsplit(("", "", parts.path or "/", parts.query, ""))
    connection_class = http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection

    # http.client rather than urllib or httpx: no client instrumentation wraps
    # it, so a probe every few seconds does not become a trace.
    def request() -> CheckOutcome:
        connection = connection_class(parts.hostname or "", parts.port, timeout=timeout)
        try:
            connection.request(method, target, headers=headers or {})
            response = connection.getresponse()
            response.read(65536)
        finally:
            connection.close()
        if accept(response.status):
            return CheckOutcome(UP, f"HTTP {response.status}")
        return CheckOutcome(DOWN, f"HTTP {response.status} {response.reason}".strip())

    return HealthCheck(name or parts.hostname, request, timeout, degraded_after, critical, kind="http")


def disk_check(
    path: str = "/",
    *,
    name: str = "disk",
    min_free_ratio: float = 0.2,
    down_free_ratio: float = 0.05,
    critical: bool = False,
    timeout: float = 2.0,
) -> HealthCheck:
    """Free space at ``path``: degraded below ``min_free_ratio``, down below ``down_free_ratio``."""
    if not 0 <= down_free_ratio <= min_free_ratio <= 1:
        raise ValueError("disk_check needs 0 <= down_free_ratio <= min_free_ratio <= 1")

    def free_space() -> CheckOutcome:
        usage = shutil.disk_usage(path)
        ratio = usage.free / usage.total if usage.total else 0.0
        detail = f"{ratio:.1%} free of {usage.total / 2**30:.1f} GiB at {path}"
        if ratio < down_free_ratio:
            return CheckOutcome(DOWN, detail)
        return CheckOutcome(DEGRADED if ratio < min_free_ratio else UP, detail)

    return HealthCheck(name, free_space, timeout, None, critical, kind="disk")


def _memory_limit() -> int:
    """The container's memory limit (cgroup v2 or v1) when set, else physical memory."""
    import psutil

    for path in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
        try:
            with open(path, encoding="ascii") as handle:
                raw = handle.read().strip()
        except OSError:
            continue
        if raw.isdigit() and int(raw) < psutil.virtual_memory().total:
            return int(raw)
    return int(psutil.virtual_memory().total)


def memory_check(
    *,
    name: str = "memory",
    limit_bytes: int | None = None,
    degraded_ratio: float = 0.8,
    down_ratio: float = 0.95,
    critical: bool = False,
    timeout: float = 2.0,
) -> HealthCheck:
    """This process's resident memory against ``limit_bytes`` (default: container limit or RAM)."""
    import psutil

    if not 0 < degraded_ratio <= down_ratio:
        raise ValueError("memory_check needs 0 < degraded_ratio <= down_ratio")
    process = psutil.Process(os.getpid())
    limit = limit_bytes or _memory_limit()

    def resident() -> CheckOutcome:
        ratio = process.memory_info().rss / limit
        detail = f"RSS at {ratio:.1%} of {limit / 2**20:.0f} MiB"
        if ratio >= down_ratio:
            return CheckOutcome(DOWN, detail)
        return CheckOutcome(DEGRADED if ratio >= degraded_ratio else UP, detail)

    return HealthCheck(name, resident, timeout, None, critical, kind="memory")


# --- the config file's ``health:`` section ------------------------------------------


@dataclass
class HealthConfig:
    """The validated ``health:`` section."""

    checks: list[HealthCheck] = field(default_factory=list)
    interval: float | None = None
    endpoints: bool | None = None
    path: str = "/health"
    detailed_path: str = "/health/detailed"
    problems: list[str] = field(default_factory=list)


_COMMON = {"name", "type", "critical", "timeout", "degraded_ms"}
_OPTIONS: dict[str, set[str]] = {
    "sqlalchemy": {"url", "url_env"},
    "redis": {"url", "url_env"},
    "http": {"url", "url_env"},
    "disk": {"path", "min_free_ratio", "down_free_ratio"},
    "memory": {"limit_mb", "degraded_ratio", "down_ratio"},
}
_SECTION_KEYS = {"interval", "endpoints", "path", "detailed_path", "checks"}


def _url(entry: dict[str, Any], where: str) -> str:
    if "url_env" in entry:
        value = os.environ.get(str(entry["url_env"]), "")
        if not value:
            raise ValueError(f"environment variable {entry['url_env']} (url_env) is not set")
        return value
    if not isinstance(entry.get("url"), str) or not entry["url"]:
        raise ValueError("needs 'url' or 'url_env'")
    return str(entry["url"])


def _number(entry: dict[str, Any], key: str, default: float | None) -> float | None:
    value = entry.get(key, default)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
        raise ValueError(f"{key!r} must be a non-negative number, got {value!r}")
    return float(value)


def _build_check(entry: dict[str, Any], where: str) -> HealthCheck:
    kind = entry.get("type")
    if kind not in _OPTIONS:
        raise ValueError(f"'type' must be one of {', '.join(_OPTIONS)}, got {kind!r}")
    unknown = sorted(set(entry) - _COMMON - _OPTIONS[kind])
    if unknown:
        expected = ", ".join(sorted(_COMMON | _OPTIONS[kind]))
        raise ValueError(f"unknown key {unknown[0]!r} for a {kind} check; expected {expected}")
    options: dict[str, Any] = {}
    if "name" in entry:
        options["name"] = str(entry["name"])
    if "critical" in entry:
        if not isinstance(entry["critical"], bool):
            raise ValueError(f"'critical' must be true or false, got {entry['critical']!r}")
        options["critical"] = entry["critical"]
    if "timeout" in entry:
        options["timeout"] = _number(entry, "timeout", None)
    if "degraded_ms" in entry:
        if kind in ("disk", "memory"):
            raise ValueError(f"'degraded_ms' does not apply to a {kind} check")
        degraded_ms = _number(entry, "degraded_ms", None)
        options["degraded_after"] = None if degraded_ms is None else degraded_ms / 1000
    if kind == "sqlalchemy":
        from sqlalchemy import create_engine

        # An engine of its own: the check never takes a connection from the app's pool.
        try:
            engine = create_engine(_url(entry, where))
        except ValueError:
            raise
        except Exception as exc:  # noqa: BLE001 - SQLAlchemy's ArgumentError and missing drivers
            # The message, not the URL: it may hold a password.
            raise ValueError(f"cannot create an engine for this URL: {type(exc).__name__}: {exc}") from None
        return sqlalchemy_check(engine, **options)
    if kind == "redis":
        try:
            import redis
        except ImportError:
            raise ValueError('a redis check needs the redis extra: pip install "otel-monitor[redis]"') from None
        return redis_check(redis.Redis.from_url(_url(entry, where)), **options)
    if kind == "http":
        return http_check(_url(entry, where), **options)
    if kind == "disk":
        for key in ("min_free_ratio", "down_free_ratio"):
            if key in entry:
                options[key] = _number(entry, key, None)
        return disk_check(str(entry.get("path", "/")), **options)
    if "limit_mb" in entry:
        options["limit_bytes"] = int((_number(entry, "limit_mb", None) or 0) * 2**20) or None
    for key in ("degraded_ratio", "down_ratio"):
        if key in entry:
            options[key] = _number(entry, key, None)
    return memory_check(**options)


def load_health_config(config: ConfigFile) -> HealthConfig:
    """Validate the ``health:`` section; each bad entry is a problem naming its file and line."""
    result = HealthConfig()
    section = config.section("health")
    if section is None:
        return result
    if not isinstance(section, dict):
        result.problems.append(f"{config.where('health')}: 'health' must be a mapping (interval, endpoints, checks)")
        return result
    for key in section:
        if key not in _SECTION_KEYS:
            result.problems.append(
                f"{config.where('health', key)}: unknown key {key!r} under health; "
                f"expected {', '.join(sorted(_SECTION_KEYS))}"
            )
    if "interval" in section:
        try:
            result.interval = _number(section, "interval", None)
            if not result.interval:
                raise ValueError(f"'interval' must be a positive number of seconds, got {section['interval']!r}")
        except ValueError as exc:
            result.interval = None
            result.problems.append(f"{config.where('health', 'interval')}: {exc}")
    if "endpoints" in section:
        if isinstance(section["endpoints"], bool):
            result.endpoints = section["endpoints"]
        else:
            result.problems.append(f"{config.where('health', 'endpoints')}: 'endpoints' must be true or false")
    for key in ("path", "detailed_path"):
        if key in section:
            value = section[key]
            if isinstance(value, str) and value.startswith("/"):
                setattr(result, key, value)
            else:
                result.problems.append(f"{config.where('health', key)}: {key!r} must be a URL path starting with /")
    checks = section.get("checks", [])
    if not isinstance(checks, list):
        result.problems.append(f"{config.where('health', 'checks')}: 'checks' must be a list")
        return result
    names: set[str] = set()
    for index, entry in enumerate(checks):
        where = config.where("health", "checks", index)
        if not isinstance(entry, dict):
            result.problems.append(f"{where}: each check must be a mapping with at least 'type'")
            continue
        try:
            check = _build_check(entry, where)
        except (ValueError, TypeError) as exc:
            result.problems.append(f"{where}: health check {entry.get('name', index)!r}: {exc}")
            continue
        if check.name in names:
            result.problems.append(f"{where}: a health check named {check.name!r} is already defined")
            continue
        names.add(check.name)
        result.checks.append(check)
    return result

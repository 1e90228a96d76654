"""What FastAPI's native telemetry works out per request is kept per distinct input, with the same answers."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi import FastAPI, applications
from fastapi.telemetry import _asgi
from opentelemetry.sdk._logs import LoggerProvider

from otel_monitor.launcher.configurator import _cache_loggers
from otel_monitor.launcher.instrumentations import remember_request_invariants


def _scope(host: bytes | None, scheme: str = "http", server: Any = ("10.0.0.5", 8000)) -> dict[str, Any]:
    headers = [(b"accept", b"*/*")]
    if host is not None:
        headers += [(b"host", host), (b"host", b"a-second-host-header-is-ignored")]
    return {"type": "http", "scheme": scheme, "server": server, "headers": headers}


SCOPES = [
    _scope(b"shop.example"),
    _scope(b"shop.example:8443", "https"),
    _scope(b"shop.example", "https"),
    _scope(b"[::1]:9000"),
    _scope(b"user@shop.example"),  # userinfo: FastAPI reports nothing
    _scope(b"shop.example:notaport"),  # malformed: nothing
    _scope(b"shop.example/path"),
    _scope(None),  # no Host: the server's address
    _scope(None, server=None),
    _scope(b"shop.example", "ws"),
]


@pytest.fixture(scope="module")
def remembered() -> Any:
    remember_request_invariants()
    assert hasattr(_asgi._server_attributes, "__wrapped__")
    return _asgi._server_attributes


@pytest.mark.parametrize("scope", SCOPES, ids=[str(i) for i in range(len(SCOPES))])
def test_server_attributes_are_fastapis_own_the_first_time_and_after(remembered: Any, scope: dict[str, Any]) -> None:
    expected = remembered.__wrapped__(scope)
    first, again = remembered(scope), remembered(scope)
    assert first == again == expected
    first["server.address"] = "changed by a caller"
    assert remembered(scope) == expected  # callers get their own dict


def test_made_up_hosts_beyond_the_limit_are_worked_out_each_time(remembered: Any) -> None:
    answers = [remembered(_scope(f"h{i}.example:{1000 + i}".encode())) for i in range(600)]
    assert answers[599] == {"server.address": "h599.example", "server.port": 1599}
    assert answers[0] == {"server.address": "h0.example", "server.port": 1000}
    assert len(remembered.kept) == 256


def test_a_missing_scheme_and_a_none_scheme_are_told_apart(remembered: Any) -> None:
    missing = {"type": "http", "server": ("s", 1), "headers": [(b"host", b"shop.example")]}
    none = {**missing, "scheme": None}
    assert (
        remembered(missing) == remembered.__wrapped__(missing) == {"server.address": "shop.example", "server.port": 80}
    )
    assert remembered(none) == remembered.__wrapped__(none) == {"server.address": "shop.example"}


def test_headers_given_as_an_iterator_are_left_to_fastapi(remembered: Any) -> None:
    scope = {"type": "http", "scheme": "http", "server": None, "headers": iter([(b"host", b"it.example:81")])}
    assert remembered(scope) == {"server.address": "it.example", "server.port": 81}


def test_an_unhashable_server_entry_takes_fastapis_way(remembered: Any) -> None:
    scope = _scope(None, server=["10.0.0.9", 81])
    assert remembered(scope) == {"server.address": "10.0.0.9", "server.port": 81}


def test_the_middleware_stack_walk_is_redone_for_a_new_stack(remembered: Any) -> None:
    from opentelemetry.instrumentation.asgi import OpenTelemetryMiddleware

    check = applications._legacy_otel
    assert hasattr(check, "__wrapped__")
    app = FastAPI()
    plain = app.build_middleware_stack()
    assert check(plain) is False and check(plain) is False
    contrib = OpenTelemetryMiddleware(plain)
    assert check(contrib) is True and check(contrib) is True
    assert check(plain) is False
    assert check(None) is False


def test_loggers_come_from_the_providers_own_cache() -> None:
    provider = LoggerProvider()
    sdk_logger = provider.get_logger("fastapi", "1.0", "https://schema")
    asked = []
    sdk_get_logger = provider.get_logger
    provider.get_logger = lambda *a, **k: asked.append(a) or sdk_get_logger(*a, **k)  # type: ignore[method-assign]
    _cache_loggers(provider)
    assert provider.get_logger("fastapi", "1.0", "https://schema") is sdk_logger
    assert provider.get_logger("fastapi", "1.0", "https://schema") is sdk_logger
    other = provider.get_logger("fastapi", "2.0")
    assert other is not sdk_logger and provider.get_logger("fastapi", "2.0") is other
    with_attributes = provider.get_logger("fastapi", "1.0", "https://schema", attributes={"a": 1})
    assert with_attributes is not sdk_logger
    assert len(asked) == 3  # once per distinct logger, and the one with attributes: never again for a known one


def test_only_the_sdks_own_logger_provider_is_changed() -> None:
    class Custom(LoggerProvider):
        pass

    custom = Custom()
    _cache_loggers(custom)
    assert "get_logger" not in vars(custom)

"""The shop's own settings, read from environment variables.

These configure the example application, not otel-monitor (whose settings all
start with ``OTEL_MONITOR_``).  A bad value raises :class:`ShopSettingsError`
naming the variable, so a typo never starts a half-configured shop.
"""

from __future__ import annotations

import os
import urllib.parse
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

T = TypeVar("T", int, float)


class ShopSettingsError(ValueError):
    """An environment variable of the shop holds a value it cannot use."""


@dataclass(frozen=True)
class ShopSettings:
    database_url: str = "sqlite:///shop.db"
    # Two providers: the shop pays through the primary and falls back to the second
    # when the primary times out, cannot be reached, or answers with a server error.
    payments_primary_url: str = "http://127.0.0.1:8081/primary"
    payments_fallback_url: str = "http://127.0.0.1:8081/fallback"
    payments_timeout: float = 2.0
    # Where the health check asks whether the provider is up; by default its /health.
    payments_health_url: str | None = None
    catalog_ttl: float = 5.0
    db_pool_size: int = 10
    db_max_overflow: int = 10
    password_iterations: int = 20_000

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> ShopSettings:
        env = os.environ if environ is None else environ
        defaults = cls()
        return cls(
            database_url=_read(env, "DATABASE_URL", str, defaults.database_url),
            payments_primary_url=_read(env, "SHOP_PAYMENTS_PRIMARY_URL", _url, defaults.payments_primary_url),
            payments_fallback_url=_read(env, "SHOP_PAYMENTS_FALLBACK_URL", _url, defaults.payments_fallback_url),
            payments_timeout=_read(env, "SHOP_PAYMENTS_TIMEOUT", _positive_float, defaults.payments_timeout),
            payments_health_url=_read(env, "SHOP_PAYMENTS_HEALTH_URL", _url, defaults.payments_health_url),
            catalog_ttl=_read(env, "SHOP_CATALOG_TTL", _non_negative_float, defaults.catalog_ttl),
            db_pool_size=_read(env, "SHOP_DB_POOL_SIZE", _positive_int, defaults.db_pool_size),
            db_max_overflow=_read(env, "SHOP_DB_MAX_OVERFLOW", _non_negative_int, defaults.db_max_overflow),
            password_iterations=_read(env, "SHOP_PASSWORD_ITERATIONS", _positive_int, defaults.password_iterations),
        )

    @property
    def payments_health(self) -> str:
        """The payment provider's health URL: as set, else ``/health`` at the primary's host."""
        if self.payments_health_url:
            return self.payments_health_url
        parts = urllib.parse.urlsplit(self.payments_primary_url)
        return urllib.parse.urlunsplit((parts.scheme, parts.netloc, "/health", "", ""))


def _read(env: Mapping[str, str], name: str, parse: Callable[[str], object], default: object) -> Any:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        return parse(raw)
    except ValueError as exc:
        raise ShopSettingsError(f"{name}={raw!r}: {exc}") from None


def _url(raw: str) -> str:
    if not raw.startswith(("http://", "https://")):
        raise ValueError("expected an http:// or https:// URL")
    return raw.rstrip("/")


def _greater_than(kind: Callable[[str], T], minimum: float, *, or_equal: bool = False) -> Callable[[str], T]:
    noun = "a whole number" if kind is int else "a number"
    expected = f"expected {noun} of {minimum:g} or more" if or_equal else f"expected {noun} greater than {minimum:g}"

    def parse(raw: str) -> T:
        try:
            value = kind(raw)
        except ValueError:
            raise ValueError(expected) from None
        if value < minimum or (value == minimum and not or_equal):
            raise ValueError(expected)
        return value

    return parse


_positive_float = _greater_than(float, 0)
_non_negative_float = _greater_than(float, 0, or_equal=True)
_positive_int = _greater_than(int, 0)
_non_negative_int = _greater_than(int, 0, or_equal=True)

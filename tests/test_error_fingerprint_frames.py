"""Fingerprints read from traceback objects: the same groups as before, at the cost of a lookup per repeated site."""

from __future__ import annotations

import traceback
from types import SimpleNamespace
from typing import Any

import pytest

from otel_monitor.semantics import errors
from tests.apps import error_sites

# Computed with the text-based error_fingerprint this replaced (format the traceback, parse the text):
# the same errors must keep falling into the same groups across the change.
FROZEN = {
    "raise_timeout": "d4f56036c96623d0",
    "raise_bare": "5be537154dd330b9",
    "raise_from": "fe33b1a67a28c9c9",
    "raise_during_handling": "00016edd3dec1506",
    "raise_suppressed": "fb528d14a50b4831",
    "raise_recursive": "4a1b45b6977d95de",
    "raise_recursive_short": "5d535a1e63ea52b6",
    "raise_multiline": "53bf0270433eabee",
    "raise_wrapped_driver_error": "e6515a8f3ba09c77",
    "raise_app_error": "5e2788b0dcf9fdb4",
    "raise_in_library": "80eed56f5c36c777",
    "raise_lambda": "0b6a76cb93063778",
    "raise_empty_message": "3abe23041c1b0251",
    "raise_in_comprehension": "2297eded1ea9e986",
    "raise_long_cause_chain": "9109c80a0e4a176e",
    "raise_in_generated_code": "f85df59705217211",
    "raise_in_generated_recursion": "b538afc024ab626a",
    "raise_with_note": "4d7a2fd3574b41f2",
    "raise_group": "50bc913d5192b4ab",
    "raise_syntax_error": "6c672a048e428aa0",
}
SITES = {site.__name__: site for site in error_sites.SITES}


def _from_text(exc: BaseException) -> str:
    text = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    return errors.fingerprint_from_text(errors.qualified_name(type(exc)), text, errors._message_of(exc))


@pytest.mark.parametrize("name", sorted(FROZEN))
def test_fingerprint_is_the_frozen_one(name: str) -> None:
    """Each error shape keeps the fingerprint the text-based computation gave it."""
    assert errors.error_fingerprint(error_sites.caught(SITES[name])) == FROZEN[name]


@pytest.mark.parametrize("name", sorted(FROZEN))
def test_fingerprint_equals_the_exported_texts(name: str) -> None:
    """A live exception and its exported stack trace text fall into the same group."""
    exc = error_sites.caught(SITES[name])
    assert errors.error_fingerprint(exc) == _from_text(exc)


def test_unraised_exception_is_grouped_by_message() -> None:
    """An exception with no traceback is grouped by type and normalised message, as before."""
    assert errors.error_fingerprint(error_sites.unraised()) == "e42eaf4baae959d4"


def test_every_common_shape_is_read_from_frames() -> None:
    """Only groups, notes and syntax errors are left to the formatted text."""
    left = {name for name, site in SITES.items() if errors._parts_from_frames(error_sites.caught(site)) is None}
    assert left == {"raise_with_note", "raise_group", "raise_syntax_error"}


def test_repeated_site_formats_nothing_and_reads_no_source(monkeypatch: pytest.MonkeyPatch) -> None:
    """The second error at a site is fingerprinted from kept parts: no formatting, no source line read."""
    first = errors.error_fingerprint(error_sites.caught(error_sites.raise_from))

    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("formatted or read again")

    # errors' own references to the modules: pytest's reporting keeps the real ones.
    monkeypatch.setattr(errors, "traceback", SimpleNamespace(format_exception=refuse))
    monkeypatch.setattr(errors, "linecache", SimpleNamespace(getline=refuse, lazycache=refuse, checkcache=refuse))
    assert errors.error_fingerprint(error_sites.caught(error_sites.raise_from)) == first


def test_caches_stay_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    """Past the limit new sites are computed, not kept: no growth with the number of groups."""
    monkeypatch.setattr(errors, "_CACHE_LIMIT", len(errors._frame_parts) + 2)
    monkeypatch.setattr(errors, "_digests", {})
    namespace: dict[str, Any] = {}
    for i in range(20):
        exec(compile(f"def site_{i}():\n    raise KeyError('k{i}')\n", f"/srv/app/generated_{i}.py", "exec"), namespace)
    fingerprints = {errors.error_fingerprint(error_sites.caught(namespace[f"site_{i}"])) for i in range(20)}
    assert len(fingerprints) == 20
    assert len(errors._frame_parts) <= errors._CACHE_LIMIT
    assert len(errors._digests) <= errors._CACHE_LIMIT

"""Fingerprints read from traceback objects: the same groups as before, at the cost of a lookup per repeated site."""

from __future__ import annotations

import traceback
from types import SimpleNamespace
from typing import Any

import pytest

from otel_monitor.semantics import errors
from tests.support.apps import error_sites

# Computed with the text-based error_fingerprint this replaced (format the traceback, parse the text):
# the same errors must keep falling into the same groups across the change. A fingerprint
# includes the frames' file paths: recomputed (text-based) when error_sites.py moved to tests/support/apps/.
FROZEN = {
    "raise_timeout": "5c005911850e3ee6",
    "raise_bare": "c8650c25f706df73",
    "raise_from": "06b1639ba5674e01",
    "raise_during_handling": "8da69a322cbf8de2",
    "raise_suppressed": "ed883ad99a949612",
    "raise_recursive": "c262d93bf2030048",
    "raise_recursive_short": "899e5c5d5e6cafeb",
    "raise_multiline": "b74e2c9980ec079e",
    "raise_wrapped_driver_error": "dd13ad31a95a7be9",
    "raise_app_error": "efd5998f6666ecff",
    "raise_in_library": "9b75a239bf723f63",
    "raise_lambda": "50c8a255d934c517",
    "raise_empty_message": "b9f323eca7f2178f",
    "raise_in_comprehension": "ed3da89bdafde5c8",
    "raise_long_cause_chain": "53d7c1bb97adeb38",
    "raise_in_generated_code": "5e4c437f891246e3",
    "raise_in_generated_recursion": "04bbff14636d0440",
    "raise_with_note": "0576042ee850f63d",
    "raise_group": "50bc913d5192b4ab",
    "raise_syntax_error": "588961198283e6e6",
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

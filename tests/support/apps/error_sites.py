"""Places where errors are raised, for the fingerprint tests.

Each ``raise_*`` function raises one shape of error: its fingerprint depends
on this module's name, the functions' names and these source lines, so the
frozen fingerprints in ``tests/unit/test_error_fingerprint_frames.py`` change if
this file does.  Add new shapes at the end.
"""

from __future__ import annotations

import json
from typing import Any


def _dependency() -> None:
    raise TimeoutError("upstream did not answer within 2.0 s")


def raise_timeout() -> None:
    _dependency()


def raise_bare() -> None:
    raise RuntimeError


def raise_from() -> None:
    try:
        _dependency()
    except TimeoutError as exc:
        raise ConnectionError("order 1234 failed") from exc


def raise_during_handling() -> None:
    try:
        {}["missing"]
    except KeyError:
        raise ValueError("could not read user 42@example.com")  # noqa: B904 - chained by context, on purpose


def raise_suppressed() -> None:
    try:
        {}["missing"]
    except KeyError:
        raise LookupError("no such key") from None


def _recurse(n: int) -> None:
    if n == 0:
        raise RecursionError("too deep: 10")
    _recurse(n - 1)


def raise_recursive() -> None:
    _recurse(10)


def _recurse_three(n: int) -> None:
    if n == 0:
        raise IndexError("three")
    _recurse_three(n - 1)


def raise_recursive_short() -> None:
    _recurse_three(2)


def raise_multiline() -> None:
    raise ValueError("first line\nsecond line 77\n  indented third")


def raise_wrapped_driver_error() -> None:
    class OperationalError(Exception):
        pass

    raise OperationalError("(psycopg.errors.QueryCanceled) canceling statement due to statement timeout")


class AppError(Exception):
    """An app's own exception class."""


def raise_app_error() -> None:
    raise AppError("widget 3f2a9c1e-1111-4222-8333-444455556666 is gone")


def raise_in_library() -> None:
    json.loads("{not json")


def raise_lambda() -> None:
    fail: Any = lambda: 1 / 0  # noqa: E731 - a frame named <lambda>
    fail()


def raise_empty_message() -> None:
    raise KeyError("")


def raise_in_comprehension() -> None:
    [int(x) for x in ("1", "two")]


def raise_long_cause_chain() -> None:
    try:
        try:
            _dependency()
        except TimeoutError as first:
            raise ConnectionError("retry 2 failed") from first
    except ConnectionError:
        raise RuntimeError("gave up after 3 tries")  # noqa: B904 - chained by context, on purpose


_GENERATED = compile(
    "def generated(n):\n    if n == 0:\n        raise ValueError('from generated code 5')\n    generated(n - 1)\n",
    "<generated>",
    "exec",
)


def raise_in_generated_code() -> None:
    """Frames with no source line to show (code compiled from a string)."""
    namespace: dict[str, Any] = {}
    exec(_GENERATED, namespace)
    namespace["generated"](0)


def raise_in_generated_recursion() -> None:
    namespace: dict[str, Any] = {}
    exec(_GENERATED, namespace)
    namespace["generated"](6)


def raise_with_note() -> None:
    error = KeyError("sku 12")
    error.add_note("while pricing the basket")
    raise error


def raise_group() -> None:
    raise ExceptionGroup("several", [ValueError("a 1"), TypeError("b 2")])


def raise_syntax_error() -> None:
    compile("def broken(:\n", "<template 7>", "exec")


def unraised() -> BaseException:
    """An exception that was never raised: no traceback at all."""
    return ValueError("built, not raised: id 99")


SITES = [
    raise_timeout,
    raise_bare,
    raise_from,
    raise_during_handling,
    raise_suppressed,
    raise_recursive,
    raise_recursive_short,
    raise_multiline,
    raise_wrapped_driver_error,
    raise_app_error,
    raise_in_library,
    raise_lambda,
    raise_empty_message,
    raise_in_comprehension,
    raise_long_cause_chain,
    raise_in_generated_code,
    raise_in_generated_recursion,
    raise_with_note,
    raise_group,
    raise_syntax_error,
]


def caught(site: Any) -> BaseException:
    try:
        site()
    except BaseException as exc:  # noqa: BLE001 - every shape is wanted
        return exc
    raise AssertionError(f"{site.__name__} did not raise")

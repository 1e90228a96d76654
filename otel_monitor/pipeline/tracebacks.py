"""An exception's traceback as text, formatted once per error and once per error site.

``traceback.format_exception`` reads every frame's code positions, source
line and caret anchors each time it runs; in an outage the same few error
sites fail over and over, and the log record, the span's exception event
and the log handler each format the same exception again.
:func:`format_exception` gives the same text as
``"".join(traceback.format_exception(exc))`` with:

* the frames' part of each traceback (everything between the
  ``Traceback (most recent call last):`` line and the exception line)
  kept per error site, the sequence of code objects and instruction
  offsets it is made of: a repeated site costs a walk of its traceback and
  one dictionary lookup;
* the text of one exception kept on the exception object while its
  traceback is the same, so the log record and the span's exception event
  share one formatting.

Shapes whose text needs more than that (exception groups, syntax errors,
notes, loops in the chain) are formatted by the traceback module itself.
A source file edited while the process runs keeps the lines first read
for a kept site (they are the lines of the code that runs).
"""

from __future__ import annotations

import traceback
from typing import Any

from otel_monitor.semantics.errors import exception_line, printed_chain

# Sites kept, at most: never evicted, so a storm of new sites costs the same per error as a
# storm of one; past the limit new sites are formatted, not kept.
SITE_LIMIT = 1024
_CAUSE = "\nThe above exception was the direct cause of the following exception:\n\n"
_CONTEXT = "\nDuring handling of the above exception, another exception occurred:\n\n"
_HEADER = "Traceback (most recent call last):\n"
_MEMO = "__otel_monitor_stacktrace__"
_EMITTED = "__otel_monitor_emitted_traceback__"

_sites: dict[tuple[Any, ...], str] = {}


def _site_key(tb: Any) -> tuple[Any, ...]:
    key = []
    while tb is not None:
        key.append(tb.tb_frame.f_code)
        key.append(tb.tb_lasti)
        tb = tb.tb_next
    return tuple(key)


def _frames_text(tb: Any) -> str:
    key = _site_key(tb)
    text = _sites.get(key)
    if text is None:
        text = "".join(traceback.format_tb(tb))
        if len(_sites) < SITE_LIMIT:
            _sites[key] = text
    return text


def remember_traceback(exc: BaseException) -> None:
    """Keep the traceback ``exc`` has now, for a stack trace formatted later (:func:`emitted_traceback`).

    An exception's traceback grows as it propagates: formatted at export, a
    log record would otherwise show the frames of where the exception was
    finally caught, not of where the record was emitted.
    """
    try:
        setattr(exc, _EMITTED, exc.__traceback__)
    except (AttributeError, TypeError):
        pass


def emitted_traceback(exc: BaseException) -> Any:
    """The traceback :func:`remember_traceback` kept, else the exception's own."""
    return getattr(exc, _EMITTED, exc.__traceback__)


def format_exception(exc: BaseException, tb: Any = None) -> str:
    """``"".join(traceback.format_exception(type(exc), exc, tb))``, formatted once per error and per error site.

    ``tb`` is the exception's own traceback unless given (:func:`emitted_traceback`).
    """
    tb = exc.__traceback__ if tb is None else tb
    try:
        memo = exc.__dict__.get(_MEMO)
    except AttributeError:  # an exception class with __slots__ and no __dict__
        memo = None
    if memo is not None and memo[0] is tb:
        return memo[1]
    chain = printed_chain(exc)
    if chain is None:
        text = "".join(traceback.format_exception(type(exc), exc, tb))
    else:
        pieces: list[str] = []
        for link in reversed(chain):  # the innermost cause first, as the traceback module prints
            if pieces:
                pieces.append(_CONTEXT if link.__cause__ is None else _CAUSE)
            link_tb = tb if link is exc else link.__traceback__
            if link_tb is not None:
                pieces.append(_HEADER)
                pieces.append(_frames_text(link_tb))
            pieces.append(exception_line(link) + "\n")
        text = "".join(pieces)
    try:
        setattr(exc, _MEMO, (tb, text))
    except (AttributeError, TypeError):
        pass
    return text


def clear() -> None:
    """Forget the kept sites (tests)."""
    _sites.clear()

"""Error classification into categories, and fingerprints of error groups.

Classification walks the exception chain (``__cause__``, ``__context__`` even
when ``raise ... from None`` hides it, and a DB-API error's ``orig``), outermost
first, with the HTTP status of a failed call found on the way (an exception's
``status_code`` or its ``response.status_code``), and each exception's class
hierarchy, matching *qualified* class names so that optional libraries never
need importing (``sqlalchemy.exc.TimeoutError`` is not the builtin
``TimeoutError``).  Within one class hierarchy the more specific category wins
(``requests.exceptions.ConnectTimeout`` is both a timeout and a connection
error: timeout).  Along the chain the first *specific* category wins; generic
ones (database, dependency, bug) only when nothing specific is found, so a
SQLAlchemy error wrapping a PostgreSQL statement timeout is a timeout.

A fingerprint identifies an error group across processes, restarts and line
shifts: the chain of exception types plus the in-app frames (module, function,
normalised source line; no line numbers; recursion folded).  Without a stack
it is the message with numbers, ids, UUIDs, hex and emails replaced.

Spans and log records only carry the exception as text (``exception.type``,
``exception.stacktrace``), so the same functions work from that text; a live
exception's fingerprint is read from its traceback objects instead, each code
location's part kept, and is the one its formatted text gives.
"""

from __future__ import annotations

import fnmatch
import hashlib
import linecache
import os
import re
import sys
import sysconfig
import traceback
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from otel_monitor import runtime, semconv
from otel_monitor.config.file import EMPTY, ConfigFile
from otel_monitor.config.settings import report_problem

# Most specific first: picks the category when one class hierarchy matches several.
_PRIORITY = (
    "cancelled",
    "timeout",
    "rate_limit",
    "auth",
    "resource_exhausted",
    "network",
    "validation",
    "database",
    "dependency",
    "bug",
    "unknown",
)
_GENERIC = frozenset({"database", "dependency", "bug", "unknown"})

# Qualified class names (as ``module.QualName``; builtins bare) -> category.
BUILTIN_CLASSES: dict[str, str] = {
    # cancellation is not an error
    "asyncio.exceptions.CancelledError": "cancelled",
    "concurrent.futures._base.CancelledError": "cancelled",
    "KeyboardInterrupt": "cancelled",
    "GeneratorExit": "cancelled",
    # timeouts
    "TimeoutError": "timeout",
    "socket.timeout": "timeout",
    "asyncio.exceptions.TimeoutError": "timeout",
    "concurrent.futures._base.TimeoutError": "timeout",
    "requests.exceptions.Timeout": "timeout",
    "urllib3.exceptions.TimeoutError": "timeout",
    "httpx.TimeoutException": "timeout",
    "httpcore.TimeoutException": "timeout",
    "aiohttp.client_exceptions.ServerTimeoutError": "timeout",
    "redis.exceptions.TimeoutError": "timeout",
    "psycopg.errors.QueryCanceled": "timeout",
    "psycopg2.errors.QueryCanceled": "timeout",
    "grpc.FutureTimeoutError": "timeout",
    # network
    "ConnectionError": "network",
    "socket.gaierror": "network",
    "ssl.SSLError": "network",
    "requests.exceptions.ConnectionError": "network",
    "urllib3.exceptions.ProtocolError": "network",
    "urllib3.exceptions.NewConnectionError": "network",
    "httpx.NetworkError": "network",
    "httpx.RemoteProtocolError": "network",
    "httpcore.NetworkError": "network",
    "aiohttp.client_exceptions.ClientConnectionError": "network",
    "redis.exceptions.ConnectionError": "network",
    "urllib.error.URLError": "network",
    # database
    "sqlalchemy.exc.DBAPIError": "database",
    "sqlalchemy.exc.SQLAlchemyError": "database",
    "sqlite3.Error": "database",
    "psycopg.Error": "database",
    "psycopg2.Error": "database",
    "asyncpg.exceptions._base.PostgresError": "database",
    "pymysql.err.Error": "database",
    "sqlalchemy.exc.IntegrityError": "validation",
    "sqlalchemy.exc.DataError": "validation",
    "sqlalchemy.exc.NoResultFound": "validation",
    "sqlalchemy.orm.exc.StaleDataError": "database",
    # the connection pool ran dry: sqlalchemy's TimeoutError is exhaustion, not a slow call
    "sqlalchemy.exc.TimeoutError": "resource_exhausted",
    # validation
    "pydantic_core._pydantic_core.ValidationError": "validation",
    "pydantic.ValidationError": "validation",
    "fastapi.exceptions.RequestValidationError": "validation",
    "fastapi.exceptions.ValidationException": "validation",
    "marshmallow.exceptions.ValidationError": "validation",
    "jsonschema.exceptions.ValidationError": "validation",
    "json.decoder.JSONDecodeError": "validation",
    "UnicodeDecodeError": "validation",
    # auth
    "PermissionError": "auth",
    "jwt.exceptions.PyJWTError": "auth",
    "jose.exceptions.JOSEError": "auth",
    "botocore.exceptions.NoCredentialsError": "auth",
    # resource exhaustion
    "MemoryError": "resource_exhausted",
    "RecursionError": "resource_exhausted",
    # dependencies: errors raised about a remote service's answer
    "httpx.HTTPStatusError": "dependency",
    "requests.exceptions.HTTPError": "dependency",
    "aiohttp.client_exceptions.ClientResponseError": "dependency",
    "botocore.exceptions.ClientError": "dependency",
    "grpc.RpcError": "dependency",
    # programming errors
    "AttributeError": "bug",
    "KeyError": "bug",
    "IndexError": "bug",
    "TypeError": "bug",
    "ValueError": "bug",
    "NameError": "bug",
    "AssertionError": "bug",
    "NotImplementedError": "bug",
    "ZeroDivisionError": "bug",
    "LookupError": "bug",
    "ArithmeticError": "bug",
    "ImportError": "bug",
    "RuntimeError": "bug",
}

# PostgreSQL SQLSTATE codes and classes (first two characters) -> category.
SQLSTATE: dict[str, str] = {
    "57014": "timeout",
    "55P03": "timeout",
    "25P03": "timeout",
    "42501": "auth",
    "28": "auth",
    "08": "network",
    "53": "resource_exhausted",
    "54": "resource_exhausted",
    "22": "validation",
    "23": "validation",
    "42": "bug",
    "40": "database",
    "57": "database",
}


def status_category(status_code: int) -> str | None:
    """The category an HTTP status stands for, or None for a success."""
    if status_code < 400:
        return None
    if status_code in (401, 403, 407):
        return "auth"
    if status_code == 429:
        return "rate_limit"
    if status_code in (408, 504):
        return "timeout"
    if status_code in (502, 503):
        return "dependency"
    if status_code == 507:
        return "resource_exhausted"
    if status_code < 500:
        return "validation"
    return "unknown"


# monitor.error.severity of each category, unless an error rule says otherwise.
# A failure the service can do nothing about right now (pool or memory gone)
# is critical; the caller's own mistakes and cancellations are not paged on.
DEFAULT_SEVERITY: dict[str, str] = {
    "timeout": "error",
    "network": "error",
    "database": "error",
    "validation": "warning",
    "auth": "warning",
    "rate_limit": "warning",
    "dependency": "error",
    "resource_exhausted": "critical",
    "bug": "error",
    "cancelled": "info",
    "unknown": "error",
}
# A 4xx answer is the caller's mistake: at most this severe, whatever its category.
CLIENT_ERROR_SEVERITY_CAP = "warning"


def names_csrf(text: Any) -> bool:
    """Whether an error type or message is about a CSRF (or XSRF) check."""
    lowered = str(text).lower()
    return "csrf" in lowered or "xsrf" in lowered


def call_outcome(
    failed: bool, status: Any = None, error_type: Any = None, description: Any = None, declared: Any = None
) -> str:
    """``monitor.operation.outcome`` of a call (one of ``semconv.OPERATION_OUTCOMES``).

    ``failed``: the service failed it (5xx, an error status, an exception).
    Otherwise the HTTP status tells a client error apart; a 403 whose error
    type or status text names CSRF is ``rejected``, as a 422 is.  An app that
    knows better sets ``monitor.operation.outcome`` on the span (``declared``):
    any client outcome it names is kept.
    """
    if failed:
        return "server_error"
    if not isinstance(status, int) or not 400 <= status < 500:
        return "success"
    if declared in _CLIENT_OUTCOMES:
        return str(declared)
    if status == 401:
        return "unauthenticated"
    if status == 422:
        return "rejected"
    if status == 403:
        return "rejected" if names_csrf(f"{error_type or ''} {description or ''}") else "forbidden"
    return "client_error"


_CLIENT_OUTCOMES = frozenset(semconv.OPERATION_OUTCOMES) - {"success", "server_error"}


@dataclass(frozen=True)
class ErrorRule:
    """One ``errors:`` entry of the config file: any of its conditions matches.

    ``severity`` (optional) sets ``monitor.error.severity`` of every error of
    ``category``; a rule with a severity and no condition only does that.
    """

    category: str
    class_pattern: str | None = None
    status_code: int | None = None
    message: re.Pattern[str] | None = None
    severity: str | None = None


def _message_of(exc: BaseException) -> str:
    """``str(exc)``, or a stand-in when the exception's own ``__str__`` fails."""
    try:
        return str(exc)
    except Exception:  # noqa: BLE001 - an app's broken __str__ must not break classification
        return "<str() failed>"


def qualified_name(cls: type) -> str:
    module = getattr(cls, "__module__", "") or ""
    name = getattr(cls, "__qualname__", cls.__name__)
    return name if module in ("builtins", "") else f"{module}.{name}"


def _resolve_class(name: str) -> type | None:
    """Find a class by qualified name among already imported modules (never import)."""
    module, _, qual = name.rpartition(".")
    obj: Any = sys.modules.get(module or "builtins")
    while obj is None and "." in module:  # nested class: Outer.Inner
        module, _, outer = module.rpartition(".")
        qual = f"{outer}.{qual}"
        obj = sys.modules.get(module)
    for part in qual.split("."):
        obj = getattr(obj, part, None)
    return obj if isinstance(obj, type) else None


class ErrorClassifier:
    """Classifies exceptions (live or as text) with the built-in table plus config rules."""

    def __init__(self, rules: list[ErrorRule] | None = None) -> None:
        self.rules = [r for r in rules or [] if r.class_pattern or r.status_code is not None or r.message]
        self._severities = dict(DEFAULT_SEVERITY)
        for rule in rules or []:
            if rule.severity:
                self._severities[rule.category] = rule.severity
        self._cache: dict[str, str] = {}
        # span id -> HTTP status of a call made in that span that failed (bounded, newest kept):
        # an exception raised on such an answer without chaining an error is classified by it.
        self._failed_calls: dict[int, int] = {}

    def severity(self, category: str | None, *, client_error: bool = False) -> str:
        """``monitor.error.severity`` of an error of ``category``: the config's rule, else the default;
        a client error (a 4xx answer) is capped at ``warning``."""
        severity = self._severities.get(category or "unknown", "error")
        if client_error and _SEVERITY_RANK[severity] > _SEVERITY_RANK[CLIENT_ERROR_SEVERITY_CAP]:
            return CLIENT_ERROR_SEVERITY_CAP
        return severity

    # --- failed calls --------------------------------------------------------------------
    def note_failed_call(self, parent_span_id: int, status_code: int) -> None:
        """An HTTP call made in span ``parent_span_id`` was answered with ``status_code`` (4xx, 5xx)."""
        calls = self._failed_calls
        calls.pop(parent_span_id, None)
        calls[parent_span_id] = status_code
        if len(calls) > _MAX_FAILED_CALLS:
            try:
                del calls[next(iter(calls))]
            except (StopIteration, KeyError, RuntimeError):  # another thread got there first
                pass

    def failed_call_status(self, span_id: int) -> int | None:
        """The status of the last failed call made in ``span_id``, forgotten once asked."""
        return self._failed_calls.pop(span_id, None)

    def classify_in_span(self, exc: BaseException, span_id: int | None) -> str:
        """:meth:`classify`, then, for ``unknown``, the status of a call that failed in the same span:
        ``raise ProviderFailed(...)`` on a 503 answer is ``dependency``."""
        category = self.classify(exc)
        status = self.failed_call_status(span_id) if span_id else None
        if category == "unknown" and status is not None:
            category = self.classify(exc, status_code=status)
        return category

    # --- one exception, by its class hierarchy ------------------------------------
    def _by_names(self, names: list[str], message: str, status: int | None) -> str:
        for rule in self.rules:
            if rule.class_pattern and any(fnmatch.fnmatchcase(n, rule.class_pattern) for n in names):
                return rule.category
            if rule.status_code is not None and status == rule.status_code:
                return rule.category
            if rule.message is not None and message and rule.message.search(message):
                return rule.category
        if status is not None and status >= 400:
            return status_category(status) or "unknown"
        found = {BUILTIN_CLASSES[n] for n in names if n in BUILTIN_CLASSES}
        for category in _PRIORITY:
            if category in found:
                return category
        return "unknown"

    def _for_class(self, cls: type | None, name: str, message: str, status: int | None, sqlstate: str | None) -> str:
        names = [qualified_name(c) for c in cls.__mro__] if cls is not None else [name]
        if cls is not None and sqlstate is None:
            sqlstate = getattr(cls, "sqlstate", None)
        category = self._by_names(names, message, status)
        if sqlstate and category in _GENERIC | {"validation"}:
            category = SQLSTATE.get(sqlstate) or SQLSTATE.get(sqlstate[:2]) or category
        return category

    # --- chains ------------------------------------------------------------------------
    def classify(self, exc: BaseException | None = None, *, status_code: int | None = None) -> str:
        """The category of ``exc`` (its whole chain) or of an HTTP ``status_code``."""
        if exc is None:
            if status_code is None:
                return "unknown"
            return self._by_names([], "", status_code)
        categories = []
        for link in _chain(exc):
            status = _status_of(link) if link is exc or status_code is None else None
            if link is exc and status_code is not None:
                status = status_code
            sqlstate = getattr(link, "sqlstate", None) or getattr(link, "pgcode", None)
            categories.append(
                self._for_class(
                    type(link), "", _message_of(link), status, sqlstate if isinstance(sqlstate, str) else None
                )
            )
        return _pick(categories)

    def classify_text(self, exception_type: str, stacktrace: str | None = None, message: str = "") -> str:
        """The category from an exported exception's type name and stack trace text."""
        cache_key = exception_type if not stacktrace and not message else None
        if cache_key is not None and cache_key in self._cache:
            return self._cache[cache_key]
        chain = _types_in_trace(stacktrace) if stacktrace else []
        if not chain or chain[0][0] != exception_type:
            chain.insert(0, (exception_type, message))
        categories = [self._for_class(_resolve_class(name), name, msg, None, None) for name, msg in chain]
        result = _pick(categories)
        if cache_key is not None and len(self._cache) < 1000:
            self._cache[cache_key] = result
        return result


_MAX_FAILED_CALLS = 1024
_SEVERITY_RANK = {name: rank for rank, name in enumerate(semconv.ERROR_SEVERITIES)}


def _pick(categories: list[str]) -> str:
    for category in categories:
        if category not in _GENERIC:
            return category
    for category in categories:
        if category != "unknown":
            return category
    return "unknown"


def _chain(exc: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    todo: list[BaseException] = [exc]
    while todo and len(seen) < 16:
        link = todo.pop(0)
        if id(link) in seen:
            continue
        seen.add(id(link))
        yield link
        orig = getattr(link, "orig", None)  # SQLAlchemy's DBAPIError keeps the driver's error here
        # ``raise ... from None`` only hides the context from the printed traceback: the
        # error being handled is still what went wrong, so classification follows it.
        for nxt in (orig, link.__cause__, link.__context__):
            if isinstance(nxt, BaseException):
                todo.append(nxt)


def _status_of(exc: BaseException) -> int | None:
    for owner in (exc, getattr(exc, "response", None)):
        status = getattr(owner, "status_code", None) if owner is not None else None
        if isinstance(status, int):
            return status
    return None


# --- stack trace text ---------------------------------------------------------------------
_FRAME = re.compile(r'^\s*File "(?P<path>[^"]+)", line \d+, in (?P<func>.+)$')
_TYPE_LINE = re.compile(r"^(?P<type>[A-Za-z_][\w.]*)(?::\s?(?P<msg>.*))?$")
_CHAIN_SEPARATORS = ("The above exception was the direct cause", "During handling of the above exception")
# SQLAlchemy prefixes the driver's error class: "(psycopg.errors.QueryCanceled) canceling ..."
_WRAPPED = re.compile(r"^\((?P<type>[A-Za-z_][\w.]+)\)")


def _types_in_trace(text: str) -> list[tuple[str, str]]:
    """Exception types (and messages) in a formatted trace, outermost first."""
    per_block: list[list[tuple[str, str]]] = []
    for block in _blocks(text):
        found: list[tuple[str, str]] = []
        for line in reversed(block):
            if line and not line[0].isspace() and not line.startswith("Traceback"):
                match = _TYPE_LINE.match(line)
                if match:
                    msg = match.group("msg") or ""
                    found.append((match.group("type"), msg))
                    wrapped = _WRAPPED.match(msg)
                    if wrapped:
                        found.append((wrapped.group("type"), msg))
                break
        per_block.append(found)
    # format_exception prints the innermost cause first; we want the outermost first
    return [item for found in reversed(per_block) for item in found]


def _blocks(text: str) -> list[list[str]]:
    blocks: list[list[str]] = [[]]
    for line in text.splitlines():
        if any(line.startswith(sep) for sep in _CHAIN_SEPARATORS):
            blocks.append([])
        else:
            blocks[-1].append(line)
    return [b for b in blocks if b]


def _library_prefixes() -> tuple[str, ...]:
    paths = sysconfig.get_paths()
    prefixes = {paths.get(k, "") for k in ("stdlib", "platstdlib", "purelib", "platlib")}
    return (*(p for p in prefixes if p), "site-packages", "dist-packages", "<frozen ", "otel_monitor/")


_LIBRARY = _library_prefixes()


def _module_of(path: str) -> str:
    """A path turned into a dotted module name relative to sys.path (stable across machines)."""
    best = ""
    for entry in sys.path:
        entry = entry or os.getcwd()
        if path.startswith(entry.rstrip("/") + "/") and len(entry) > len(best):
            best = entry.rstrip("/") + "/"
    rel = path[len(best) :] if best else path.rsplit("/", 2)[-1] if "/" in path else path
    return rel.removesuffix(".py").replace("/", ".").removesuffix(".__init__")


def _in_app_frames(block: list[str]) -> list[str]:
    frames: list[str] = []
    for i, line in enumerate(block):
        match = _FRAME.match(line)
        if not match:
            continue
        path = match.group("path")
        if any(lib in path for lib in _LIBRARY):
            continue
        source = block[i + 1].strip() if i + 1 < len(block) else ""
        if _FRAME.match(source) or source.startswith(("[Previous line", "Traceback")):
            source = ""
        frame = f"{_module_of(path)}:{match.group('func')}:{' '.join(source.split())}"
        if not frames or frames[-1] != frame:  # fold recursion
            frames.append(frame)
    return frames


_PLACEHOLDERS = [
    (re.compile(r"[\w.+-]+@[\w-]+\.[\w.-]+"), "<email>"),
    (re.compile(r"\b[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}\b"), "<uuid>"),
    (re.compile(r"\b0x[0-9a-fA-F]+\b|\b(?=[0-9a-fA-F]*\d)[0-9a-fA-F]{8,}\b"), "<hex>"),
    (re.compile(r"\b[A-Za-z]*\d[\w-]*\b"), "<id>"),
]


def normalise_message(message: str) -> str:
    """The message with emails, UUIDs, hex, numbers and ids replaced by placeholders."""
    for pattern, placeholder in _PLACEHOLDERS:
        message = pattern.sub(placeholder, message)
    return " ".join(message.split())


def fingerprint_from_text(exception_type: str, stacktrace: str | None, message: str = "") -> str:
    """The fingerprint of an exported exception (``exception.*`` attributes)."""
    parts: list[str] = []
    frames_seen = False
    for block in _blocks(stacktrace) if stacktrace else []:
        frames = _in_app_frames(block)
        frames_seen = frames_seen or bool(frames)
        types = _types_in_trace("\n".join(block))
        parts.append(types[0][0] if types else "")
        parts.extend(frames)
    if not frames_seen:
        types = _types_in_trace(stacktrace) if stacktrace else []
        parts = [name for name, _ in types] or [exception_type]
        parts.append(normalise_message(types[0][1] if types else message))
    return hashlib.sha256("\n".join(parts).encode("utf-8", "surrogatepass")).hexdigest()[:16]


def error_fingerprint(exc: BaseException) -> str:
    """A stable hex id of the error group ``exc`` belongs to.

    Read from the exception's traceback objects, not from formatted text:
    each in-app frame's part is worked out once per code location and kept,
    so a repeated error site costs dictionary lookups.  The result is the
    one :func:`fingerprint_from_text` gives for the same exception's
    formatted traceback (what an exported span or log record carries); the
    rare shapes whose text this does not reproduce take that path.
    """
    override = getattr(exc, "__otel_monitor_fingerprint__", None)
    if isinstance(override, str):
        return override
    if not exc.__traceback__:
        return fingerprint_from_text(qualified_name(type(exc)), None, _message_of(exc))
    parts = _parts_from_frames(exc)
    if parts is None:
        text = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
        return fingerprint_from_text(qualified_name(type(exc)), text, _message_of(exc))
    key = tuple(parts)
    digest = _digests.get(key)
    if digest is None:
        digest = hashlib.sha256("\n".join(parts).encode("utf-8", "surrogatepass")).hexdigest()[:16]
        if len(_digests) < _CACHE_LIMIT:
            _digests[key] = digest
    return digest


# --- fingerprints from traceback objects ------------------------------------------------
# What error_fingerprint keeps: bounded, and never evicted, so the work per error stays
# the same however many error groups there are (a full cache is only not added to).
_CACHE_LIMIT = 4096
# (code, line) -> the frame's part without its source, and its source line;
# None for a library frame.  The source of a line is read once, as the traceback module reads it.
_frame_parts: dict[tuple[Any, int], tuple[str, str] | None] = {}
_digests: dict[tuple[str, ...], str] = {}
_RECURSIVE_CUTOFF = 3  # traceback.StackSummary.format prints a repeated frame this many times
_IN_TEXT_ONLY = ('File "', "The above exception was the direct cause", "During handling of the above exception")


def printed_chain(exc: BaseException) -> list[BaseException] | None:
    """The exceptions ``traceback.format_exception`` prints, outermost first; None for a shape left to it."""
    chain: list[BaseException] = []
    link: BaseException | None = exc
    while link is not None:
        if any(link is seen for seen in chain) or len(chain) >= 32:
            return None
        cause, context = link.__cause__, link.__context__
        if cause is not None and context is not None and context is not cause:
            return None  # the printed chain then depends on the traceback module's walk order
        if isinstance(link, (BaseExceptionGroup, SyntaxError)) or getattr(link, "__notes__", None) is not None:
            return None
        chain.append(link)
        link = cause if cause is not None else None if link.__suppress_context__ else context
    return chain


def _frame_part(code: Any, line: int, frame: Any) -> tuple[str, str] | None:
    key = (code, line)
    try:
        return _frame_parts[key]
    except KeyError:
        pass
    path, name = code.co_filename, code.co_name
    if any(lib in path for lib in _LIBRARY):
        part: tuple[str, str] | None = None
    else:
        linecache.lazycache(path, frame.f_globals)
        linecache.checkcache(path)
        source = linecache.getline(path, line).strip()
        text = f'  File "{path}", line {line}, in {name}'
        if not _FRAME.match(text) or len(text.splitlines()) > 1 or len(source.splitlines()) > 1:
            raise LookupError(path)  # the text would not show this frame as one line: the text path decides
        if source and (_FRAME.match(source) or source.startswith(("[Previous line", "Traceback"))):
            raise LookupError(path)
        part = (f"{_module_of(path)}:{name}:", " ".join(source.split()))
    if len(_frame_parts) < _CACHE_LIMIT:
        _frame_parts[key] = part
    return part


def exception_line(link: BaseException) -> str:
    """The last line ``traceback.format_exception_only`` gives for ``link`` (no notes, not a SyntaxError)."""
    cls = type(link)
    name, module = cls.__qualname__, cls.__module__
    if module not in ("__main__", "builtins"):
        name = f"{module if isinstance(module, str) else '<unknown>'}.{name}"
    try:
        message = str(link)
    except Exception:  # noqa: BLE001 - as the traceback module shows a broken __str__
        message = "<exception str() failed>"
    return f"{name}: {message}" if message else name


def _block_types(lines: list[str]) -> list[tuple[str, str]]:
    """:func:`_types_in_trace` of one exception's block, from its exception lines."""
    for line in reversed(lines):
        if line and not line[0].isspace() and not line.startswith("Traceback"):
            match = _TYPE_LINE.match(line)
            if not match:
                return []
            message = match.group("msg") or ""
            wrapped = _WRAPPED.match(message)
            return [(match.group("type"), message)] + ([(wrapped.group("type"), message)] if wrapped else [])
    return []


def _block_frames(link: BaseException, first_line: str) -> list[str]:
    """:func:`_in_app_frames` of one exception's block, from its traceback objects."""
    frames: list[str] = []
    tb = link.__traceback__
    last: tuple[Any, int] | None = None
    run = 0
    while tb is not None:
        code, line = tb.tb_frame.f_code, tb.tb_lineno
        if line is None or tb.tb_lasti < 0:
            raise LookupError("no line")
        run = run + 1 if last == (code, line) else 1
        last = (code, line)
        part = _frame_part(code, line, tb.tb_frame)
        if part is not None:
            prefix, source = part
            if not source and tb.tb_next is None and run <= _RECURSIVE_CUTOFF:
                # The text's line after a last frame without source is the exception line.
                source = "" if first_line.startswith(("[Previous line", "Traceback")) else " ".join(first_line.split())
            frame = prefix + source
            if not frames or frames[-1] != frame:
                frames.append(frame)
        tb = tb.tb_next
    return frames


def _parts_from_frames(exc: BaseException) -> list[str] | None:
    """What :func:`fingerprint_from_text` hashes for ``exc``'s formatted traceback, or None to format it."""
    chain = printed_chain(exc)
    if chain is None:
        return None
    blocks: list[tuple[list[str], list[tuple[str, str]]]] = []
    try:
        for link in chain:
            lines = exception_line(link).splitlines() or [""]
            if len(lines) > 1 and any(marker in line for line in lines for marker in _IN_TEXT_ONLY):
                return None
            blocks.append((_block_frames(link, lines[0]), _block_types(lines)))
    except LookupError:
        return None
    parts: list[str] = []
    for frames, types in reversed(blocks):  # the text shows the innermost cause first
        parts.append(types[0][0] if types else "")
        parts.extend(frames)
    if not any(frames for frames, _ in blocks):
        names = [name for _, types in blocks for name, _ in types]
        first = next((types[0][1] for _, types in blocks if types), None)
        parts = names or [qualified_name(type(exc))]
        parts.append(normalise_message(first if first is not None else _message_of(exc)))
    return parts


def set_error_fingerprint(value: str, exc: BaseException | None = None) -> None:
    """Override the fingerprint: of ``exc`` when given, and of the current span."""
    from opentelemetry import trace

    if exc is not None:
        try:
            exc.__otel_monitor_fingerprint__ = value  # type: ignore[attr-defined]
        except AttributeError:
            pass
    span = trace.get_current_span()
    if span.is_recording():
        span.set_attribute(semconv.MONITOR_ERROR_FINGERPRINT, value)


def load_error_rules(
    config: ConfigFile = EMPTY, *, strict: bool = False, problems: list[str] | None = None
) -> list[ErrorRule]:
    """The ``errors:`` section as rules; a bad entry is reported and skipped."""
    section = config.section("errors")
    if section is None:
        return []
    if not isinstance(section, list):
        report_problem(f"{config.where('errors')}: 'errors' must be a list of rules", strict=strict, problems=problems)
        return []
    rules: list[ErrorRule] = []
    for i, entry in enumerate(section):
        where = config.where("errors", i)
        if not isinstance(entry, dict) or not isinstance(entry.get("category"), str) or not entry["category"]:
            report_problem(
                f"{where}: an error rule needs 'category' and one of 'class', 'status_code', 'message'",
                strict=strict,
                problems=problems,
            )
            continue
        unknown = set(entry) - {"category", "class", "status_code", "message", "severity"}
        status = entry.get("status_code")
        severity = entry.get("severity")
        if unknown or (status is not None and (not isinstance(status, int) or not 100 <= status <= 599)):
            what = f"unknown key {sorted(unknown)[0]!r}" if unknown else f"status_code {status!r} is not an HTTP status"
            report_problem(f"{where}: {what}", strict=strict, problems=problems)
            continue
        if severity is not None and severity not in semconv.ERROR_SEVERITIES:
            report_problem(
                f"{config.where('errors', i, 'severity')}: severity {severity!r} is not one of "
                f"{', '.join(semconv.ERROR_SEVERITIES)}",
                strict=strict,
                problems=problems,
            )
            continue
        try:
            message = re.compile(entry["message"]) if entry.get("message") else None
        except re.error as exc:
            report_problem(
                f"{config.where('errors', i, 'message')}: invalid regular expression: {exc}",
                strict=strict,
                problems=problems,
            )
            continue
        if entry.get("class") is None and status is None and message is None and severity is None:
            report_problem(
                f"{where}: an error rule needs one of 'class', 'status_code', 'message' (or only 'severity')",
                strict=strict,
                problems=problems,
            )
            continue
        rules.append(ErrorRule(entry["category"], entry.get("class"), status, message, severity))
    return rules


# The classifier without rules of a config file: what classify_error uses before configuration.
BUILTIN_CLASSIFIER = ErrorClassifier()


def active_classifier() -> ErrorClassifier:
    """The configured classifier (with the config file's rules), else the built-in one."""
    classifier = runtime.current().classifier
    return BUILTIN_CLASSIFIER if classifier is None else classifier


def classify_error(exc: BaseException | None = None, *, status_code: int | None = None) -> str:
    """The category of an exception (its chain) or an HTTP status: timeout, network, ..."""
    return active_classifier().classify(exc, status_code=status_code)

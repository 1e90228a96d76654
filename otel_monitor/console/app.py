"""The console's Starlette app: OTLP/HTTP ingest, the JSON API and the web UI.

Security: with a token (``OTEL_MONITOR_CONSOLE_TOKEN``, at least 16
characters) every request, OTLP included, must carry it as ``Authorization:
Bearer <token>`` or the cookie the UI sets after ``/?token=<token>``;
comparison is constant-time.  The cookie is signed with a key drawn at start
(it reveals nothing of the token), expires after 12 hours, and is ``Secure``
over TLS.  Without a token (loopback only) the ``Host`` header must be a
loopback name (``localhost`` or any 127.0.0.0/8 or ::1 address), so a web page
cannot reach the console through DNS rebinding.  A state-changing request
(anything but GET, HEAD and OPTIONS: an alert acknowledgement, OTLP ingest)
sent by a browser from another origin (its ``Origin`` or ``Sec-Fetch-Site``
says so: another loopback port is another origin) gets 403.  The UI may not
be framed.  Bodies over the limit get 413; a malformed OTLP body gets 400
naming the problem.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import ipaddress
import json
import logging
import secrets
import threading
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from http.cookies import SimpleCookie
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

try:
    import starlette  # noqa: F401
    import uvicorn  # noqa: F401
except ImportError as exc:  # pragma: no cover - depends on the installed extras
    raise ImportError(f'the console needs its extra: pip install "otel-monitor[console]" ({exc})') from exc

from google.protobuf import json_format
from google.rpc.status_pb2 import Status
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceResponse
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceResponse
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse
from starlette.applications import Starlette
from starlette.requests import ClientDisconnect, Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Receive, Scope, Send

from otel_monitor.config.file import EMPTY, ConfigFile
from otel_monitor.console import api, openapi
from otel_monitor.console.alerts import AlertBook, WebhookNotifier
from otel_monitor.console.persist import RequestLog
from otel_monitor.console.rollups import HourlyRollups
from otel_monitor.console.store import Limits, Store
from otel_monitor.console.uptime import ROUTE as UPTIME_ROUTE
from otel_monitor.console.uptime import UptimeBook
from otel_monitor.console.validate import Rejections, clean_items
from otel_monitor.otlp.decode import FLATTEN, OTLPDecodeError, decompress, media_type, parse_request
from otel_monitor.semantics.alert_timing import load_runbook_base
from otel_monitor.semantics.slo import load_slos
from otel_monitor.semantics.uptime import load_uptime

_log = logging.getLogger("otel_monitor.console")
STATIC = Path(__file__).parent / "static"
COOKIE = "otel_monitor_console_token"
DEFAULT_MAX_BODY = 16 * 1024 * 1024
_RESPONSES = {
    "traces": ExportTraceServiceResponse,
    "metrics": ExportMetricsServiceResponse,
    "logs": ExportLogsServiceResponse,
}
_ADD = {"traces": Store.add_spans, "metrics": Store.add_metric_points, "logs": Store.add_logs}
# The partial_success field counting what a request had refused, per signal.
_REJECTED_FIELD = {"traces": "rejected_spans", "metrics": "rejected_data_points", "logs": "rejected_log_records"}
_PROTOBUF_TYPES = ("application/x-protobuf", "application/protobuf")
# google.rpc.Code values for the HTTP answers (the OTLP/HTTP error body is a google.rpc.Status).
_INVALID_ARGUMENT, _RESOURCE_EXHAUSTED = 3, 8
MIN_TOKEN_LENGTH = 16
COOKIE_LIFETIME_S = 12 * 3600
_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def is_loopback_name(host: str) -> bool:
    """``localhost`` or a loopback address (all of 127.0.0.0/8, ``::1``), brackets allowed."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def declared_funnels(config: ConfigFile) -> dict[str, list[str]]:
    """``funnels:`` as journey -> steps; tolerant of ``{name: [steps]}`` and ``{name: {steps: [...]}}``."""
    raw = config.section("funnels")
    out: dict[str, list[str]] = {}
    if not isinstance(raw, dict):
        return out
    for name, value in raw.items():
        steps = value.get("steps") if isinstance(value, dict) else value
        if isinstance(steps, list):
            out[str(name)] = [str(s) for s in steps]
    return out


@dataclass(frozen=True)
class Receipt:
    """What became of one export request: how many of its items were refused, and why."""

    signal: str
    rejected: int = 0
    reasons: str = ""

    def response(self) -> Any:
        """The signal's ``Export*ServiceResponse``, with ``partial_success`` when items were refused."""
        reply = _RESPONSES[self.signal]()
        if self.rejected:
            setattr(reply.partial_success, _REJECTED_FIELD[self.signal], self.rejected)
            reply.partial_success.error_message = self.reasons
        return reply


class Console:
    """One console: its store, alerts, persistence and limits."""

    def __init__(
        self,
        config: ConfigFile = EMPTY,
        limits: Limits | None = None,
        db: str | None = None,
        token: str | None = None,
        max_body: int = DEFAULT_MAX_BODY,
        alert_webhook: str | None = None,
    ) -> None:
        self.config = config
        self.store = Store(load_slos(config), limits)
        self.funnels = declared_funnels(config)
        # Probed URLs and health checks against the config file's uptime: objectives.
        self.uptime = UptimeBook(load_uptime(config))
        self.token = token or None
        self.max_body = max_body
        self.request_log = RequestLog(db) if db else None
        # The 7- and 30-day views: complete hours compacted into the same file.
        self.hourly = HourlyRollups(db) if db else None
        self.rejections = Rejections()
        notifier = WebhookNotifier(alert_webhook) if alert_webhook else None
        self.alerts = AlertBook(
            self.store,
            self.request_log.acknowledge if self.request_log else None,
            journal=self.request_log,
            notifier=notifier,
        )
        self.alerts.runbook_base = load_runbook_base(config)
        self.alerts.uptime = self.uptime
        if self.request_log is not None:
            # Pending and firing alerts keep their start, and the history its entries, across a restart.
            self.alerts.restore(self.request_log.alert_state(), self.request_log.resolved_alerts())
        # With --db the stored requests are replayed while the console already
        # serves (:meth:`replay`); until then requests received are stored only,
        # and replayed after the older ones, in arrival order.
        self.replaying = self.request_log is not None
        self.replay_progress = {"replayed": 0, "total": 0}
        self._handoff = threading.Lock()
        # Called after each replayed batch: tests hold the replay there.
        self.replay_hook: Callable[[], None] | None = None
        # Where OTLP/gRPC listens (None: off), named to gRPC clients that reach the HTTP port.
        self.grpc_port: int | None = None

    def replay(self, batch: int = 64) -> None:
        """Rebuild the store from the request log, batch by batch (memory: one batch), then go live.

        Requests that arrive meanwhile are appended to the log and come in later
        batches, so the store sees everything in arrival order; the switch to
        live ingest happens under the lock ``receive`` takes, after a last
        batch found nothing more. A stored request that no longer decodes is
        skipped and counted.
        """
        log = self.request_log
        if log is None or not self.replaying:
            return
        replayed = skipped = 0
        last_id = 0
        try:
            self.alerts.acknowledged.update(log.acknowledgements())
            self.replay_progress["total"] += log.count()
            while True:
                rows = log.after(last_id, batch)
                if not rows:
                    with self._handoff:
                        rows = log.after(last_id, batch)
                        if not rows:
                            self.replaying = False
                            break
                for row_id, received_ns, signal, body in rows:
                    last_id = row_id
                    if not replayed:
                        # Baselines are judged against when the console first saw data.
                        self.store.started_ns = min(self.store.started_ns, received_ns)
                    try:
                        self.ingest(signal, parse_request(signal, body, "application/x-protobuf"))
                    except OTLPDecodeError:
                        skipped += 1
                    replayed += 1
                self.replay_progress["replayed"] = replayed
                if self.replay_hook is not None:
                    self.replay_hook()
        except Exception:  # noqa: BLE001 - the console keeps serving what it has; the log says what broke
            _log.exception("otel-monitor console: replay of %s stopped after %d requests", log.path, replayed)
        finally:
            self.replaying = False
        _log.info(
            "otel-monitor console: replayed %d stored requests from %s%s",
            replayed,
            log.path,
            f" ({skipped} no longer decode, skipped)" if skipped else "",
        )

    def start_replay(self) -> threading.Thread | None:
        """:meth:`replay` in a background thread (the server is already listening)."""
        if not self.replaying:
            return None
        thread = threading.Thread(target=self.replay, name="otel-monitor-console-replay", daemon=True)
        thread.start()
        return thread

    def ingest(self, signal: str, message: Any) -> Receipt:
        # Validated here, on live ingest and on replay alike: nothing unusable is stored.
        refused = Rejections()
        items = clean_items(signal, FLATTEN[signal](message), refused)
        _ADD[signal](self.store, items)
        if signal == "metrics":
            self.uptime.add_points(items)
        if not refused.counts:
            return Receipt(signal)
        self.rejections.counts.update(refused.counts)
        reasons = "; ".join(f"{n} {reason}" for (_, reason), n in refused.counts.most_common())
        return Receipt(signal, refused.total(), f"refused: {reasons}")

    def receive(self, signal: str, body: bytes, content_type: str | None, encoding: str | None) -> Receipt:
        """Decode, aggregate and (with ``--db``) keep one export request; raises OTLPDecodeError.

        OTLP/HTTP and OTLP/gRPC requests alike come here.
        """
        raw = decompress(body, encoding, self.max_body)
        message = parse_request(signal, raw, content_type)
        if self.request_log is None:
            return self.ingest(signal, message)
        is_protobuf = "protobuf" in (content_type or "")
        receipt = Receipt(signal)
        with self._handoff:
            if self.replaying:  # stored now, aggregated when the replay reaches it
                self.replay_progress["total"] += 1
            else:
                receipt = self.ingest(signal, message)
            self.request_log.append(signal, raw if is_protobuf else message.SerializeToString())
        return receipt

    def close(self) -> None:
        if self.alerts.notifier is not None:
            self.alerts.notifier.close()
        if self.request_log is not None:
            self.request_log.close()
        if self.hourly is not None:
            self.hourly.close()


class _TooLarge(Exception):
    pass


async def _read_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise _TooLarge
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise _TooLarge
        chunks.append(chunk)
    return b"".join(chunks)


def _status(status: int, code: int, message: str, protobuf: bool) -> Response:
    """An OTLP/HTTP error: a ``google.rpc.Status``, protobuf-encoded for protobuf requests, else JSON."""
    body = Status(code=code, message=message)
    if protobuf:
        return Response(body.SerializeToString(), status_code=status, media_type="application/x-protobuf")
    return JSONResponse(json_format.MessageToDict(body), status_code=status)


_grpc_hint_logged = threading.Event()


def grpc_hint(console: Console) -> str:
    """Where a gRPC client should go instead; logged once per console run."""
    if console.grpc_port:
        hint = (
            f"this is the console's OTLP/HTTP port: send OTLP/gRPC to port {console.grpc_port}, "
            f"or OTLP/HTTP here (OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf)"
        )
    else:
        hint = (
            "this is the console's OTLP/HTTP port and OTLP/gRPC is off (--grpc-port 0): "
            "send OTLP/HTTP here (OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf)"
        )
    if not _grpc_hint_logged.is_set():
        _grpc_hint_logged.set()
        _log.warning("otel-monitor console: a gRPC client reached the OTLP/HTTP port; %s", hint)
    return hint


def _ingest_endpoint(signal: str) -> Any:
    async def endpoint(request: Request) -> Response:
        console: Console = request.app.state.console
        content_type = request.headers.get("content-type")
        kind = media_type(content_type)
        protobuf = kind in _PROTOBUF_TYPES
        if not protobuf and kind != "application/json":
            message = (
                grpc_hint(console)
                if kind.startswith("application/grpc")
                else f"unsupported Content-Type {content_type!r}; use application/x-protobuf or application/json"
            )
            return _status(415, _INVALID_ARGUMENT, message, protobuf=False)
        try:
            body = await _read_body(request, console.max_body)
        except _TooLarge:
            return _status(413, _RESOURCE_EXHAUSTED, f"body exceeds the {console.max_body} byte limit", protobuf)
        except ClientDisconnect:
            return Response(status_code=400)
        try:
            receipt = console.receive(signal, body, content_type, request.headers.get("content-encoding"))
        except OTLPDecodeError as exc:
            return _status(400, _INVALID_ARGUMENT, str(exc), protobuf)
        reply = receipt.response()
        if not protobuf:
            return JSONResponse(json_format.MessageToDict(reply))
        return Response(reply.SerializeToString(), media_type="application/x-protobuf")

    return endpoint


async def _index(request: Request) -> Response:
    return FileResponse(
        STATIC / "index.html",
        headers={
            "Cache-Control": "no-store",
            "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; style-src 'self'; "
            "frame-ancestors 'none'",
            "X-Frame-Options": "DENY",
            "X-Content-Type-Options": "nosniff",
            "Referrer-Policy": "no-referrer",
        },
    )


class TokenGate:
    """ASGI middleware: cross-origin writes refused; token check (constant-time) or, without one, loopback Host."""

    def __init__(self, app: ASGIApp, token: str | None, cookie_lifetime: float = COOKIE_LIFETIME_S) -> None:
        if token is not None and token and len(token) < MIN_TOKEN_LENGTH:
            raise ValueError(f"the console token must be at least {MIN_TOKEN_LENGTH} characters")
        self.app = app
        self.token = token.encode() if token else None
        # The cookie is an expiry signed with a key of this run: it tells
        # nothing of the token, and a stolen one stops working.
        self._cookie_key = secrets.token_bytes(32)
        self.cookie_lifetime = cookie_lifetime

    def cookie_value(self, expires: int) -> str:
        mac = hmac.new(self._cookie_key, f"otel-monitor-console:{expires}".encode(), hashlib.sha256).hexdigest()
        return f"{expires}.{mac}"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        if scope.get("method", "GET") not in _SAFE_METHODS and not _same_origin(scope, headers):
            await _deny(
                send,
                403,
                "cross-origin request refused: state-changing requests must come from "
                "the console's own pages or from a non-browser client",
            )
            return
        if self.token is None:
            raw = headers.get(b"host", b"").decode("latin-1")
            host = raw.split("]")[0] + "]" if raw.startswith("[") else raw.rsplit(":", 1)[0]
            if host and not is_loopback_name(host):
                await _deny(send, 403, "the console answers loopback Host names only (set a token to serve others)")
                return
            await self.app(scope, receive, send)
            return
        query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
        if "token" in query and scope["path"] == "/" and self._matches(query["token"][0].encode()):
            # Trade the token in the URL for a cookie, and drop it from the address bar.
            expires = int(time.time() + self.cookie_lifetime)
            secure = "; Secure" if scope.get("scheme") == "https" else ""
            cookie = (
                f"{COOKIE}={self.cookie_value(expires)}; HttpOnly; SameSite=Strict; Path=/; "
                f"Max-Age={int(self.cookie_lifetime)}{secure}"
            )
            await send(
                {
                    "type": "http.response.start",
                    "status": 303,
                    "headers": [(b"location", b"/"), (b"set-cookie", cookie.encode())],
                }
            )
            await send({"type": "http.response.body", "body": b""})
            return
        if self._matches(self._bearer(headers)) or self._cookie_matches(headers):
            await self.app(scope, receive, send)
            return
        await _deny(send, 401, "missing or wrong token: send 'Authorization: Bearer <token>' or open /?token=<token>")

    def _matches(self, supplied: bytes | None) -> bool:
        return supplied is not None and self.token is not None and hmac.compare_digest(supplied, self.token)

    @staticmethod
    def _bearer(headers: dict[bytes, bytes]) -> bytes | None:
        auth = headers.get(b"authorization", b"")
        return auth[7:].strip() if auth[:7].lower() == b"bearer " else None

    def _cookie_matches(self, headers: dict[bytes, bytes]) -> bool:
        cookie: SimpleCookie = SimpleCookie()
        with contextlib.suppress(Exception):
            cookie.load(headers.get(b"cookie", b"").decode("latin-1"))
        if COOKIE not in cookie:
            return False
        expires, _, _ = cookie[COOKIE].value.partition(".")
        if not expires.isdigit() or len(expires) > 12 or int(expires) < time.time():
            return False
        return hmac.compare_digest(cookie[COOKIE].value.encode(), self.cookie_value(int(expires)).encode())


def _same_origin(scope: Scope, headers: dict[bytes, bytes]) -> bool:
    """False when a browser says the request comes from another origin (a page on another port included).

    Clients that are not browsers (OTLP exporters, curl) send neither header.
    """
    site = headers.get(b"sec-fetch-site")
    if site is not None and site not in (b"same-origin", b"none"):
        return False
    origin = headers.get(b"origin")
    if origin is None:
        return True
    host = headers.get(b"host", b"").decode("latin-1")
    return origin.decode("latin-1") == f"{scope.get('scheme', 'http')}://{host}"


async def _deny(send: Send, status: int, message: str) -> None:
    body = json.dumps({"error": message}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})


async def _trim_in_steps(store: Store, per_step: int = 50) -> None:
    """:meth:`Store.trim` a few services at a time, handing the event loop back in between."""
    now_ns = time.time_ns()
    with store.lock:
        services = list(store.rollups)
    for i in range(0, len(services), per_step):
        store.trim(now_ns, services[i : i + per_step])
        await asyncio.sleep(0)
    store.trim_shared(now_ns)


def create_app(console: Console, evaluate_every: float = 10.0) -> ASGIApp:
    """The ASGI app serving OTLP ingest, the API and the UI for ``console``."""

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async def tick() -> None:
            while True:
                await asyncio.sleep(evaluate_every)
                if console.replaying:  # alerts judge complete data only
                    continue
                try:
                    await console.alerts.evaluate_in_steps()
                    if console.hourly is not None:  # before trim: an hour is compacted long before it goes
                        console.hourly.compact(console.store, time.time_ns())
                    await _trim_in_steps(console.store)
                except Exception:  # noqa: BLE001 - the console keeps serving; the log says what broke
                    _log.exception("otel-monitor console: alert evaluation failed")

        task = asyncio.create_task(tick())
        try:
            yield
        finally:
            task.cancel()

    routes = [
        Route("/", _index),
        *(Route(f"/v1/{signal}", _ingest_endpoint(signal), methods=["POST"]) for signal in FLATTEN),
        *api.ROUTES,
        openapi.ROUTE,
        UPTIME_ROUTE,
        Mount("/static", StaticFiles(directory=STATIC), name="static"),
    ]
    app = Starlette(routes=routes, lifespan=lifespan)
    app.state.console = console
    return TokenGate(app, console.token)

"""``otel-monitor console``: run the local OTLP receiver and web console.

In-process use (tests, ``make demo``)::

    handle = serve(port=0)          # 0 picks a free port
    print(handle.url)               # http://127.0.0.1:NNNNN
    ...
    handle.stop()
"""

from __future__ import annotations

import argparse
import ipaddress
import logging
import os
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from otel_monitor.config.file import EMPTY, ConfigFile
from otel_monitor.config.settings import BY_KEY, resolve
from otel_monitor.console.app import DEFAULT_MAX_BODY, MIN_TOKEN_LENGTH, Console, create_app
from otel_monitor.console.server import server_options
from otel_monitor.console.store import Limits
from otel_monitor.console.wrong_port import protocol_for

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 4318  # the OTLP/HTTP default: an app with no configuration reports here
DEFAULT_GRPC_PORT = 4317  # the OTLP/gRPC default
TOKEN_ENV = BY_KEY["console_token"].env
ALERT_WEBHOOK_ENV = BY_KEY["console_alert_webhook"].env
STALE_AFTER = BY_KEY["console_stale_after"]
MAX_SERVICES = BY_KEY["console_max_services"]
MAX_INSTANCES = BY_KEY["console_max_instances"]
STALE_INTERVALS = BY_KEY["console_stale_intervals"]
CLIENT_ERRORS_FAIL = BY_KEY["client_errors_fail"]


class ConsoleStartError(RuntimeError):
    """The console refuses to start; the message says why and what to do."""


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


@dataclass
class ServerHandle:
    """A console running in a background thread."""

    console: Console
    server: Any
    thread: threading.Thread
    host: str
    port: int
    grpc: Any = None  # the GrpcReceiver, when OTLP/gRPC is on

    @property
    def grpc_port(self) -> int | None:
        return self.grpc.port if self.grpc is not None else None

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def wait_replayed(self, timeout: float = 60.0) -> None:
        """Return once the stored requests (``--db``) are replayed; TimeoutError after ``timeout`` s."""
        deadline = time.monotonic() + timeout
        while self.console.replaying:
            if time.monotonic() > deadline:
                raise TimeoutError(f"the console was still replaying after {timeout} s")
            time.sleep(0.02)

    def stop(self, timeout: float = 10.0) -> None:
        if self.grpc is not None:
            self.grpc.stop()
        self.server.should_exit = True
        self.thread.join(timeout)
        self.console.close()

    def __enter__(self) -> ServerHandle:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _load_config(config_path: str | None) -> ConfigFile:
    if not config_path:
        return EMPTY
    from otel_monitor.config.file import load_config_file

    return load_config_file(config_path)


def build_console(
    host: str = DEFAULT_HOST,
    db: str | None = None,
    config_path: str | None = None,
    token: str | None = None,
    limits: Limits | None = None,
    max_body: int = DEFAULT_MAX_BODY,
    alert_webhook: str | None = None,
) -> Console:
    """A :class:`Console`, after the start-up checks (token required off loopback)."""
    token = token if token is not None else os.environ.get(TOKEN_ENV) or None
    if not is_loopback(host) and not token:
        raise ConsoleStartError(
            f"refusing to listen on {host}: the console is open to anyone who can reach it. "
            f"Set {TOKEN_ENV} to a long random value (clients then send 'Authorization: Bearer <token>'), "
            f"or listen on 127.0.0.1."
        )
    if token and len(token) < MIN_TOKEN_LENGTH:
        raise ConsoleStartError(
            f"{TOKEN_ENV} is {len(token)} characters long: use at least {MIN_TOKEN_LENGTH} "
            f"random ones (python -c 'import secrets; print(secrets.token_urlsafe(24))')"
        )
    return Console(
        _load_config(config_path), limits=limits, db=db, token=token, max_body=max_body, alert_webhook=alert_webhook
    )


def serve(
    host: str = DEFAULT_HOST,
    port: int = DEFAULT_PORT,
    db: str | None = None,
    config_path: str | None = None,
    token: str | None = None,
    limits: Limits | None = None,
    max_body: int = DEFAULT_MAX_BODY,
    evaluate_every: float = 10.0,
    on_replay_batch: Callable[[], None] | None = None,
    alert_webhook: str | None = None,
    grpc_port: int | None = None,
    grpc_optional: bool = False,
    prepare: Callable[[Console], None] | None = None,
) -> ServerHandle:
    """Start a console in a background thread; returns once it accepts connections.

    With ``db``, the stored requests are replayed after that, in the
    background; ``on_replay_batch`` is called after each replayed batch.
    ``grpc_port`` (0 picks a free one) also serves OTLP/gRPC there; None: off.
    With ``grpc_optional``, a gRPC port that cannot be opened is logged and
    the console serves OTLP/HTTP only (the default port, not one asked for).
    ``prepare`` is called with the console before anything is received or replayed.
    """
    import uvicorn

    console = build_console(host, db, config_path, token, limits, max_body, alert_webhook)
    console.replay_hook = on_replay_batch
    if prepare is not None:
        prepare(console)
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host.strip("[]"), port))
    except OSError as exc:
        sock.close()
        raise ConsoleStartError(f"cannot listen on {host}:{port}: {exc.strerror}") from None
    receiver = _grpc_receiver(console, host, grpc_port, sock, grpc_optional) if grpc_port is not None else None
    options = {**server_options(), "http": protocol_for(console)}
    config = uvicorn.Config(
        create_app(console, evaluate_every),
        log_level="warning",
        access_log=False,
        lifespan="on",
        timeout_graceful_shutdown=2,
        **options,
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, name="otel-monitor-console", daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            if receiver is not None:
                receiver.stop(0)
            raise ConsoleStartError("the console server did not start; see the log above")
        time.sleep(0.02)
    if receiver is not None:
        receiver.start()
    # Listening first: a large --db is replayed while the API already answers (with "replaying": true).
    console.start_replay()
    return ServerHandle(console, server, thread, host, sock.getsockname()[1], receiver)


def _grpc_receiver(console: Console, host: str, port: int, http_socket: socket.socket, optional: bool) -> Any:
    from otel_monitor.console.grpc_receiver import GrpcReceiver, GrpcStartError

    try:
        receiver = GrpcReceiver(console, host, port)
    except GrpcStartError as exc:
        if optional:
            logging.getLogger("otel_monitor.console").warning(
                "otel-monitor console: %s; serving OTLP/HTTP only (--grpc-port chooses another port)", exc
            )
            return None
        http_socket.close()
        raise ConsoleStartError(f"{exc}; choose another --grpc-port, or 0 to serve OTLP/HTTP only") from None
    console.grpc_port = receiver.port
    return receiver


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--host", default=DEFAULT_HOST, help=f"address to listen on (default 127.0.0.1; any other needs {TOKEN_ENV})"
    )
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help="port for OTLP/HTTP, UI and API (default 4318)")
    parser.add_argument(
        "--grpc-port",
        type=int,
        default=None,
        help=f"port for OTLP/gRPC (default {DEFAULT_GRPC_PORT}, or a free one with --port 0, "
        "skipped with a warning when in use; 0 turns it off)",
    )
    parser.add_argument("--db", help="SQLite file keeping everything received, so a restart loses nothing")
    parser.add_argument(
        "--alert-webhook",
        default=os.environ.get(ALERT_WEBHOOK_ENV) or None,
        metavar="URL",
        help="POST every alert that fires or resolves there, in Alertmanager's webhook format "
        f"(default ${ALERT_WEBHOOK_ENV})",
    )
    parser.add_argument(
        "--config",
        default=os.environ.get("OTEL_MONITOR_CONFIG"),
        help="the otel-monitor YAML file with SLOs and funnels (default $OTEL_MONITOR_CONFIG)",
    )
    defaults = Limits()
    parser.add_argument(
        "--stale-after",
        type=_seconds,
        metavar="SECONDS",
        help="seconds without data before a service or instance shows as stale and its checks "
        f"expire, while its metric export interval is unknown (default ${STALE_AFTER.env}, else "
        f"{STALE_AFTER.default}: three 60 s metric export intervals)",
    )
    parser.add_argument(
        "--stale-intervals",
        type=_setting_type(STALE_INTERVALS),
        metavar="N",
        help="number of its own metric export intervals (learnt from its exports) a sender may stay silent "
        f"before it shows as stale; 0 uses --stale-after for all (default ${STALE_INTERVALS.env}, else "
        f"{STALE_INTERVALS.default})",
    )
    parser.add_argument(
        "--client-errors-fail",
        action="store_true",
        default=None,
        help="count 4xx answers of services sending plain OpenTelemetry SDK data as failures, as "
        f"{CLIENT_ERRORS_FAIL.env}=true does in apps under otel-monitor (default ${CLIENT_ERRORS_FAIL.env}, "
        "else false: a 4xx is a success)",
    )
    parser.add_argument("--max-spans", type=int, default=defaults.max_spans, help="spans kept in memory")
    parser.add_argument("--max-logs", type=int, default=defaults.max_logs, help="log records kept in memory")
    parser.add_argument(
        "--max-services",
        type=_setting_type(MAX_SERVICES),
        metavar="N",
        help="services kept; past it the one heard from least recently is dropped with all kept of it "
        f"(default ${MAX_SERVICES.env}, else {MAX_SERVICES.default})",
    )
    parser.add_argument(
        "--max-instances",
        type=_setting_type(MAX_INSTANCES),
        metavar="N",
        help="instances kept; past it the one heard from least recently is dropped "
        f"(default ${MAX_INSTANCES.env}, else {MAX_INSTANCES.default})",
    )
    parser.add_argument(
        "--max-body", type=int, default=DEFAULT_MAX_BODY, help="largest request body in bytes (413 beyond)"
    )


def grpc_port(argument: int | None, http_port: int) -> int | None:
    """``--grpc-port``: None turns gRPC off (0); by default 4317, or a free port beside a free HTTP port."""
    if argument is None:
        return 0 if http_port == 0 else DEFAULT_GRPC_PORT
    return argument or None


def _seconds(raw: str) -> float:
    try:
        return float(STALE_AFTER.parse(raw))
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def stale_after_seconds(argument: float | None, environ: Mapping[str, str] | None = None) -> float:
    """``--stale-after``, else the setting's variable, else its default (a bad variable is reported by name)."""
    return float(_setting_value(STALE_AFTER, argument, environ))


def _setting_type(setting: Any) -> Any:
    def parse(raw: str) -> Any:
        try:
            return setting.parse(raw)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    return parse


def _setting_value(setting: Any, argument: Any, environ: Mapping[str, str] | None = None) -> Any:
    """The command-line value, else the setting's variable, else its default (a bad variable is reported by name)."""
    if argument is not None:
        return argument
    env = os.environ if environ is None else environ
    known = {setting.env: env[setting.env]} if setting.env in env else {}
    return resolve(environ=known).resolved[setting.key].value


def judge_as_asked(console: Console, args: argparse.Namespace) -> None:
    """Staleness and the 4xx rule from the command line, else their settings."""
    store = console.store
    store.stale_after_ns = int(stale_after_seconds(args.stale_after) * 1e9)
    store.export_cadence.intervals = float(_setting_value(STALE_INTERVALS, args.stale_intervals))
    store.client_errors_fail = bool(_setting_value(CLIENT_ERRORS_FAIL, args.client_errors_fail))


def console_limits(args: argparse.Namespace, environ: Mapping[str, str] | None = None) -> Limits:
    """The store's limits: each from the command line, else its setting's variable, else the default
    (a bad variable is reported by name and the default used)."""
    return Limits(
        max_spans=args.max_spans,
        max_logs=args.max_logs,
        max_services=int(_setting_value(MAX_SERVICES, args.max_services, environ)),
        max_instances=int(_setting_value(MAX_INSTANCES, args.max_instances, environ)),
    )


def run(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    limits = console_limits(args)
    try:
        handle = serve(
            args.host,
            args.port,
            args.db,
            args.config,
            None,
            limits,
            args.max_body,
            alert_webhook=args.alert_webhook,
            grpc_port=grpc_port(args.grpc_port, args.port),
            grpc_optional=args.grpc_port is None,
            prepare=lambda console: judge_as_asked(console, args),
        )
    except (ConsoleStartError, ValueError) as exc:
        print(f"otel-monitor console: {exc}", file=sys.stderr)
        return 2
    grpc_note = f"; OTLP/gRPC on {handle.host}:{handle.grpc_port}" if handle.grpc_port else ""
    print(
        f"otel-monitor console: {handle.url}  (OTLP/HTTP on {handle.url}/v1/traces, /v1/metrics, /v1/logs{grpc_note})",
        flush=True,
    )
    # Ctrl-C (KeyboardInterrupt) and SIGTERM (kill, systemd, a container's stop) both stop it cleanly.
    stopping = threading.Event()
    previous = None
    if threading.current_thread() is threading.main_thread():
        previous = signal.signal(signal.SIGTERM, lambda signum, frame: stopping.set())
    try:
        while handle.thread.is_alive() and not stopping.is_set():
            stopping.wait(0.5)
    except KeyboardInterrupt:
        pass
    finally:
        handle.stop()
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
    return 0

"""The SDK's OTLP/HTTP exporters, made lighter and fork-safe through their private members.

Two things otel-monitor does to those exporters need their internals
(compat: lean_otlp, and the fork handling every OTLP/HTTP exporter gets):

* spans sent by the SDK's exporter are encoded by :mod:`otel_monitor.otlp.encode`
  and gzipped at level 1 (:class:`FastSpanExporter`, :func:`speed_up_exporter`);
* every OTLP/HTTP client in the process is known (:func:`remember_new_clients`,
  :func:`known_clients`), so a forked child gets fresh connection pools and
  locks (:func:`fresh_connections_after_fork`).

Only the launcher imports this module: the configurator wraps the exporters
it builds and calls the fork handling.
"""

from __future__ import annotations

import contextlib
import copy
import sys
import threading
import weakref
from collections.abc import Sequence
from typing import Any

from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

from otel_monitor import patching


def _fast_compression(exporter: Any) -> bool:
    """Make an OTLP/HTTP exporter gzip at level 1 instead of 9; False if it is not one we know."""
    from opentelemetry.exporter.otlp.common.http import Compression

    from otel_monitor.otlp.encode import gzip_fast

    client = getattr(exporter, "_client", None)
    _remember_client(client)
    if client is None or not hasattr(client, "_compress") or not hasattr(client, "_compression"):
        return False
    if client._compression is Compression.GZIP:  # noqa: SLF001 - the SDK OTLP client's compression (compat: lean_otlp)
        client._compress = gzip_fast  # noqa: SLF001 - the SDK OTLP client's compression (compat: lean_otlp)
    return True


class FastSpanExporter(SpanExporter):
    """Sends spans through the SDK's OTLP/HTTP exporter, encoded by :mod:`otel_monitor.otlp.encode`.

    The transport, headers, retries and timeouts stay the SDK exporter's own;
    only the protobuf serialisation (and the gzip level) is ours.
    """

    def __init__(self, inner: Any) -> None:
        from otel_monitor.otlp.encode import encode_spans

        self.inner = inner
        self._encode = encode_spans

    @classmethod
    def wrap(cls, exporter: Any) -> Any:
        """``exporter`` made faster when it is the SDK's OTLP/HTTP span exporter; else unchanged."""
        _remember_client(getattr(exporter, "_client", None))  # a subclass too gets fresh pools after fork
        if type(exporter).__module__ != "opentelemetry.exporter.otlp.proto.http.trace_exporter":
            # otel_monitor.fast.otlp_exporters's encodes with ours already; importing the SDK's costs
            return exporter
        try:
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        except ImportError:
            return exporter
        if type(exporter) is not OTLPSpanExporter or not _fast_compression(exporter):
            return exporter
        return cls(exporter)

    def export(self, spans: Sequence[Any]) -> SpanExportResult:
        inner = self.inner
        if inner._shutdown:  # noqa: SLF001 - the SDK OTLP exporter's state and client
            return SpanExportResult.FAILURE
        try:
            data = self._encode(spans)
        except Exception:  # noqa: BLE001 - an unencodable attribute: let the SDK's encoder decide
            return inner.export(spans)
        result = inner._client.export(data)  # noqa: SLF001 - the SDK OTLP exporter's state and client
        return SpanExportResult.SUCCESS if result.success else SpanExportResult.FAILURE

    def shutdown(self) -> None:
        self.inner.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return bool(self.inner.force_flush(timeout_millis))


def speed_up_exporter(exporter: Any) -> Any:
    """Level-1 gzip for the SDK's OTLP/HTTP metric and log exporters (encoding stays theirs)."""
    _fast_compression(exporter)
    return exporter


# --- transport ------------------------------------------------------------

# The SDK's OTLP/HTTP exporter clients, for the after-fork reset.
_HTTP_CLIENTS: weakref.WeakSet[Any] = weakref.WeakSet()


def _remember_client(client: Any) -> None:
    """Note an OTLP/HTTP exporter client (anything with a ``_transport``) for the after-fork reset."""
    if client is not None and hasattr(client, "_transport"):
        with contextlib.suppress(TypeError):  # not weakly referenceable: not one of the SDK's
            _HTTP_CLIENTS.add(client)


def remember_new_clients() -> None:
    """Note every OTLP/HTTP exporter client built from now on, the app's own and subclasses' too."""
    import functools

    try:
        from opentelemetry.exporter.otlp.common.http import _OTLPHTTPClient
    except ImportError:
        return
    if patching.is_patched(_OTLPHTTPClient, "__init__"):
        return
    original = _OTLPHTTPClient.__init__

    @functools.wraps(original)
    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        original(self, *args, **kwargs)
        _remember_client(self)

    patching.replace(_OTLPHTTPClient, "__init__", __init__)


def known_clients() -> list[Any]:
    """Every OTLP/HTTP exporter client of the SDK in this process.

    Clients built after :func:`remember_new_clients` are noted as they are
    built. When the SDK's HTTP client module was first imported after
    configuration (the configured exporters are not OTLP/HTTP, the app builds
    its own), the heap is searched once for those built so far, and every
    later one is noted. The search cannot see objects frozen under the
    launcher (``gc.freeze``), which are those that existed before the app was
    imported: no OTLP/HTTP client is built by then unless ours, registered
    as the configurator wraps them.
    """
    module = sys.modules.get("opentelemetry.exporter.otlp.common.http")
    client_class = getattr(module, "_OTLPHTTPClient", None)
    if client_class is None:
        return []
    if not patching.is_patched(client_class, "__init__"):
        import gc

        remember_new_clients()
        for obj in gc.get_objects():
            if isinstance(obj, client_class):
                _remember_client(obj)
    return list(_HTTP_CLIENTS)


def _release_inherited_pools(manager: Any) -> None:
    """Make a urllib3 pool manager inherited over fork safe to drop, taking none of its locks.

    The parent's export thread may have held any of those locks at the instant
    of fork; in the child nobody would ever release them. Each connection
    pool's queue gets fresh locks, since urllib3 drains the queue when the
    pool is collected. Its idle sockets are closed: closing the child's copy
    sends nothing to the peer, so the parent's connection lives on.
    """
    for pool in list(getattr(getattr(manager, "pools", None), "_container", {}).values()):
        queue = getattr(pool, "pool", None)
        for condition in (getattr(queue, name, None) for name in ("not_empty", "not_full", "all_tasks_done")):
            if condition is not None:
                condition._at_fork_reinit()  # noqa: SLF001 - threading's own after-fork reset
        for connection in list(getattr(queue, "queue", ())):
            sock = getattr(connection, "sock", None)
            if sock is not None:
                sock.close()


def _fresh_pool_manager(manager: Any) -> Any:
    """A copy of a urllib3 pool manager (same settings) with no pools, no connections and no held lock."""
    pools = manager.pools
    fresh = copy.copy(manager)
    fresh.pools = type(pools)(pools._maxsize, dispose_func=getattr(pools, "dispose_func", None))  # noqa: SLF001 - urllib3 pool size, kept after fork
    _release_inherited_pools(manager)
    return fresh


def fresh_connections_after_fork() -> None:
    """After fork, in the child: fresh connection pools and locks for every OTLP/HTTP exporter.

    Parent and child would otherwise write to the same TCP connection (a
    pre-fork master keeps exporting), garbling both. Clearing the inherited
    pools is not enough: ``PoolManager.clear()`` takes locks the parent's
    export thread may have held at the instant of fork, and the child would
    wait for them forever. The pools are replaced instead, and the locks an
    export takes in them (the pools', a ``requests`` session's cookie jar,
    the client's shutdown event) are renewed without being taken; our own
    are renewed by :func:`otel_monitor.guard.renew_locks`.
    """
    for client in known_clients():
        with contextlib.suppress(Exception):
            transport = client._transport  # noqa: SLF001 - requests/urllib3 state renewed after fork
            if hasattr(transport, "forget_inherited_connections"):  # otel_monitor.pipeline.transport's
                transport.forget_inherited_connections()
            if hasattr(transport, "_pool"):  # urllib3
                transport._pool = _fresh_pool_manager(transport._pool)  # noqa: SLF001 - requests/urllib3 state renewed after fork
            session = getattr(transport, "_session", None)
            if session is not None and hasattr(getattr(session, "cookies", None), "_cookies_lock"):
                session.cookies._cookies_lock = threading.RLock()  # noqa: SLF001 - requests/urllib3 state renewed after fork
            for adapter in getattr(session, "adapters", {}).values():  # requests
                if hasattr(adapter, "poolmanager"):
                    adapter.poolmanager = _fresh_pool_manager(adapter.poolmanager)
                for manager in getattr(adapter, "proxy_manager", {}).values():
                    _release_inherited_pools(manager)
                adapter.proxy_manager = {}
        event = getattr(client, "_shutdown_event", None)
        if event is not None:  # its lock too may have been held; the flag stays
            event._at_fork_reinit()  # noqa: SLF001 - threading's own after-fork reset


def one_attempt_from_now_on() -> None:
    """At exit each final export is tried once: no backoff sleeps while the process waits to end.

    The SDK's HTTP clients stop retrying once their shutdown event is set; the
    providers set it only after their final flush, so a receiver that is down
    would hold the exit through the whole retry schedule.
    """
    for client in known_clients():
        client._shutdown_event.set()  # noqa: SLF001 - the SDK OTLP client's shutdown event

"""Benchmark only: the SDK's own configurator, its OTLP/HTTP exporters on the SDK's urllib3 transport.

The exporters' default transport imports ``requests``; otel-monitor gives
them the SDK's ``Urllib3HTTPTransport`` instead, so the floor does the same
to stay a floor. Nothing here comes from otel-monitor.
"""

from __future__ import annotations

from typing import Any

from opentelemetry.sdk._configuration import _OTelSDKConfigurator


class _Urllib3Transports(dict):  # type: ignore[type-arg]
    """``exporter_args_map``: a urllib3 transport for each OTLP/HTTP exporter the SDK builds."""

    def get(self, exporter_class: Any, default: Any = None) -> Any:
        if getattr(exporter_class, "__module__", "").startswith("opentelemetry.exporter.otlp.proto.http"):
            from opentelemetry.exporter.http.transport._urllib3 import Urllib3HTTPTransport

            return {"_transport": Urllib3HTTPTransport()}
        return default

    def __bool__(self) -> bool:  # the SDK replaces an empty map with {}
        return True


class Urllib3Configurator(_OTelSDKConfigurator):
    def _configure(self, **kwargs: Any) -> None:
        super()._configure(exporter_args_map=_Urllib3Transports(), **kwargs)

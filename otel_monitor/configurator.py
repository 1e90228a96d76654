"""The configurator: builds providers, processors, sampler and exporters."""

from __future__ import annotations

from typing import Any

from opentelemetry.sdk._configuration import _OTelSDKConfigurator


class MonitorConfigurator(_OTelSDKConfigurator):
    def _configure(self, **kwargs: Any) -> None:
        super()._configure(**kwargs)

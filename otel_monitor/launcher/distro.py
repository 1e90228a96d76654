"""The distro: environment defaults for the launcher, and instrumentor options.

It only sets defaults (``os.environ.setdefault``: every variable the user set
wins) and decides how each instrumentor is loaded; the configurator wires the
SDK.
"""

from __future__ import annotations

import os
from typing import Any

# The module is marked `# type: ignore` as a whole, so mypy sees none of its names.
from opentelemetry.instrumentation.distro import BaseDistro  # type: ignore[attr-defined]

from otel_monitor.launcher.instrumentations import DISABLED_ENV, USER_DISABLED_ENV

DEFAULTS: dict[str, str] = {
    "OTEL_TRACES_EXPORTER": "otlp",
    "OTEL_METRICS_EXPORTER": "otlp",
    "OTEL_LOGS_EXPORTER": "otlp",
    "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
    # The bundled collector and `otel-monitor console` both listen here.
    "OTEL_EXPORTER_OTLP_ENDPOINT": "http://localhost:4318",
    "OTEL_EXPORTER_OTLP_COMPRESSION": "gzip",
    # Upstream retries a failed export for 10 s while holding the batch; a
    # collector outage then delays shutdown and piles up memory. 5 s is ample
    # on a LAN and keeps exits prompt.
    "OTEL_EXPORTER_OTLP_TIMEOUT": "5",
    # The SDK's default ("trace_based") offers every measurement made inside a
    # sampled span to an exemplar reservoir: about a fifth of the cost of each
    # recording. Set it to trace_based to get exemplars.
    "OTEL_METRICS_EXEMPLAR_FILTER": "always_off",
    # Stable HTTP and database attribute names (http.response.status_code,
    # db.system.name, ...) from every contrib instrumentation, as FastAPI's own
    # telemetry and our rules use; contrib still defaults to the old names.
    "OTEL_SEMCONV_STABILITY_OPT_IN": "http,database",
}


def apply_defaults(environ: Any = os.environ) -> None:
    for key, value in DEFAULTS.items():
        environ.setdefault(key, value)


class MonitorDistro(BaseDistro):
    """otel-monitor's distro for ``opentelemetry-instrument``."""

    def _configure(self, **kwargs: Any) -> None:
        apply_defaults()
        from otel_monitor.launcher.sdk_env import check_before_sdk_import, exit_launcher

        try:
            check_before_sdk_import(DEFAULTS)
        except SystemExit as exc:  # strict mode: the one line is printed
            exit_launcher(exc.code)
        # We load instrumentors ourselves, lazily (see otel_monitor.launcher.instrumentations):
        # keep the user's list for that, and make the launcher's own loop a no-op.
        if USER_DISABLED_ENV not in os.environ:
            os.environ[USER_DISABLED_ENV] = os.environ.get(DISABLED_ENV, "")
        os.environ[DISABLED_ENV] = "*"

    def load_instrumentor(self, entry_point: Any, **kwargs: Any) -> None:
        """Instantiate and instrument one entry point with the options given.

        :class:`~otel_monitor.launcher.instrumentations.InstrumentationLoader` calls this
        with the tuned options of :func:`~otel_monitor.launcher.instrumentations.tuned_kwargs`.
        """
        instrumentor = entry_point.load()
        instrumentor().instrument(**kwargs)

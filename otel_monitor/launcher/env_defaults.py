"""The environment defaults otel-monitor's distro sets (every variable the user set wins).

Kept apart from the distro: ``otel_monitor.configure()`` checks the standard
variables against them before anything imports the instrumentation package,
which reads ``OTEL_PROPAGATORS`` as it is first imported.
"""

from __future__ import annotations

import os
from typing import Any

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

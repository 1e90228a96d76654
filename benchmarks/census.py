"""What each configuration exports per request: spans and log records, by name.

Run at low rate against an in-process decoding receiver, so it says what a
request costs in telemetry items; the throughput runs then say what it costs in
time, and their ratio is the cost per span.
"""

from __future__ import annotations

import urllib.error
import urllib.request
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchmarks.configurations import Configuration
from benchmarks.processes import AppServer, clean_environment, free_port
from otel_monitor.testing import OTLPSink


@dataclass
class Census:
    configuration: str
    endpoint: str
    requests: int
    span_names: dict[str, int] = field(default_factory=dict)
    log_records: int = 0

    @property
    def spans_per_request(self) -> float:
        return sum(self.span_names.values()) / self.requests if self.requests else 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "configuration": self.configuration,
            "endpoint": self.endpoint,
            "requests": self.requests,
            "spans_per_request": self.spans_per_request,
            "span_names": self.span_names,
            "log_records": self.log_records,
        }


def take_census(
    configuration: Configuration, app: str, endpoints: dict[str, str], requests: int, log_dir: Path
) -> list[Census]:
    """`requests` sequential requests per endpoint; spans and logs counted after the server flushed at exit."""
    results = []
    for endpoint, path in endpoints.items():
        with OTLPSink() as sink:
            port = free_port()
            env = clean_environment({**configuration.environment(sink.endpoint), **sink.env(), **configuration.env})
            server = AppServer(
                configuration.server_command(app, port),
                env,
                port,
                None,
                log_dir / f"census-{configuration.key}-{endpoint}.log",
            )
            # The readiness check is one more request to the same path, hence requests + 1 below.
            with server.start(ready_path=path):
                for _ in range(requests):
                    try:
                        with urllib.request.urlopen(server.base_url + path, timeout=10) as reply:
                            reply.read()
                    except urllib.error.HTTPError:
                        pass
            names: Counter[str] = Counter(span["name"] for span in sink.spans)
            results.append(Census(configuration.key, endpoint, requests + 1, dict(names), len(sink.logs)))
    return results

"""The local console: an OTLP/HTTP receiver with a web UI and JSON API.

``otel-monitor console`` receives what an instrumented app sends (on the
package's default port, 4318), aggregates it on ingest and serves the
overview, operations, errors, traces, journeys, alerts and health views.

- :mod:`.store`: bounded in-memory storage, aggregated on ingest
- :mod:`.aggregates`: the questions the views ask (percentiles, groups, funnels)
- :mod:`.alerts`: alerts evaluated locally from the SLO thresholds
- :mod:`.persist`: optional SQLite persistence (``--db``)
- :mod:`.app` / :mod:`.api`: the Starlette app (ingest, JSON API, UI)
- :mod:`.cli` / :mod:`.status`: the ``console`` and ``status`` commands
"""

from __future__ import annotations

"""Many threads and tasks at once: every child span under its own request, every request counted."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest

from otel_monitor.testing import OTLPSink
from tests.support.launch import launched

pytestmark = pytest.mark.slow

PER_KIND = 150
SERVER = 2


def test_concurrent_requests_keep_parentage_and_exact_counts(tmp_path):
    """150 async and 150 thread-pool requests from 16 client threads: correct parents, exact counts."""
    with OTLPSink() as sink:
        env = {**sink.env(), "APP_DATABASE_URL": f"sqlite:///{tmp_path / 'i.db'}"}
        with launched("tests.support.apps.basic_app:app", env) as app:
            paths = [f"/async-work/{i}" for i in range(PER_KIND)] + [f"/sync-work/{i}" for i in range(PER_KIND)]
            with ThreadPoolExecutor(16) as pool:
                statuses = list(pool.map(lambda p: app.get(p)[0], paths))
            assert statuses == [200] * len(paths)

            def counted(s: OTLPSink) -> dict[str, int]:
                return {
                    p["attributes"]["monitor.operation"]: p["count"]
                    for p in s.latest_points("monitor.operation.duration")
                }

            assert sink.wait_for(
                lambda s: counted(s).get("async_work") == PER_KIND and counted(s).get("sync_work") == PER_KIND
            )
            assert sink.wait_for(
                lambda s: sum(1 for sp in s.spans if sp["name"] in ("async_work", "sync_work")) == 2 * PER_KIND
            )
    counts = counted(sink)
    assert counts["GET /async-work/{n}"] == PER_KIND and counts["GET /sync-work/{n}"] == PER_KIND
    servers = {sp["span_id"]: sp for sp in sink.spans if sp["kind"] == SERVER}
    for child in (sp for sp in sink.spans if sp["name"] in ("async_work", "sync_work")):
        parent = servers[child["parent_span_id"]]
        assert parent["trace_id"] == child["trace_id"]
        assert parent["attributes"]["http.route"].startswith("/" + child["name"].replace("_", "-"))
    # One request, one trace: no two requests share a trace.
    assert len({sp["trace_id"] for sp in servers.values()}) == len(servers) == 2 * PER_KIND

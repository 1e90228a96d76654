"""Pre-fork servers: every worker exports, as its own instance, nothing counted twice."""

from __future__ import annotations

import json
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from otel_monitor.testing import OTLPSink
from tests.support.launch import launched

pytestmark = pytest.mark.slow

REQUESTS = 60


def request_counts(sink: OTLPSink) -> dict[str, int]:
    """Latest cumulative request count of /items/{item_id} per service.instance.id."""
    counts: dict[str, int] = {}
    for point in sink.latest_points("monitor.operation.duration"):
        if point["attributes"].get("monitor.operation") == "GET /items/{item_id}":
            instance = point["resource"]["service.instance.id"]
            counts[instance] = counts.get(instance, 0) + point["count"]
    return counts


def _export_picture(sink: OTLPSink) -> str:
    """What arrived, per instance: tells a worker that never exported from workers sharing one instance id."""
    points = sink.metric_points("monitor.operation.duration")
    instances = sorted({p["resource"]["service.instance.id"] for p in points})
    pids = sorted({str(p["resource"].get("process.pid")) for p in points})
    return (
        f"latest counts {request_counts(sink)}; metric points from instances {instances} and pids {pids}; "
        f"/items spans per instance {spans_by_instance(sink)}"
    )


def spans_by_instance(sink: OTLPSink) -> dict[str, int]:
    seen: dict[str, int] = {}
    for span in sink.spans:
        if span["attributes"].get("http.route") == "/items/{item_id}":
            instance = span["resource"]["service.instance.id"]
            seen[instance] = seen.get(instance, 0) + 1
    return seen


def find_both_workers(app, attempts: int = 20) -> dict[int, str]:
    """Concurrent /whoami calls until both workers answered: pid -> service.instance.id."""
    seen: dict[int, str] = {}
    with ThreadPoolExecutor(8) as pool:
        for _ in range(attempts):
            for status, body in pool.map(lambda _: app.get("/whoami"), range(16)):
                assert status == 200
                answer = json.loads(body)
                seen[answer["pid"]] = answer["instance"]
            if len(seen) >= 2:
                break
    assert len(seen) == 2, f"only saw workers {seen}"
    return seen


SERVERS = {
    "uvicorn --workers 2": ("uvicorn", ("--workers", "2")),
    "gunicorn uvicorn-worker": ("gunicorn", ("-k", "uvicorn.workers.UvicornWorker", "-w", "2")),
    "gunicorn uvicorn-worker --preload": ("gunicorn", ("-k", "uvicorn.workers.UvicornWorker", "-w", "2", "--preload")),
}


@pytest.mark.parametrize("server", list(SERVERS))
def test_every_worker_exports_as_its_own_instance_without_double_counting(server, tmp_path):
    """N requests over two workers: spans from both, distinct instance ids, metric counts summing to N."""
    program, args = SERVERS[server]
    with OTLPSink() as sink:
        env = {**sink.env(), "OTEL_SERVICE_NAME": "prefork", "APP_DATABASE_URL": f"sqlite:///{tmp_path / 'i.db'}"}
        with launched("tests.support.apps.basic_app:app", env, server=program, extra_args=args) as app:
            deadline = time.monotonic() + 30
            sent = 0
            # Keep-alive would pin one connection to one worker; urllib opens a new one per request.
            while sent < REQUESTS and time.monotonic() < deadline:
                assert app.get("/items/1")[0] == 200
                sent += 1
            assert sink.wait_for(lambda s: sum(request_counts(s).values()) == REQUESTS, timeout=20), _export_picture(
                sink
            )
            assert sink.wait_for(lambda s: sum(spans_by_instance(s).values()) == REQUESTS, timeout=20)
            workers = find_both_workers(app)
            assert sink.wait_for(
                lambda s: (
                    {
                        sp["resource"]["service.instance.id"]
                        for sp in s.spans
                        if sp["attributes"].get("http.route") == "/whoami"
                    }
                    >= set(workers.values())
                )
            )
    assert len(set(workers.values())) == 2, f"instance ids per worker pid: {workers}"
    assert sum(request_counts(sink).values()) == REQUESTS
    assert "deadlock" not in app.output.lower()

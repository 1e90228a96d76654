"""The console API's OpenAPI document: every /api route in it, and the API holding to it under schemathesis."""

from __future__ import annotations

import random
import time

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import response_schema_conformance, status_code_conformance
from starlette.routing import Route
from starlette.testclient import TestClient

from otel_monitor.console.app import Console, create_app
from otel_monitor.console.cli import serve
from tests.support.console_telemetry import post


def _document(app) -> dict:
    client = TestClient(app, base_url="http://127.0.0.1")
    response = client.get("/api/openapi.json")
    assert response.status_code == 200
    return response.json()


def test_every_api_route_is_in_the_openapi_document():
    """Each /api route and method of the app is a documented operation (a new endpoint needs its YAML)."""
    app = create_app(Console())
    document = _document(app)
    missing = []
    for route in app.app.routes:  # inside the token gate
        if not isinstance(route, Route) or not route.path.startswith("/api/"):
            continue
        path = route.path.replace(":path}", "}")
        for method in sorted(route.methods or {"GET"}):
            if method != "HEAD" and method.lower() not in document["paths"].get(path, {}):
                missing.append(f"{method} {path}")
    assert not missing, f"add YAML after '---' in these endpoints' docstrings: {missing}"
    assert document["openapi"].startswith("3.")


def test_openapi_document_parameters_resolve():
    """Every $ref in the document points at a declared component."""
    document = _document(create_app(Console()))
    refs: list[str] = []
    pending: list = [document["paths"]]
    while pending:
        node = pending.pop()
        if isinstance(node, dict):
            refs.extend(v for k, v in node.items() if k == "$ref")
            pending.extend(node.values())
        elif isinstance(node, list):
            pending.extend(node)
    assert refs
    for ref in refs:
        _, _, section, name = ref.split("/")  # '#/components/<section>/<name>'
        assert name in document["components"][section], ref


def _fill(url: str) -> None:
    """Spans (some failing), logs and metrics of two services, as an app would send them."""
    from benchmarks.console_ingest import log_batch, trace_batch

    rng = random.Random(7)
    now = time.time_ns()
    assert post(f"{url}/v1/traces", trace_batch(rng, now))[0] == 200
    assert post(f"{url}/v1/logs", log_batch(rng, now))[0] == 200


@pytest.fixture(scope="module")
def console_url():
    with serve(port=0, evaluate_every=3600) as handle:
        _fill(handle.url)
        yield handle.url


# The document does not depend on the data: built in-process, exercised against a live console.
# A stream of server-sent events never ends by itself: the API tests cover it instead.
schema = schemathesis.openapi.from_dict(_document(create_app(Console()))).exclude(path="/api/events")


@pytest.mark.slow
@schema.parametrize()
@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
def test_api_never_answers_500_to_what_its_document_allows(case, console_url):
    """schemathesis: requests built from the document never get a 5xx, and every status is documented."""
    case.call_and_validate(
        base_url=console_url,
        checks=[not_a_server_error, status_code_conformance, response_schema_conformance],
        timeout=30,
    )

"""Operation rules and the operation decorator / context manager."""

from __future__ import annotations

import asyncio
import textwrap

import pytest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import SpanKind

import otel_monitor
from otel_monitor import semconv
from otel_monitor.config.file import parse_config_text
from otel_monitor.config.settings import ConfigError
from otel_monitor.semantics.operations import load_operation_rules
from tests.support.stack import make_stack

RULES = textwrap.dedent("""
    operations:
      - name: checkout
        route: /checkout
        method: post
      - name: order_pages
        route: /orders/*
      - name: payment_api
        kind: client
        attributes: {server.address: "pay.*.example.com"}
      - name: image_analysis
        span_name: "^analyse "
""")


def span(name: str, kind: SpanKind = SpanKind.SERVER, **attributes) -> ReadableSpan:
    return ReadableSpan(name=name, kind=kind, attributes={k.replace("_", "."): v for k, v in attributes.items()})


@pytest.fixture
def rules():
    return load_operation_rules(parse_config_text(RULES, "ops.yaml"))


@pytest.mark.parametrize(
    "finished, expected",
    [
        (span("POST /checkout", http_route="/checkout", http_request_method="POST"), "checkout"),
        (span("GET /checkout", http_route="/checkout", http_request_method="GET"), "GET /checkout"),
        (span("GET /orders/{id}", http_route="/orders/{id}", http_request_method="GET"), "order_pages"),
        (span("POST", SpanKind.CLIENT, server_address="pay.eu.example.com"), "payment_api"),
        (span("analyse photo", SpanKind.INTERNAL), "image_analysis"),
        (span("GET", http_request_method="GET", url_path="/no/such/page/12345"), "GET"),
        (span("SELECT", SpanKind.CLIENT, db_system_name="sqlite"), None),
    ],
)
def test_rules_name_spans(rules, finished, expected):
    """Rules match by route, method, kind, attributes and span name; server spans fall back to METHOD route."""
    assert rules.name_for(finished) == expected


def test_fallback_never_uses_the_raw_path(rules):
    """Without a route the operation is the method alone, not the URL path."""
    name = rules.name_for(span("GET /users/8812", http_request_method="GET", url_path="/users/8812"))
    assert name == "GET" and "8812" not in name


def test_bad_rules_are_reported_with_file_and_line_and_skipped(caplog):
    """Each bad rule gives one file:line message; the good rules still load."""
    text = textwrap.dedent("""
        operations:
          - name: ok
            route: /ok
          - name: nothing
          - name: badkind
            kind: sideways
          - name: badre
            span_name: "(["
          - route: /no-name
    """)
    rules = load_operation_rules(parse_config_text(text, "ops.yaml"))
    assert [r.name for r in rules.rules] == ["ok"]
    for expected in (
        "ops.yaml:5: operation 'nothing' has no condition",
        "ops.yaml:7: kind 'sideways'",
        "ops.yaml:9: invalid regular expression",
        "ops.yaml:10: an operation rule needs a 'name'",
    ):
        assert expected in caplog.text


def test_strict_mode_raises_on_a_bad_rule():
    """With strict mode a bad rule stops configuration."""
    with pytest.raises(ConfigError, match=r"ops\.yaml:2: operation .x. has no condition"):
        load_operation_rules(
            parse_config_text("operations:\n  - name: x\n  - name: y\n    kind: no\n", "ops.yaml"), strict=True
        )


@pytest.fixture
def stack(otlp_sink):
    s = make_stack(otlp_sink)
    yield s
    s.close()


def operation_spans(sink) -> dict[str, dict]:
    return {s["name"]: s for s in sink.spans if semconv.MONITOR_OPERATION in s["attributes"]}


def test_decorator_and_context_managers_sync_and_async(stack, otlp_sink):
    """@operation on sync and async functions, `with` and `async with` each export a named span."""

    @otel_monitor.operation("wardrobe_fetch")
    def fetch() -> int:
        return 1

    @otel_monitor.operation("image_upload", size="large")
    async def upload() -> int:
        await asyncio.sleep(0)
        return 2

    async def analyse() -> None:
        async with otel_monitor.operation("image_analysis"):
            await asyncio.sleep(0)

    assert fetch() == 1 and asyncio.run(upload()) == 2
    asyncio.run(analyse())
    with otel_monitor.operation("profile_update"):
        pass
    stack.flush()
    names = {"wardrobe_fetch", "image_upload", "image_analysis", "profile_update"}
    assert otlp_sink.wait_for(lambda s: names <= set(operation_spans(s)))
    assert operation_spans(otlp_sink)["image_upload"]["attributes"]["size"] == "large"


def test_failing_operation_records_category_and_reraises(stack, otlp_sink):
    """An exception inside an operation is re-raised and its span is classified."""

    @otel_monitor.operation("save")
    def save() -> None:
        raise PermissionError("read-only")

    with pytest.raises(PermissionError):
        save()
    stack.flush()
    assert otlp_sink.wait_for(lambda s: "save" in operation_spans(s))
    attrs = operation_spans(otlp_sink)["save"]["attributes"]
    assert attrs[semconv.MONITOR_ERROR_CATEGORY] == "auth"
    assert attrs[semconv.ERROR_TYPE] == "PermissionError"
    points = {tuple(sorted(p.attributes.items())): p.count for p in stack.points(semconv.METRIC_OPERATION_DURATION)}
    assert points == {
        (
            (semconv.ERROR_TYPE, "PermissionError"),
            (semconv.MONITOR_ERROR_CATEGORY, "auth"),
            (semconv.MONITOR_ERROR_SEVERITY, "warning"),
            (semconv.MONITOR_OPERATION, "save"),
            (semconv.MONITOR_OPERATION_OUTCOME, "server_error"),
        ): 1
    }


def test_cancellation_is_not_an_error(stack, otlp_sink):
    """A cancelled async operation is not marked as failed."""

    async def slow() -> None:
        async with otel_monitor.operation("generation"):
            await asyncio.sleep(10)

    async def main() -> None:
        task = asyncio.create_task(slow())
        await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(main())
    stack.flush()
    assert otlp_sink.wait_for(lambda s: "generation" in operation_spans(s))
    assert semconv.MONITOR_ERROR_CATEGORY not in operation_spans(otlp_sink)["generation"]["attributes"]

"""The console's alerts and the generated Prometheus rules give the same timeline on the same series.

One series of ``monitor.operation.duration`` (a healthy start, a warning-level
failure rate, an escalation to critical, recovery, then slow calls) goes both
to ``promtool test rules`` with the generated rule file and to the console's
evaluator, minute by minute.  The console's timeline (which alert is pending,
which firing, at every minute) becomes promtool's expected ``ALERTS`` series:
promtool passes only if Prometheus agrees at every minute.
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from otel_monitor import semconv
from otel_monitor.alerting.rules import generate, le_matcher
from otel_monitor.console.alerts import AlertBook
from otel_monitor.console.store import MINUTE_NS, Store
from otel_monitor.console.uptime import UptimeBook
from otel_monitor.semantics.alert_timing import TIMINGS, pending_period
from otel_monitor.semantics.slo import SLOs
from otel_monitor.semantics.uptime import Probe, Uptime

T0 = 28_000_000 * MINUTE_NS  # a whole minute; promtool's series start at 0
SERVICE, OPERATION = "shop", "checkout"
CALLS_PER_MINUTE = 100
MINUTES = 60


@dataclass(frozen=True)
class Minute:
    failed: int
    slow: int  # calls between 0.5 s and 2 s (the default latency warning and critical)
    calls: int = CALLS_PER_MINUTE


def scenario() -> list[Minute]:
    """Healthy; 7% failing (warning); 20% (critical); healthy; 10% slow; healthy."""
    plan = [
        (10, Minute(0, 0)),
        (10, Minute(7, 0)),
        (10, Minute(20, 0)),
        (10, Minute(0, 0)),
        (10, Minute(0, 10)),
        (MINUTES - 50, Minute(0, 0)),
    ]
    return [m for n, m in plan for _ in range(n)]


# Cumulative values per series and minute: calls, <= 0.5 s, <= 2 s (the rules' boundaries).
def cumulative(minutes: list[Minute]) -> dict[str, list[tuple[int, int, int]]]:
    out: dict[str, list[tuple[int, int, int]]] = {"ok": [(0, 0, 0)], "failed": [(0, 0, 0)]}
    for m in minutes:
        for name, calls, slow in (("ok", m.calls - m.failed, m.slow), ("failed", m.failed, 0)):
            c, fast, within2 = out[name][-1]
            out[name].append((c + calls, fast + calls - slow, within2 + calls))
    return out


FAILED_LABELS = {semconv.ERROR_TYPE: "HTTPError", semconv.MONITOR_ERROR_CATEGORY: "dependency"}


def _prom_labels(name: str) -> str:
    labels = f'job="{SERVICE}", monitor_operation="{OPERATION}"'
    if name == "failed":
        labels += ', error_type="HTTPError", monitor_error_category="dependency"'
    return labels


def promtool_series(values: dict[str, list[tuple[int, int, int]]]) -> list[dict[str, str]]:
    series = []
    for name, points in values.items():
        labels = _prom_labels(name)
        series.append(
            {
                "series": f"monitor_operation_duration_seconds_count{{{labels}}}",
                "values": " ".join(str(p[0]) for p in points),
            }
        )
        for le, index in (("0.5", 1), ("2", 2), ("+Inf", 0)):
            series.append(
                {
                    "series": f'monitor_operation_duration_seconds_bucket{{{labels}, le="{le}"}}',
                    "values": " ".join(str(p[index]) for p in points),
                }
            )
    return series


def feed_console(store: Store, values: dict[str, list[tuple[int, int, int]]], minute: int) -> None:
    """The cumulative points an SDK exports at ``minute``, as the console decodes them."""
    bounds = list(store.slos.buckets)
    points = []
    for name, series in values.items():
        calls, fast, within2 = series[minute]
        counts = [0] * (len(bounds) + 1)
        # Fast calls in the first bucket, slow ones in the bucket ending at 2 s, the rest nowhere.
        counts[0] = fast
        counts[bounds.index(2.0)] = within2 - fast
        counts[-1] = calls - within2
        attributes = {semconv.MONITOR_OPERATION: OPERATION, **(FAILED_LABELS if name == "failed" else {})}
        points.append(
            {
                "resource": {semconv.SERVICE_NAME: SERVICE},
                "scope": "",
                "unit": "s",
                "name": semconv.METRIC_OPERATION_DURATION,
                "type": "histogram",
                "attributes": attributes,
                "start_time_unix_nano": T0,
                "time_unix_nano": T0 + minute * MINUTE_NS,
                "count": calls,
                "sum": 0.1 * fast + 1.0 * (within2 - fast),
                "bucket_counts": counts,
                "explicit_bounds": bounds,
                "temporality": 2,
                "min": None,
                "max": None,
            }
        )
    store.add_metric_points(points)


def console_timeline(values: dict[str, list[tuple[int, int, int]]]) -> list[dict[str, str]]:
    """Per minute: rule key -> pending/firing, from the console's evaluator fed the same points."""
    store = Store(SLOs())
    store.started_ns = T0
    book = AlertBook(store)
    timeline = []
    for minute in range(len(values["ok"])):
        feed_console(store, values, minute)
        book.evaluate(T0 + minute * MINUTE_NS)
        timeline.append(book.timeline_entry())
    return timeline


def _promtool() -> str:
    path = shutil.which("promtool")
    if path is None:
        pytest.skip("promtool not found: apt-get install prometheus")
    return path


ALERT_LABELS = {name: f'job="{SERVICE}", monitor_operation="{OPERATION}", slo="default"' for name in TIMINGS}


def promtool_test(
    rules: Path, values: dict[str, list[tuple[int, int, int]]], timeline: list[dict[str, str]]
) -> dict[str, object]:
    """A promtool test whose expected ALERTS at every minute are the console's."""
    names = "|".join(sorted(TIMINGS))
    cases = []
    for minute, states in enumerate(timeline):
        samples = []
        for key, state in sorted(states.items()):
            alertname = key.split(":", 1)[0]
            labels = (
                f'ALERTS{{alertname="{alertname}", alertstate="{state}", {ALERT_LABELS[alertname]}, '
                f'severity="{TIMINGS[alertname].severity}"}}'
            )
            samples.append({"labels": labels, "value": 1})
        cases.append({"expr": f'ALERTS{{alertname=~"{names}"}}', "eval_time": f"{minute}m", "exp_samples": samples})
    # Recording rules first at each evaluation (promtool's order is random otherwise): the console computes
    # its ratios at the moment it evaluates, as an alert reading a fresh recording does.
    groups = [g["name"] for g in yaml.safe_load(rules.read_text())["groups"]]
    return {
        "rule_files": [str(rules)],
        "evaluation_interval": "1m",
        "group_eval_order": groups,
        "tests": [{"interval": "1m", "input_series": promtool_series(values), "promql_expr_test": cases}],
    }


def _render(timeline: list[dict[str, str]]) -> str:
    lines = []
    for minute, states in enumerate(timeline):
        what = ", ".join(f"{k.split(':')[0]}={v}" for k, v in sorted(states.items())) or "-"
        lines.append(f"{minute:3d}m  {what}")
    return "\n".join(lines)


@pytest.mark.promtool
def test_console_alerts_follow_the_prometheus_timeline(tmp_path: Path) -> None:
    """promtool, running the generated rules on the same series, agrees with the console at every minute."""
    values = cumulative(scenario())
    timeline = console_timeline(values)
    rules = tmp_path / "rules.yaml"
    rules.write_text(generate(SLOs(), "otel-monitor.yaml"))
    test_file = tmp_path / "timeline.test.yaml"
    test_file.write_text(yaml.safe_dump(promtool_test(rules, values, timeline), sort_keys=False))
    result = subprocess.run(
        [_promtool(), "test", "rules", str(test_file)], capture_output=True, text=True, cwd=tmp_path
    )
    promtool_said = result.stdout[-3000:] + result.stderr[-6000:]
    assert result.returncode == 0, f"console timeline:\n{_render(timeline)}\n\npromtool:\n{promtool_said}"
    # The comparison must have something to compare: every operation alert pends and fires at some point.
    seen = {(k.split(":")[0], v) for states in timeline for k, v in states.items()}
    for name in (
        "OperationSuccessRateLow",
        "OperationSuccessRateCritical",
        "OperationErrorRateHigh",
        "OperationLatencyHigh",
    ):
        assert {(name, "pending"), (name, "firing")} <= seen, _render(timeline)


def test_an_alert_fires_after_its_pending_period_not_at_the_first_failure() -> None:
    """The error-rate alert is pending from the first minute its 5m ratio is above 5%, firing 3m (its ``for``) later."""
    values = cumulative(scenario())
    timeline = console_timeline(values)
    calls = [a[0] + b[0] for a, b in zip(values["ok"], values["failed"], strict=True)]
    failed = [p[0] for p in values["failed"]]
    ratio = [(failed[m] - failed[max(m - 5, 0)]) / ((calls[m] - calls[max(m - 5, 0)]) or 1) for m in range(len(calls))]
    first = next(m for m, r in enumerate(ratio) if r > SLOs().defaults.error_rate_critical)
    hold = int(pending_period("OperationErrorRateHigh", SLOs().defaults.error_rate_for).removesuffix("m"))
    states = [t.get(f"OperationErrorRateHigh:{SERVICE}:{OPERATION}") for t in timeline]
    assert states[first - 1] is None and states[first] == "pending"
    assert states[first + hold - 1] == "pending" and states[first + hold] == "firing"


def test_a_noisy_first_minute_does_not_page() -> None:
    """Two failures among the first six calls, then 1% failing: pending for a minute, never firing."""
    timeline = console_timeline(cumulative([Minute(2, 0, calls=6)] + [Minute(1, 0)] * 20))
    states = [t.get(f"OperationErrorRateHigh:{SERVICE}:{OPERATION}") for t in timeline]
    assert states[1] == "pending" and "firing" not in states


def test_a_steady_signal_fires_once_and_resolves_once() -> None:
    """Each rule of the scenario fires in one stretch, without resolving and firing again (no flapping)."""
    timeline = console_timeline(cumulative(scenario()))
    for key in {k for t in timeline for k in t}:
        firing = "".join("F" if t.get(key) == "firing" else "." for t in timeline)
        assert firing.strip(".").count(".") == 0, f"{key} flaps: {firing}"


def test_le_matchers_of_the_timeline_series_are_the_rules() -> None:
    """The bucket series fed to promtool are the ones the latency rules select."""
    assert le_matcher(0.5) == 'le="0.5"' and "2" in le_matcher(2.0)


# --- queue depth and uptime objectives ---------------------------------------------------------

PROBE_URL = "http://shop.test/ping"
QUEUE = "order_emails"
# The listed probe and check get 0.91, the other checks the default 0.943: no ratio of fewer than 100
# samples equals either, nor a burn rate's limit (1x, 3x, 6x or 14.4x the budget), so rounding cannot
# decide a minute.
UPTIME = Uptime(
    objective=0.943, probes=(Probe(PROBE_URL, objective=0.91),), health_checks={"database": 0.91}, configured=True
)
NEW_ALERTS = ("QueueDepthHigh", "UptimeBelowObjective", "UptimeBudgetBurn")
SIDE_MINUTES = 50
CHECKS = ("database", "cache", "search")


def side_scenario() -> dict[str, list[float | None]]:
    """Per minute: each queue instance's depth (None: no report), the probe's and the checks' up (1) or down (0).

    The queue sums 600 over two instances for 8 minutes (fires), then 600 for 3 (stays pending); instance b
    then stops reporting with 450 waiting, which counts for Prometheus' lookback and no longer after it.
    The probe and the database check are down at minutes 10-11, the cache check at 3-4, the search check
    from 1 to 24: long enough for each of its four burn rates to fire."""
    queue_a = [100.0] * 10 + [300.0] * 8 + [100.0] * 6 + [300.0] * 3 + [100.0] * (SIDE_MINUTES - 27)
    queue_b: list[float | None] = [100.0] * 10 + [300.0] * 8 + [100.0] * 6 + [300.0] * 3 + [100.0] * 6
    queue_b += [450.0] + [None] * (SIDE_MINUTES - len(queue_b) - 1)
    down_at = {"probe": (10, 11), "database": (10, 11), "cache": (3, 4), "search": tuple(range(1, 25))}
    out: dict[str, list[float | None]] = {"queue_a": list(queue_a), "queue_b": queue_b}
    for name, minutes in down_at.items():
        out[name] = [0.0 if m in minutes else 1.0 for m in range(SIDE_MINUTES)]
    return out


def _side_points(values: dict[str, list[float | None]], minute: int) -> list[dict[str, object]]:
    """What the shop's SDK and `otel-monitor probe` export at ``minute``, as the console decodes them."""
    t = T0 + minute * MINUTE_NS
    base = {"scope": "", "start_time_unix_nano": T0, "time_unix_nano": t, "temporality": 2}
    points: list[dict[str, object]] = []
    for instance in ("a", "b"):
        depth = values[f"queue_{instance}"][minute]
        if depth is not None:
            resource = {semconv.SERVICE_NAME: SERVICE, semconv.SERVICE_INSTANCE_ID: instance}
            attributes = {semconv.MONITOR_QUEUE_NAME: QUEUE}
            points.append(
                {**base, "resource": resource, "name": semconv.METRIC_QUEUE_DEPTH, "type": "gauge", "unit": "{item}"}
                | {"attributes": attributes, "value": depth}
            )
    for check in CHECKS:
        points.append(
            {**base, "resource": {semconv.SERVICE_NAME: SERVICE, semconv.SERVICE_INSTANCE_ID: "a"}}
            | {"name": semconv.METRIC_HEALTH_STATUS, "type": "gauge", "unit": "1", "value": values[check][minute]}
            | {"attributes": {semconv.MONITOR_HEALTH_CHECK: check, semconv.MONITOR_HEALTH_CRITICAL: False}}
        )
    up = values["probe"][minute] == 1.0
    for status_class in ("1xx", "2xx", "3xx", "4xx", "5xx"):
        answered = "2xx" if up else "5xx"
        attributes = {
            semconv.HTTPCHECK_URL: PROBE_URL,
            semconv.HTTPCHECK_METHOD: "GET",
            semconv.HTTPCHECK_STATUS_CODE: 200 if up else 503,
            semconv.HTTPCHECK_STATUS_CLASS: status_class,
        }
        points.append(
            {**base, "resource": {semconv.SERVICE_NAME: "otel-monitor-probe"}, "unit": "1"}
            | {"name": semconv.METRIC_HTTPCHECK_STATUS, "type": "sum", "monotonic": False}
            | {"attributes": attributes, "value": int(status_class == answered)}
        )
    return points


def side_console_timeline(values: dict[str, list[float | None]]) -> list[dict[str, tuple[str, dict[str, str]]]]:
    """Per minute: rule key -> (pending/firing, ALERTS labels) of the new alerts, as the console evaluates them."""
    store = Store(SLOs())
    store.started_ns = T0
    book = AlertBook(store)
    book.uptime = UptimeBook(UPTIME)
    timeline = []
    for minute in range(SIDE_MINUTES):
        points = _side_points(values, minute)
        store.add_metric_points(points)
        book.uptime.add_points(points)
        book.evaluate(T0 + minute * MINUTE_NS)
        timeline.append(
            {
                k: (s.state, {"alertname": s.alertname, "severity": s.severity, **s.labels})
                for k, s in book.rules.items()
                if s.alertname in NEW_ALERTS
            }
        )
    return timeline


def _values(points: list[float | None]) -> str:
    return " ".join("_" if v is None else f"{v:g}" for v in points)


def side_promtool_series(values: dict[str, list[float | None]]) -> list[dict[str, str]]:
    series = [
        {
            "series": f'monitor_queue_depth{{job="{SERVICE}", instance="{i}", monitor_queue_name="{QUEUE}"}}',
            "values": _values(values[f"queue_{i}"]),
        }
        for i in ("a", "b")
    ]
    for check in CHECKS:
        series.append(
            {
                "series": f'monitor_health_status{{job="{SERVICE}", instance="a", monitor_health_check="{check}"}}',
                "values": _values(values[check]),
            }
        )
    for status_class in ("2xx", "5xx"):
        up = values["probe"] if status_class == "2xx" else [1 - v for v in values["probe"] if v is not None]
        series.append(
            {
                "series": f'httpcheck_status{{job="otel-monitor-probe", http_url="{PROBE_URL}", http_method="GET", '
                f'http_status_class="{status_class}"}}',
                "values": _values(up),
            }
        )
    return series


@pytest.mark.promtool
def test_console_queue_and_uptime_alerts_follow_the_prometheus_timeline(tmp_path: Path) -> None:
    """QueueDepthHigh and UptimeBelowObjective: promtool, running the generated rules on the same series,
    has the console's alerts, with the console's labels, at every minute."""
    values = side_scenario()
    timeline = side_console_timeline(values)
    rules = tmp_path / "rules.yaml"
    rules.write_text(generate(SLOs(), "otel-monitor.yaml", uptime=UPTIME))
    groups = [g["name"] for g in yaml.safe_load(rules.read_text())["groups"]]
    cases = []
    for minute, states in enumerate(timeline):
        samples = []
        for _, (state, labels) in sorted(states.items()):
            shown = ", ".join(f'{k}="{v}"' for k, v in sorted({**labels, "alertstate": state}.items()))
            samples.append({"labels": f"ALERTS{{{shown}}}", "value": 1})
        names = "|".join(NEW_ALERTS)
        cases.append({"expr": f'ALERTS{{alertname=~"{names}"}}', "eval_time": f"{minute}m", "exp_samples": samples})
    test = {
        "rule_files": [str(rules)],
        "evaluation_interval": "1m",
        "group_eval_order": groups,
        "tests": [{"interval": "1m", "input_series": side_promtool_series(values), "promql_expr_test": cases}],
    }
    test_file = tmp_path / "side.test.yaml"
    test_file.write_text(yaml.safe_dump(test, sort_keys=False))
    result = subprocess.run(
        [_promtool(), "test", "rules", str(test_file)], capture_output=True, text=True, cwd=tmp_path
    )
    rendered = _render([{k.replace(":", "@", 1): v[0] for k, v in t.items()} for t in timeline])
    assert result.returncode == 0, (
        f"console timeline:\n{rendered}\n\npromtool:\n{result.stdout[-3000:]}{result.stderr[-6000:]}"
    )
    # Each new alert (and each burn rate) pends and fires; the queue's second burst and the stale instance pend without firing.
    seen = {
        (
            k.split(":", 1)[0],  # the rule: a burn rate's with its long window
            labels.get("monitor_queue_name")
            or labels["monitor_health_check" if "monitor_health_check" in labels else "http_url"],
            state,
        )
        for t in timeline
        for k, (state, labels) in t.items()
    }
    for alertname, subject in (
        ("QueueDepthHigh", QUEUE),
        ("UptimeBelowObjective", PROBE_URL),
        ("UptimeBelowObjective", "database"),
        ("UptimeBelowObjective", "cache"),
        *(("UptimeBudgetBurn/" + window, "search") for window in ("1h", "6h", "1d", "3d")),
    ):
        assert {(alertname, subject, "pending"), (alertname, subject, "firing")} <= seen, rendered
    queue = [t.get(f"QueueDepthHigh:{SERVICE}:{QUEUE}", ("-",))[0] for t in timeline]
    assert queue[24:27] == ["pending"] * 3 and queue[27] == "-", rendered
    # Instance b's last report (minute 33) still counts 5 minutes later (Prometheus' lookback, both ends
    # included), long enough to fire; then the alert resolves after keep_firing_for.
    assert queue[33:38] == ["pending"] * 5 and queue[38:41] == ["firing"] * 3 and queue[41] == "-", rendered

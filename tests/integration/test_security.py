"""Security: redaction on every path out of the process, no secrets in shipped files or
our own logs, authenticated collector receivers, and tested dependency lower bounds."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
CONSTRAINTS = ROOT / "constraints" / "lower-bounds.txt"


# --- dependencies -------------------------------------------------------------------------------


def declared_lower_bounds() -> dict[str, str]:
    """Every direct dependency of pyproject.toml (all extras) -> its lower bound."""
    from packaging.requirements import Requirement

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    requirements = list(project["dependencies"])
    for extra in project["optional-dependencies"].values():
        requirements += extra
    bounds: dict[str, str] = {}
    for text in requirements:
        requirement = Requirement(text)
        if requirement.name == "otel-monitor":
            continue  # the dev extra's reference to our own extras
        lows = [s.version for s in requirement.specifier if s.operator in (">=", "==", "~=")]
        assert lows, f"pyproject.toml: {text!r} has no lower bound"
        bounds[requirement.name.lower()] = lows[0]
    return bounds


def constrained_versions() -> dict[str, str]:
    versions = {}
    for line in CONSTRAINTS.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, _, version = line.partition("==")
            versions[name.strip().lower()] = version.strip()
    return versions


def test_lower_bounds_file_matches_pyproject():
    """constraints/lower-bounds.txt pins every direct dependency at exactly its pyproject lower bound."""
    assert constrained_versions() == declared_lower_bounds()


def test_ci_audits_dependencies_and_tests_lower_bounds():
    """CI runs pip-audit on the resolved environment and `make test-lower-bounds`."""
    ci = (ROOT / ".ci" / "run").read_text()
    makefile = (ROOT / "Makefile").read_text()
    assert ".ci/audit" in ci and "pip-audit" in (ROOT / ".ci" / "audit").read_text()
    assert "make test-lower-bounds" in ci
    assert re.search(r"^test-lower-bounds:", makefile, re.MULTILINE)
    assert "-c constraints/lower-bounds.txt" in makefile


# --- redaction on every path out of the process -------------------------------------------------

SECRETS = json.loads((ROOT / "tests" / "support" / "corpus" / "secrets.json").read_text())


@pytest.fixture(scope="module")
def planted(tmp_path_factory):
    """Run tests/support/apps/corpus_app.py under opentelemetry-instrument against a real OTLP receiver."""
    from otel_monitor.testing import OTLPSink
    from tests.support.launch import BIN

    with OTLPSink() as sink:
        env = {
            **sink.env(),
            "OTEL_SERVICE_NAME": "corpus",
            "OTEL_MONITOR_RAISE_INTERNAL_ERRORS": "false",
            "OTEL_MONITOR_USER_ID_KEY": "planted-user-id-key-0123",
            "OTEL_METRIC_EXPORT_INTERVAL": "60000",
            "OTEL_BSP_MAX_QUEUE_SIZE": "10000",
            "OTEL_BLRP_MAX_QUEUE_SIZE": "10000",
            "PYTHONPATH": str(ROOT),
        }
        import os

        proc = subprocess.run(
            [str(BIN / "opentelemetry-instrument"), sys.executable, "-m", "tests.support.apps.corpus_app"],
            env={**os.environ, **env},
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=180,
        )
        assert proc.returncode == 0, proc.stderr[-3000:]
        assert sink.wait_for(
            lambda s: (
                len([x for x in s.spans if x["name"].startswith("sample-")]) >= len(SECRETS)
                and s.metric_points("corpus_app.requests")
            )
        )
        yield sink, proc.stdout + proc.stderr


def paths_out(sink) -> dict[str, str]:
    """Each path out of the process, as the receiver got it, serialised for searching."""
    spans = [s for s in sink.spans if s["name"].startswith("sample-")]
    return {
        "span attributes": json.dumps([s["attributes"] for s in spans]),
        "span names and status": json.dumps([[s["name"], s.get("status")] for s in spans]),
        "span events": json.dumps([e for s in spans for e in s.get("events", []) if e["name"] != "exception"]),
        "exception events (message, stack trace)": json.dumps(
            [e for s in spans for e in s.get("events", []) if e["name"] == "exception"]
        ),
        "log bodies": json.dumps([r["body"] for r in sink.logs]),
        "log attributes (incl. exceptions)": json.dumps([r["attributes"] for r in sink.logs]),
        "metric attributes": json.dumps([p["attributes"] for p in sink.metric_points("corpus_app.requests")]),
    }


def test_every_path_out_was_exercised(planted):
    """The receiver got spans, events, exceptions, logs and metric points for the planted samples."""
    sink, _ = planted
    for path, blob in paths_out(sink).items():
        assert len(blob) > 1000, path
    assert "[REDACTED]" in paths_out(sink)["exception events (message, stack trace)"]


@pytest.mark.parametrize(
    "path",
    [
        "span attributes",
        "span names and status",
        "span events",
        "exception events (message, stack trace)",
        "log bodies",
        "log attributes (incl. exceptions)",
        "metric attributes",
    ],
)
def test_no_corpus_secret_leaves_on_any_path(planted, path):
    """No secret of tests/support/corpus/secrets.json reaches the receiver on this path."""
    sink, _ = planted
    blob = paths_out(sink)[path]
    leaked = sorted({s["secret"] for s in SECRETS if s["secret"] in blob or json.dumps(s["secret"])[1:-1] in blob})
    assert leaked == [], f"{len(leaked)} secrets leaked on {path}: {leaked[:10]}"


def test_own_output_shows_no_secret_setting(planted):
    """The app's own output (our log lines included) never prints the user-id key."""
    _, output = planted
    assert "planted-user-id-key-0123" not in output


def test_csrf_tokens_are_scrubbed():
    """CSRF tokens are scrubbed as attribute keys and as name=value pairs in free text."""
    from otel_monitor.semantics.redaction import REDACTED, Redactor

    redactor = Redactor()
    assert (
        redactor.text("cookie header csrftoken=AbCdEf123456; theme=dark")
        == f"cookie header csrftoken={REDACTED}; theme=dark"
    )
    assert redactor.value("http.request.header.x-csrf-token", "AbCdEf123456") == REDACTED


# --- no secrets in shipped files or in our own output -------------------------------------------

# Formats that are never acceptable in a shipped file, placeholder or not.
KNOWN_SECRET_FORMATS = re.compile(
    r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b|\bgh[pousr]_[A-Za-z0-9]{30,}|\bgithub_pat_[A-Za-z0-9_]{30,}"
    r"|\b[sr]k_live_[0-9A-Za-z]{10,}|\bxox[abposr]-[0-9A-Za-z-]{10,}|\bAIza[0-9A-Za-z_-]{35}"
    r"|-----BEGIN [A-Z ]*PRIVATE KEY-----|\beyJ[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{10,}"
    r"|hooks\.slack\.com/services/T[A-Z0-9]{6,}/B[A-Z0-9]{6,}/[A-Za-z0-9]{20,}"
)
# `key: value` / `KEY=value` lines of config files whose key names a secret.
SECRET_ASSIGNMENT = re.compile(
    r"^\s*-?\s*[\"']?(?P<key>[\w.-]*(?:password|passwd|secret|token|api[_-]?key|id[_-]?key|integration[_-]?key|service[_-]?key|webhook|credential)"
    r"[\w.-]*)[\"']?\s*[:=]\s*(?P<value>.+?)\s*$",
    re.IGNORECASE,
)
PLACEHOLDER = re.compile(r"placeholder|change-?me|example|dummy|your[-_]|<[^>]+>", re.IGNORECASE)
CONFIG_SUFFIXES = {".yaml", ".yml", ".env", ".json", ".toml", ".ini", ".conf", ""}


def shipped_files() -> list[Path]:
    files = [
        ROOT / "docker-compose.yml",
        *sorted((ROOT / "collector").rglob("*")),
        *sorted((ROOT / "examples").rglob("*")),
    ]
    files += sorted(ROOT.glob("docker-compose*.yml"))
    return [p for p in dict.fromkeys(files) if p.is_file() and "__pycache__" not in p.parts]


def literal_secret(value: str) -> bool:
    """A value that is a secret in itself: not a reference to a file, env var or a placeholder."""
    value = value.strip().strip("\"'")
    env_default = re.fullmatch(r"\$\{\w+:-(?P<default>[^}]*)\}", value)
    if env_default:  # ${VAR:-default}: the default is what ships
        value = env_default.group("default")
    if not value or value.startswith(("/", "./", "${", "$(", "{{")) or value.lower() in ("true", "false", "null", "~"):
        return False
    return not PLACEHOLDER.search(value) and not re.fullmatch(r"[\w.-]+_(?:file|path)|\d+[smh]?", value)


def test_shipped_files_hold_no_real_looking_secret():
    """Examples, compose and collector files hold no API key, private key, token or literal password."""
    found = []
    for path in shipped_files():
        try:
            text = path.read_text()
        except UnicodeDecodeError:
            continue
        for number, line in enumerate(text.splitlines(), 1):
            where = f"{path.relative_to(ROOT)}:{number}"
            if KNOWN_SECRET_FORMATS.search(line):
                found.append(f"{where}: {line.strip()}")
            match = SECRET_ASSIGNMENT.match(line)
            if (
                path.suffix in CONFIG_SUFFIXES
                and match
                and not match.group("key").lower().endswith(("_file", "file"))
                and literal_secret(match.group("value"))
            ):
                found.append(f"{where}: {line.strip()}")
    assert found == []


def test_secret_files_are_obvious_placeholders():
    """Every file under collector/alertmanager/secrets/ is an obvious placeholder, not a real-looking key."""
    secrets = sorted((ROOT / "collector" / "alertmanager" / "secrets").iterdir())
    assert secrets
    for path in secrets:
        assert "PLACEHOLDER" in path.read_text(), path


def test_config_report_hides_secret_settings_and_otlp_headers():
    """`otel-monitor config` (text and JSON) shows secret settings and OTLP headers only as hidden."""
    import os

    from tests.support.launch import BIN

    planted = {
        "OTEL_MONITOR_USER_ID_KEY": "planted-uid-key-4821",
        "OTEL_MONITOR_CONSOLE_TOKEN": "planted-console-7731",
        "OTEL_MONITOR_HEALTH_TOKEN": "planted-health-9917",
        "OTEL_EXPORTER_OTLP_HEADERS": "authorization=Bearer planted-otlp-5521",
        "OTEL_EXPORTER_OTLP_TRACES_HEADERS": "x-api-key=planted-otlp-traces-3391",
    }
    for flag in ([], ["--json"]):
        proc = subprocess.run(
            [str(BIN / "otel-monitor"), "config", *flag],
            env={**os.environ, **planted},
            capture_output=True,
            text=True,
            timeout=120,
        )
        output = proc.stdout + proc.stderr
        assert "OTEL_MONITOR_USER_ID_KEY" in output and "OTEL_EXPORTER_OTLP_HEADERS" in output
        assert [v for v in planted.values() if v.split()[-1].split("=")[-1] in output] == []


def test_own_log_lines_never_print_secret_settings(tmp_path):
    """With every secret setting planted and bad values around them, nothing we print shows a secret."""
    import os

    from tests.support.launch import BIN

    config = tmp_path / "monitor.yaml"
    config.write_text("settings:\n  user_id_key: ''\n  cardinality_limit: lots\nredaction:\n  patterns: ['(bad']\n")
    planted = {
        "OTEL_MONITOR_USER_ID_KEY": "planted-uid-key-4821",
        "OTEL_MONITOR_CONSOLE_TOKEN": "planted-console-7731",
        "OTEL_MONITOR_HEALTH_TOKEN": "planted-health-9917",
        "OTEL_EXPORTER_OTLP_HEADERS": "authorization=Bearer planted-otlp-5521",
        "OTEL_MONITOR_CONFIG": str(config),
        "OTEL_MONITOR_SLOW_THRESHOLD_MS": "soon",
        "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:9",
        "OTEL_EXPORTER_OTLP_TIMEOUT": "1",
        "OTEL_MONITOR_SHUTDOWN_TIMEOUT": "2",
        "OTEL_MONITOR_RAISE_INTERNAL_ERRORS": "false",
    }
    app = (
        "import logging; logging.basicConfig(level=logging.DEBUG)\n"
        "from opentelemetry import trace\n"
        "with trace.get_tracer('t').start_as_current_span('work'): pass\n"
        "print('app ran')\n"
    )
    proc = subprocess.run(
        [str(BIN / "opentelemetry-instrument"), sys.executable, "-c", app],
        env={**os.environ, **planted},
        capture_output=True,
        text=True,
        timeout=120,
    )
    output = proc.stdout + proc.stderr
    assert "app ran" in output and "otel-monitor: " in output  # our warnings were printed
    leaked = [
        v
        for v in ("planted-uid-key-4821", "planted-console-7731", "planted-health-9917", "planted-otlp-5521")
        if v in output
    ]
    assert leaked == []


# --- collector receivers: TLS and bearer-token auth (overlay) -----------------------------------

COLLECTOR = ROOT / "collector"
ENV_REFERENCE = re.compile(r"^\$\{env:(\w+)\}$")


def merged(base: dict, overlay: dict) -> dict:
    """What the collector does with two --config files: maps merged key by key, other values replaced."""
    result = dict(base)
    for key, value in overlay.items():
        result[key] = (
            merged(result[key], value) if isinstance(value, dict) and isinstance(result.get(key), dict) else value
        )
    return result


def secure_config() -> dict:
    base = yaml.safe_load((COLLECTOR / "otelcol-config.yaml").read_text())
    return merged(base, yaml.safe_load((COLLECTOR / "otelcol-secure.yaml").read_text()))


def test_secure_overlay_puts_tls_and_bearer_auth_on_every_otlp_protocol():
    """With the overlay every OTLP receiver protocol serves TLS from env-named files and requires a bearer token."""
    config = secure_config()
    protocols = config["receivers"]["otlp"]["protocols"]
    assert set(protocols) == {"grpc", "http"}
    for name, protocol in protocols.items():
        tls = protocol["tls"]
        assert ENV_REFERENCE.match(tls["cert_file"]) and ENV_REFERENCE.match(tls["key_file"]), name
        authenticator = protocol["auth"]["authenticator"]
        assert authenticator.split("/")[0] == "bearertokenauth", name
        assert authenticator in config["extensions"] and authenticator in config["service"]["extensions"]
        assert ENV_REFERENCE.match(config["extensions"][authenticator]["token"])


def test_secure_overlay_keeps_the_rest_of_the_collector():
    """The overlay keeps every extension, pipeline and port of the base config."""
    base = yaml.safe_load((COLLECTOR / "otelcol-config.yaml").read_text())
    config = secure_config()
    assert set(base["service"]["extensions"]) < set(config["service"]["extensions"])
    assert all(name in config["extensions"] for name in config["service"]["extensions"])
    assert config["service"]["pipelines"] == base["service"]["pipelines"]
    for name, protocol in base["receivers"]["otlp"]["protocols"].items():
        assert config["receivers"]["otlp"]["protocols"][name]["endpoint"] == protocol["endpoint"]


def test_secure_compose_overlay_wires_collector_and_apps():
    """docker-compose.secure.yml loads the overlay, sets every variable it reads, and apps send TLS + token."""
    compose = yaml.safe_load((ROOT / "docker-compose.secure.yml").read_text())
    collector = compose["services"]["collector"]
    mounts = {m.split(":")[1]: m.split(":")[0] for m in collector["volumes"]}
    configs = [arg.removeprefix("--config=") for arg in collector["command"]]
    assert configs[0] == "/etc/otelcol/config.yaml" and mounts[configs[1]] == "./collector/otelcol-secure.yaml"
    needed = set(re.findall(r"\$\{env:(\w+)\}", (COLLECTOR / "otelcol-secure.yaml").read_text()))
    assert needed == set(collector["environment"])
    for service in ("shop", "payments"):
        env = compose["services"][service]["environment"]
        assert env["OTEL_EXPORTER_OTLP_ENDPOINT"].startswith("https://collector:4318")
        assert env["OTEL_EXPORTER_OTLP_HEADERS"].startswith("Authorization=Bearer%20${OTEL_COLLECTOR_BEARER_TOKEN")
        assert env["OTEL_EXPORTER_OTLP_CERTIFICATE"] in {
            m.split(":")[1] for m in compose["services"][service]["volumes"]
        }


def test_readme_documents_the_secure_collector():
    """The security guide tells how to enable TLS and bearer-token auth on the collector."""
    readme = (ROOT / "docs" / "security.md").read_text()
    for needle in (
        "otelcol-monitor validate --config=collector/otelcol-config.yaml --config=collector/otelcol-secure.yaml",
        "docker-compose.secure.yml",
        "OTEL_COLLECTOR_BEARER_TOKEN",
        "OTEL_EXPORTER_OTLP_CERTIFICATE",
    ):
        assert needle in readme, needle


# --- the console under a fuzz burst: 4xx answers, still serving, valid data kept -------------------


def raw_request(
    url: str,
    method: str,
    path: str,
    body: bytes = b"",
    headers: dict[str, str] | None = None,
    declared_length: int | None = None,
) -> int:
    """One HTTP request with full control of body and Content-Length (to send truncated bodies)."""
    import http.client
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
    try:
        connection.putrequest(method, path, skip_accept_encoding=True)
        for name, value in (headers or {}).items():
            connection.putheader(name, value)
        connection.putheader("Content-Length", str(len(body) if declared_length is None else declared_length))
        connection.endheaders()
        connection.send(body)
        if declared_length is not None and declared_length > len(body):
            connection.sock.shutdown(1)  # the body ends early: the peer sees a truncated request
        return connection.getresponse().status
    except (ConnectionError, http.client.RemoteDisconnected):
        return 0  # the console closed a connection whose body never arrived: fine, if it keeps serving
    finally:
        connection.close()


def fuzz_bodies(seed: int, count: int) -> list[tuple[str, bytes, str, int | None]]:
    """(signal, body, content type, declared length): random, truncated, oversized, bombs, wrong types."""
    import gzip
    import random

    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

    rng = random.Random(seed)
    request = ExportTraceServiceRequest()
    span = request.resource_spans.add().scope_spans.add().spans.add()
    span.trace_id, span.span_id, span.name = b"\x07" * 16, b"\x08" * 8, "fuzz"
    valid = request.SerializeToString()
    makers = [
        lambda: (rng.randbytes(rng.randint(0, 4096)), "application/x-protobuf", None),
        lambda: (valid[: rng.randint(0, len(valid) - 1)], "application/x-protobuf", None),
        lambda: (valid, "application/x-protobuf", len(valid) + rng.randint(1, 500)),  # truncated on the wire
        lambda: (b"x" * (64 * 1024 + rng.randint(1, 4096)), "application/x-protobuf", None),  # oversized
        lambda: (gzip.compress(b"\x00" * (8 * 1024 * 1024)), "application/x-protobuf", None),  # gzip bomb
        lambda: (
            rng.choice(
                [
                    b"{",
                    b"[]",
                    b'{"resourceSpans": 7}',
                    b'{"resourceSpans":[{"scopeSpans":[{"spans":[{"traceId":"zz","spanId":1}]}]}]}',
                    b"null",
                    '{"\ud800": 1}'.encode("utf-8", "surrogatepass"),
                ]
            ),
            "application/json",
            None,
        ),
        lambda: (
            valid,
            rng.choice(
                [
                    "text/plain",
                    "",
                    "application/grpc",
                    "multipart/form-data; boundary=x",
                    "application/x-protobuf; charset=\x7f",
                ]
            ),
            None,
        ),
    ]
    bodies = []
    for _ in range(count):
        body, content_type, declared = rng.choice(makers)()
        bodies.append((rng.choice(["traces", "metrics", "logs"]), body, content_type, declared))
    return bodies


def console_snapshot(url: str, trace_id: str) -> dict:
    from tests.support.console_telemetry import get

    operations = get(f"{url}/api/operations?service=shop")["operations"]  # send_calls reports as "shop"
    trace = get(f"{url}/api/traces/{trace_id}")
    return {
        "operations": sorted((r["operation"], r["calls"], r["errors"]) for r in operations),
        "trace spans": sorted(s["name"] for s in trace["spans"]),
        "trace logs": [entry["body"] for entry in trace["logs"]],
        "services": {"shop", "valid-svc"} <= set(get(f"{url}/api/services")["services"]),
    }


@pytest.mark.slow
def test_console_fuzz_burst_gets_4xx_keeps_serving_and_keeps_valid_data():
    """300 malformed, truncated, oversized and mistyped OTLP requests: each a 4xx, none a 5xx; valid data intact."""
    from otel_monitor.console.cli import serve
    from tests.support.console_telemetry import logger, send_calls, tracer

    with serve(port=0, max_body=64 * 1024, evaluate_every=3600) as console:
        send_calls(console.url, "checkout", [0.2] * 40, failed=[0.9] * 4, category="timeout")
        with tracer(console.url, service="valid-svc") as t, logger(console.url, service="valid-svc") as log:
            with t.start_as_current_span("GET /valid") as root:
                with t.start_as_current_span("SELECT valid"):
                    log.emit(body="valid log line", severity_text="INFO")
            trace_id = f"{root.get_span_context().trace_id:032x}"
        before = console_snapshot(console.url, trace_id)
        assert before["operations"] == [("checkout", 44, 4)] and before["services"] and before["trace logs"]
        statuses: dict[int, int] = {}
        for signal, body, content_type, declared in fuzz_bodies(seed=20261123, count=300):
            status = raw_request(console.url, "POST", f"/v1/{signal}", body, {"Content-Type": content_type}, declared)
            statuses[status] = statuses.get(status, 0) + 1
        print(f"\nfuzz burst answers: {dict(sorted(statuses.items()))}")
        assert all(status in (0, 200) or 400 <= status < 500 for status in statuses), statuses
        assert not any(500 <= status for status in statuses)
        assert console_snapshot(console.url, trace_id) == before
        assert raw_request(console.url, "GET", "/api/summary") == 200


@pytest.mark.slow
def test_console_api_answers_bad_parameters_with_4xx():
    """Odd query strings, path parameters and methods on every API route get a 4xx or 200, never a 5xx."""
    import random
    from urllib.parse import quote

    from otel_monitor.console.cli import serve

    rng = random.Random(7)
    odd = ["", "x" * 5000, "%00", "\u202e", "../../etc/passwd", "1e309", "-1", "[]", "{}", "\ud800", "15m;drop"]
    paths = [
        "/api/services",
        "/api/summary",
        "/api/operations",
        "/api/errors",
        "/api/traces",
        "/api/funnels",
        "/api/health",
        "/api/alerts",
    ]
    with serve(port=0, max_body=64 * 1024, evaluate_every=3600) as console:
        statuses: dict[int, int] = {}
        for _ in range(200):
            value = quote(rng.choice(odd), safe="", errors="surrogatepass")
            target = rng.choice(
                [
                    f"{rng.choice(paths)}?window={value}&service={value}&kind={value}",
                    f"/api/operations/{value}",
                    f"/api/traces/{value}",
                    f"/api/alerts/{value}/ack",
                    f"/static/{value}",
                    f"/{value}",
                ]
            )
            method = rng.choice(["GET", "GET", "POST", "DELETE", "PUT"])
            status = raw_request(console.url, method, target, b"{}", {"Content-Type": "application/json"})
            statuses[status] = statuses.get(status, 0) + 1
        print(f"\nAPI fuzz answers: {dict(sorted(statuses.items()))}")
        assert all(0 < status < 500 for status in statuses), statuses
        assert raw_request(console.url, "GET", "/api/summary") == 200


# --- metric attributes: the export wrapper the configurator is to install ---------------------------


def metric_stack(sink) -> tuple[object, object]:
    """A meter provider exporting through RedactingMetricExporter over real OTLP/HTTP to ``sink``."""
    from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader

    from otel_monitor.pipeline.exporters import RedactingMetricExporter
    from otel_monitor.semantics.redaction import Redactor

    exporter = RedactingMetricExporter(OTLPMetricExporter(endpoint=f"{sink.endpoint}/v1/metrics"), Redactor())
    provider = MeterProvider(metric_readers=[PeriodicExportingMetricReader(exporter, export_interval_millis=3_600_000)])
    return provider, provider.get_meter("security-tests")


def test_redacting_metric_exporter_scrubs_every_corpus_secret(otlp_sink):
    """Metric attributes carrying the corpus secrets arrive scrubbed, over real OTLP."""
    provider, meter = metric_stack(otlp_sink)
    counter = meter.create_counter("app.requests")
    for sample in SECRETS:
        value = sample["value"]
        shown = "; ".join(map(str, value)) if isinstance(value, list) else str(value)
        counter.add(1, {sample["key"] or "app.note": shown})
    provider.force_flush()
    assert otlp_sink.wait_for(lambda s: s.metric_points("app.requests"))
    blob = json.dumps([p["attributes"] for p in otlp_sink.metric_points("app.requests")])
    provider.shutdown()
    assert [s["secret"] for s in SECRETS if s["secret"] in blob] == []
    assert "[REDACTED]" in blob


def test_series_made_equal_by_scrubbing_are_merged(otlp_sink):
    """Two series that differ only in a secret become one point: sums add up, histograms merge."""
    provider, meter = metric_stack(otlp_sink)
    counter, histogram = meter.create_counter("app.logins"), meter.create_histogram("app.latency")
    for email, n in (("ann@example.com", 2), ("bob@example.com", 3)):
        counter.add(n, {"user.email": email, "plan": "pro"})
        histogram.record(n / 10, {"user.email": email})
    provider.force_flush()
    assert otlp_sink.wait_for(lambda s: s.metric_points("app.logins") and s.metric_points("app.latency"))
    provider.shutdown()
    (logins,) = otlp_sink.latest_points("app.logins")  # cumulative: flush and shutdown both export
    (latency,) = otlp_sink.latest_points("app.latency")
    assert logins["attributes"] == {"user.email": "[REDACTED]", "plan": "pro"} and logins["value"] == 5
    assert latency["count"] == 2 and latency["sum"] == pytest.approx(0.5)


def test_clean_metrics_pass_through_uncopied():
    """Metric data with nothing to scrub is handed on as the very same object."""
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader

    from otel_monitor.semantics.redaction import Redactor, scrub_metrics_data

    reader = InMemoryMetricReader()
    meter = MeterProvider(metric_readers=[reader]).get_meter("clean")
    meter.create_counter("app.requests").add(1, {"http.route": "/items/{id}", "http.response.status_code": 200})
    data = reader.get_metrics_data()
    assert scrub_metrics_data(Redactor(), data) is data

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

ROOT = Path(__file__).resolve().parents[1]
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

SECRETS = json.loads((ROOT / "tests" / "corpus" / "secrets.json").read_text())


@pytest.fixture(scope="module")
def planted(tmp_path_factory):
    """Run tests/apps/corpus_app.py under opentelemetry-instrument against a real OTLP receiver."""
    from otel_monitor.testing import OTLPSink

    from .launch import BIN

    with OTLPSink() as sink:
        env = {**sink.env(), "OTEL_SERVICE_NAME": "corpus", "OTEL_MONITOR_RAISE_INTERNAL_ERRORS": "false",
               "OTEL_MONITOR_USER_ID_KEY": "planted-user-id-key-0123", "OTEL_METRIC_EXPORT_INTERVAL": "60000",
               "OTEL_BSP_MAX_QUEUE_SIZE": "10000", "OTEL_BLRP_MAX_QUEUE_SIZE": "10000",
               "PYTHONPATH": str(ROOT)}
        import os

        proc = subprocess.run([str(BIN / "opentelemetry-instrument"), sys.executable, "-m", "tests.apps.corpus_app"],
                              env={**os.environ, **env}, cwd=ROOT, capture_output=True, text=True, timeout=180)
        assert proc.returncode == 0, proc.stderr[-3000:]
        assert sink.wait_for(lambda s: len([x for x in s.spans if x["name"].startswith("sample-")]) >= len(SECRETS)
                             and s.metric_points("corpus_app.requests"))
        yield sink, proc.stdout + proc.stderr


def paths_out(sink) -> dict[str, str]:
    """Each path out of the process, as the receiver got it, serialised for searching."""
    spans = [s for s in sink.spans if s["name"].startswith("sample-")]
    return {
        "span attributes": json.dumps([s["attributes"] for s in spans]),
        "span names and status": json.dumps([[s["name"], s.get("status")] for s in spans]),
        "span events": json.dumps([e for s in spans for e in s.get("events", []) if e["name"] != "exception"]),
        "exception events (message, stack trace)": json.dumps(
            [e for s in spans for e in s.get("events", []) if e["name"] == "exception"]),
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


@pytest.mark.parametrize("path", [
    "span attributes", "span names and status", "span events", "exception events (message, stack trace)",
    "log bodies", "log attributes (incl. exceptions)",
    pytest.param("metric attributes", marks=pytest.mark.xfail(
        strict=True, reason="metric exporters are not wrapped with redaction (configurator._wrap_metric_exporters)")),
])
def test_no_corpus_secret_leaves_on_any_path(planted, path):
    """No secret of tests/corpus/secrets.json reaches the receiver on this path."""
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
    from otel_monitor.redaction import REDACTED, Redactor

    redactor = Redactor()
    assert redactor.text("cookie header csrftoken=AbCdEf123456; theme=dark") == \
        f"cookie header csrftoken={REDACTED}; theme=dark"
    assert redactor.value("http.request.header.x-csrf-token", "AbCdEf123456") == REDACTED


# --- no secrets in shipped files or in our own output -------------------------------------------

# Formats that are never acceptable in a shipped file, placeholder or not.
KNOWN_SECRET_FORMATS = re.compile(
    r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b|\bgh[pousr]_[A-Za-z0-9]{30,}|\bgithub_pat_[A-Za-z0-9_]{30,}"
    r"|\b[sr]k_live_[0-9A-Za-z]{10,}|\bxox[abposr]-[0-9A-Za-z-]{10,}|\bAIza[0-9A-Za-z_-]{35}"
    r"|-----BEGIN [A-Z ]*PRIVATE KEY-----|\beyJ[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{10,}"
    r"|hooks\.slack\.com/services/T[A-Z0-9]{6,}/B[A-Z0-9]{6,}/[A-Za-z0-9]{20,}")
# `key: value` / `KEY=value` lines of config files whose key names a secret.
SECRET_ASSIGNMENT = re.compile(
    r"^\s*-?\s*[\"']?(?P<key>[\w.-]*(?:password|passwd|secret|token|api[_-]?key|id[_-]?key|integration[_-]?key|service[_-]?key|webhook|credential)"
    r"[\w.-]*)[\"']?\s*[:=]\s*(?P<value>.+?)\s*$", re.IGNORECASE)
PLACEHOLDER = re.compile(r"placeholder|change-?me|example|dummy|your[-_]|<[^>]+>", re.IGNORECASE)
CONFIG_SUFFIXES = {".yaml", ".yml", ".env", ".json", ".toml", ".ini", ".conf", ""}


def shipped_files() -> list[Path]:
    files = [ROOT / "docker-compose.yml", *sorted((ROOT / "collector").rglob("*")),
             *sorted((ROOT / "examples").rglob("*"))]
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
            if path.suffix in CONFIG_SUFFIXES and match and not match.group("key").lower().endswith(("_file", "file")) \
                    and literal_secret(match.group("value")):
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

    from .launch import BIN

    planted = {"OTEL_MONITOR_USER_ID_KEY": "planted-uid-key-4821", "OTEL_MONITOR_CONSOLE_TOKEN": "planted-console-7731",
               "OTEL_MONITOR_HEALTH_TOKEN": "planted-health-9917",
               "OTEL_EXPORTER_OTLP_HEADERS": "authorization=Bearer planted-otlp-5521",
               "OTEL_EXPORTER_OTLP_TRACES_HEADERS": "x-api-key=planted-otlp-traces-3391"}
    for flag in ([], ["--json"]):
        proc = subprocess.run([str(BIN / "otel-monitor"), "config", *flag], env={**os.environ, **planted},
                              capture_output=True, text=True, timeout=120)
        output = proc.stdout + proc.stderr
        assert "OTEL_MONITOR_USER_ID_KEY" in output and "OTEL_EXPORTER_OTLP_HEADERS" in output
        assert [v for v in planted.values() if v.split()[-1].split("=")[-1] in output] == []


def test_own_log_lines_never_print_secret_settings(tmp_path):
    """With every secret setting planted and bad values around them, nothing we print shows a secret."""
    import os

    from .launch import BIN

    config = tmp_path / "monitor.yaml"
    config.write_text("settings:\n  user_id_key: ''\n  cardinality_limit: lots\nredaction:\n  patterns: ['(bad']\n")
    planted = {"OTEL_MONITOR_USER_ID_KEY": "planted-uid-key-4821", "OTEL_MONITOR_CONSOLE_TOKEN": "planted-console-7731",
               "OTEL_MONITOR_HEALTH_TOKEN": "planted-health-9917",
               "OTEL_EXPORTER_OTLP_HEADERS": "authorization=Bearer planted-otlp-5521",
               "OTEL_MONITOR_CONFIG": str(config), "OTEL_MONITOR_SLOW_THRESHOLD_MS": "soon",
               "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:9", "OTEL_EXPORTER_OTLP_TIMEOUT": "1",
               "OTEL_MONITOR_SHUTDOWN_TIMEOUT": "2", "OTEL_MONITOR_RAISE_INTERNAL_ERRORS": "false"}
    app = ("import logging; logging.basicConfig(level=logging.DEBUG)\n"
           "from opentelemetry import trace\n"
           "with trace.get_tracer('t').start_as_current_span('work'): pass\n"
           "print('app ran')\n")
    proc = subprocess.run([str(BIN / "opentelemetry-instrument"), sys.executable, "-c", app],
                          env={**os.environ, **planted}, capture_output=True, text=True, timeout=120)
    output = proc.stdout + proc.stderr
    assert "app ran" in output and "otel-monitor: " in output  # our warnings were printed
    leaked = [v for v in ("planted-uid-key-4821", "planted-console-7731", "planted-health-9917", "planted-otlp-5521")
              if v in output]
    assert leaked == []


# --- collector receivers: TLS and bearer-token auth (overlay) -----------------------------------

COLLECTOR = ROOT / "collector"
ENV_REFERENCE = re.compile(r"^\$\{env:(\w+)\}$")


def merged(base: dict, overlay: dict) -> dict:
    """What the collector does with two --config files: maps merged key by key, other values replaced."""
    result = dict(base)
    for key, value in overlay.items():
        result[key] = merged(result[key], value) if isinstance(value, dict) and isinstance(result.get(key), dict) \
            else value
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
        assert env["OTEL_EXPORTER_OTLP_CERTIFICATE"] in {m.split(":")[1] for m in compose["services"][service]["volumes"]}


def test_readme_documents_the_secure_collector():
    """The README tells how to enable TLS and bearer-token auth on the collector."""
    readme = (ROOT / "README.md").read_text()
    for needle in ("otelcol-contrib validate --config=collector/otelcol-config.yaml --config=collector/otelcol-secure.yaml",
                   "docker-compose.secure.yml", "OTEL_COLLECTOR_BEARER_TOKEN", "OTEL_EXPORTER_OTLP_CERTIFICATE"):
        assert needle in readme, needle

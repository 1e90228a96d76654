"""docker-compose.yml: valid against the compose specification, pinned, healthy, every mount present."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker-compose.yml"
# Images without a shell or HTTP client cannot run a healthcheck command; the
# traffic generator is a bounded batch job, not a server.
NO_HEALTHCHECK = {"collector", "jaeger", "traffic"}


def _compose() -> dict:
    return yaml.safe_load(COMPOSE.read_text())


def test_compose_file_matches_the_compose_specification():
    """check-jsonschema validates docker-compose.yml against the vendored compose-spec schema, offline."""
    tool = shutil.which("check-jsonschema", path=str(Path(sys.executable).parent)) or shutil.which("check-jsonschema")
    if tool is None:
        pytest.skip('check-jsonschema not found: pip install -e ".[dev]"')
    result = subprocess.run(
        [tool, "--builtin-schema", "vendor.compose-spec", str(COMPOSE)], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_stack_runs_every_component():
    """The stack has the shop with traffic, the collector, Prometheus, Alertmanager, Grafana, Jaeger and VictoriaLogs."""
    services = set(_compose()["services"])
    assert {
        "shop",
        "payments",
        "traffic",
        "collector",
        "prometheus",
        "alertmanager",
        "grafana",
        "jaeger",
        "victorialogs",
    } <= services


def test_every_image_is_pinned():
    """No image floats: each has an explicit version tag that is not latest."""
    for name, service in _compose()["services"].items():
        image = service.get("image")
        assert image, f"{name} has no image"
        tag = image.rsplit(":", 1)[1] if ":" in image.rsplit("/", 1)[-1] else None
        assert tag and tag != "latest", f"{name}: image {image} is not pinned"


def test_servers_have_health_checks():
    """Every long-running server declares a healthcheck (in compose or in its Dockerfile)."""
    dockerfile = (ROOT / "examples" / "Dockerfile").read_text()
    for name, service in _compose()["services"].items():
        if name in NO_HEALTHCHECK:
            continue
        has_own = "healthcheck" in service
        from_image = "build" in service and "HEALTHCHECK" in dockerfile
        assert has_own or from_image, f"{name} has no healthcheck"


def test_every_mounted_file_exists():
    """Each bind mount, secret file and build file the stack refers to exists in the repository."""
    compose = _compose()
    for name, service in compose["services"].items():
        for volume in service.get("volumes", []):
            source = volume.split(":", 1)[0]
            if source.startswith("."):
                assert (ROOT / source).exists(), f"{name} mounts missing {source}"
        build = service.get("build")
        if build:
            assert (ROOT / build["context"] / build["dockerfile"]).is_file()
    for name, secret in compose.get("secrets", {}).items():
        assert (ROOT / secret["file"]).is_file(), f"secret {name}: missing {secret['file']}"


def test_mounted_configs_are_the_ones_the_services_read():
    """Each config file mounted into a container is the path its command line names."""
    services = _compose()["services"]
    for name in ("collector", "prometheus", "alertmanager"):
        service = services[name]
        targets = {v.split(":")[1] for v in service["volumes"] if v.startswith("./")}
        command = " ".join(service["command"])
        named = [t for t in targets if t in command]
        assert named, f"{name}: command {command!r} reads none of {targets}"


def test_apps_send_to_the_collector_on_the_default_otlp_port():
    """The instrumented services point OTLP at the collector's HTTP port 4318."""
    services = _compose()["services"]
    for name in ("shop", "payments"):
        assert services[name]["environment"]["OTEL_EXPORTER_OTLP_ENDPOINT"] == "http://collector:4318"


def test_ports_are_published_on_loopback_only():
    """Published ports bind 127.0.0.1, so the stack is not exposed to the network by default."""
    for name, service in _compose()["services"].items():
        for port in service.get("ports", []):
            assert str(port).startswith("127.0.0.1:"), f"{name} publishes {port} on every interface"


def test_prometheus_config_passes_promtool():
    """promtool check config accepts the Prometheus configuration the stack mounts."""
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool not found: apt-get install prometheus")
    result = subprocess.run(
        [promtool, "check", "config", "--syntax-only", str(ROOT / "collector" / "prometheus" / "prometheus.yml")],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_prometheus_loads_the_generated_rules():
    """Prometheus' rule_files glob, as mounted, matches the generated rule file."""
    config = yaml.safe_load((ROOT / "collector" / "prometheus" / "prometheus.yml").read_text())
    mount = next(v for v in _compose()["services"]["prometheus"]["volumes"] if "/rules:" in v)
    local, inside = mount.split(":")[:2]
    globs = [g.replace(inside, local.lstrip("./"), 1) for g in config["rule_files"]]
    assert any(list(ROOT.glob(g)) for g in globs), globs


def test_alertmanager_config_passes_amtool():
    """amtool check-config accepts the Alertmanager configuration."""
    amtool = shutil.which("amtool")
    if amtool is None:
        pytest.skip("amtool not found: apt-get install prometheus-alertmanager")
    result = subprocess.run(
        [amtool, "check-config", str(ROOT / "collector" / "alertmanager" / "alertmanager.yml")],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_alertmanager_pages_critical_and_tickets_warning():
    """critical routes to the paging receiver (PagerDuty), warning to the ticket receiver (e-mail, webhook)."""
    config = yaml.safe_load((ROOT / "collector" / "alertmanager" / "alertmanager.yml").read_text())
    routes = {tuple(r["matchers"]): r["receiver"] for r in config["route"]["routes"]}
    receivers = {r["name"]: r for r in config["receivers"]}
    assert "pagerduty_configs" in receivers[routes[('severity="critical"',)]]
    ticket = receivers[routes[('severity="warning"',)]]
    assert "email_configs" in ticket and "webhook_configs" in ticket


def test_alertmanager_reads_secrets_from_files():
    """No secret is inline: PagerDuty, Slack and SMTP credentials come from mounted secret files."""
    text = (ROOT / "collector" / "alertmanager" / "alertmanager.yml").read_text()
    config = yaml.safe_load(text)
    assert config["global"]["slack_api_url_file"].startswith("/run/secrets/")
    assert config["global"]["smtp_auth_password_file"].startswith("/run/secrets/")
    for receiver in config["receivers"]:
        for pagerduty in receiver.get("pagerduty_configs", []):
            assert "routing_key" not in pagerduty and pagerduty["routing_key_file"].startswith("/run/secrets/")
    mounted = set(_compose()["services"]["alertmanager"]["secrets"])
    for path in ("slack_webhook_url", "smtp_password", "pagerduty_routing_key"):
        assert path in mounted and f"/run/secrets/{path}" in text

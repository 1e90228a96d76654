"""Kubernetes manifests of the two-tier layout: consistent with each other and with the collector configs."""

from __future__ import annotations

from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "collector" / "k8s"


def _kustomization() -> dict:
    return yaml.safe_load((K8S / "kustomization.yaml").read_text())


def _objects() -> dict[tuple[str, str], dict]:
    objects = {}
    for resource in _kustomization()["resources"]:
        for document in yaml.safe_load_all((K8S / resource).read_text()):
            objects[(document["kind"], document["metadata"]["name"])] = document
    return objects


def _container(workload: dict) -> dict:
    return workload["spec"]["template"]["spec"]["containers"][0]


def _collector_config(configmap: str) -> dict:
    generator = next(g for g in _kustomization()["configMapGenerator"] if g["name"] == configmap)
    source = generator["files"][0].split("=", 1)[1]
    return yaml.safe_load((K8S / source).read_text())


def test_kustomization_lists_existing_files():
    """Every resource and generated ConfigMap source the kustomization names exists."""
    kustomization = _kustomization()
    for resource in kustomization["resources"]:
        assert (K8S / resource).is_file(), resource
    for generator in kustomization["configMapGenerator"]:
        for entry in generator["files"]:
            assert (K8S / entry.split("=", 1)[-1]).is_file(), entry


def test_layout_has_agent_daemonset_gateway_statefulset_and_instrumentation():
    """The agent runs as a DaemonSet, the gateway as a StatefulSet behind a headless Service, plus an Instrumentation."""
    objects = _objects()
    assert ("DaemonSet", "otel-agent") in objects
    gateway = objects[("StatefulSet", "otel-gateway")]
    headless = objects[("Service", gateway["spec"]["serviceName"])]
    assert headless["spec"]["clusterIP"] == "None"
    assert headless["spec"]["selector"].items() <= gateway["spec"]["template"]["metadata"]["labels"].items()
    assert objects[("Instrumentation", "otel-monitor")]["spec"]["python"]["image"]


def test_agents_resolve_the_gateways_through_the_headless_service():
    """The loadbalancing exporter's DNS name is the headless Service of the gateway StatefulSet."""
    objects = _objects()
    gateway = objects[("StatefulSet", "otel-gateway")]
    resolver = _collector_config("otel-agent-config")["exporters"]["load_balancing"]["resolver"]["dns"]
    assert (
        resolver["hostname"] == f"{gateway['spec']['serviceName']}.{gateway['metadata']['namespace']}.svc.cluster.local"
    )
    headless_ports = {p["port"] for p in objects[("Service", gateway["spec"]["serviceName"])]["spec"]["ports"]}
    assert int(resolver["port"]) in headless_ports


def test_workloads_mount_their_config_and_expose_its_ports():
    """Each workload mounts its generated ConfigMap, passes it to --config, and exposes the OTLP and health ports."""
    objects = _objects()
    for kind, name, configmap in (
        ("DaemonSet", "otel-agent", "otel-agent-config"),
        ("StatefulSet", "otel-gateway", "otel-gateway-config"),
    ):
        workload = objects[(kind, name)]
        container = _container(workload)
        volumes = {v["name"]: v for v in workload["spec"]["template"]["spec"]["volumes"]}
        config_mount = next(m for m in container["volumeMounts"] if volumes.get(m["name"], {}).get("configMap"))
        assert volumes[config_mount["name"]]["configMap"]["name"] == configmap
        assert f"--config={config_mount['mountPath']}/config.yaml" in container["args"]
        config = _collector_config(configmap)
        ports = {p["containerPort"] for p in container["ports"]}
        for protocol in config["receivers"]["otlp"]["protocols"].values():
            assert int(protocol["endpoint"].rsplit(":", 1)[1]) in ports
        assert int(config["extensions"]["health_check"]["endpoint"].rsplit(":", 1)[1]) in ports
        assert {e["name"] for e in container["env"]} >= {"POD_IP"}


def test_agent_is_reachable_on_each_node_at_the_default_otlp_port():
    """The agent publishes 4318 and 4317 as host ports, where the Instrumentation points the pods."""
    objects = _objects()
    host_ports = {p.get("hostPort") for p in _container(objects[("DaemonSet", "otel-agent")])["ports"]}
    assert {4317, 4318} <= host_ports
    assert objects[("Instrumentation", "otel-monitor")]["spec"]["exporter"]["endpoint"].endswith(":4318")


def test_instrumentation_selects_otel_monitor_as_distro_and_configurator():
    """Injected pods load otel-monitor's distro and configurator even beside opentelemetry-distro."""
    env = {e["name"]: e.get("value") for e in _objects()[("Instrumentation", "otel-monitor")]["spec"]["env"]}
    assert env["OTEL_PYTHON_DISTRO"] == env["OTEL_PYTHON_CONFIGURATOR"] == "otel_monitor"


def test_collector_images_match_the_compose_stack():
    """Agents, gateways and the compose collector run the same image, built from the project's manifest."""
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    pinned = compose["services"]["collector"]["image"]
    assert compose["services"]["collector"]["build"]["dockerfile"] == "collector/Dockerfile"
    manifest = yaml.safe_load((ROOT / "collector" / "builder-config.yaml").read_text())
    assert pinned.endswith(":" + manifest["dist"]["version"])
    objects = _objects()
    for key in (("DaemonSet", "otel-agent"), ("StatefulSet", "otel-gateway")):
        assert _container(objects[key])["image"] == pinned
    image = next(i for i in _kustomization()["images"] if pinned.startswith(i["name"] + ":"))
    assert pinned.endswith(":" + image["newTag"])

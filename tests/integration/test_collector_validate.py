"""Every shipped collector config, checked by the project's own collector: `otelcol-monitor validate`.

validate builds every component from its config (OTTL statements parsed,
sending_queue and tail-sampling policies checked, every pipeline's references
resolved) without starting any. The binary is the one `make collector` builds
from collector/builder-config.yaml; without it these tests skip.
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.support.otelcol import COLLECTOR, MANIFEST, ROOT

K8S = COLLECTOR / "k8s"
SINGLE = COLLECTOR / "otelcol-config.yaml"
SECURE = COLLECTOR / "otelcol-secure.yaml"
AGENT = K8S / "otelcol-agent.yaml"
GATEWAY = K8S / "otelcol-gateway.yaml"
KINDS = ("receivers", "processors", "exporters", "connectors", "extensions")
ENV_REFERENCE = re.compile(r"\$\{env:([A-Za-z_][A-Za-z0-9_]*)(:-[^}]*)?\}")
# What Kubernetes would put in the workloads' fieldRef variables.
FIELD_VALUES = {"status.podIP": "10.1.2.3", "spec.nodeName": "node-1", "status.hostIP": "10.1.0.1"}
# The overlay's secrets: validate checks they are set, not the files behind them.
SECURE_ENV = {
    "OTEL_COLLECTOR_TLS_CERT_FILE": "/etc/otel-tls/server.crt",
    "OTEL_COLLECTOR_TLS_KEY_FILE": "/etc/otel-tls/server.key",
    "OTEL_COLLECTOR_BEARER_TOKEN": "validate-token",
}


def _validate(binary: Path, configs: list[Path], env: dict[str, str]) -> subprocess.CompletedProcess:
    # Only the variables given (and PATH/HOME): a variable the config needs but
    # the deployment does not set must show, not be borrowed from this shell.
    base = {k: os.environ[k] for k in ("PATH", "HOME") if k in os.environ}
    args = [str(binary), "validate", *(f"--config={c}" for c in configs)]
    return subprocess.run(args, env={**base, **env}, capture_output=True, text=True, timeout=60)


def _required_env(*configs: Path) -> set[str]:
    """Variables the configs reference without a default."""
    return {m.group(1) for c in configs for m in ENV_REFERENCE.finditer(c.read_text()) if not m.group(2)}


def _assert_valid(result: subprocess.CompletedProcess) -> None:
    assert result.returncode == 0, result.stdout + result.stderr
    assert "error" not in result.stderr.lower(), result.stderr


def _kustomization() -> dict:
    return yaml.safe_load((K8S / "kustomization.yaml").read_text())


def _workloads() -> dict[str, dict]:
    """The DaemonSet and StatefulSet of the kustomization, by the ConfigMap each mounts."""
    found = {}
    for resource in _kustomization()["resources"]:
        for document in yaml.safe_load_all((K8S / resource).read_text()):
            if document and document["kind"] in ("DaemonSet", "StatefulSet", "Deployment"):
                volumes = document["spec"]["template"]["spec"]["volumes"]
                for volume in volumes:
                    if "configMap" in volume:
                        found[volume["configMap"]["name"]] = document
    return found


def _configmaps() -> dict[str, dict]:
    """The ConfigMaps kustomize generates from configMapGenerator, as Kubernetes objects."""
    maps = {}
    for generator in _kustomization()["configMapGenerator"]:
        data = {}
        for entry in generator["files"]:
            key, _, source = entry.rpartition("=")
            data[key or Path(source).name] = (K8S / source).read_text()
        maps[generator["name"]] = {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": generator["name"]},
            "data": data,
        }
    return maps


def _container_env(workload: dict) -> dict[str, str]:
    container = workload["spec"]["template"]["spec"]["containers"][0]
    env = {}
    for variable in container.get("env", []):
        if "value" in variable:
            env[variable["name"]] = str(variable["value"])
        else:
            env[variable["name"]] = FIELD_VALUES[variable["valueFrom"]["fieldRef"]["fieldPath"]]
    return env


SHIPPED = {
    "single": ([SINGLE], {}),
    "secure": ([SINGLE, SECURE], SECURE_ENV),
    "agent": ([AGENT], {"POD_IP": "127.0.0.1", "K8S_NODE_NAME": "node-1"}),
    "gateway": ([GATEWAY], {"POD_IP": "127.0.0.1"}),
}


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_config_validates(otelcol, name):
    """The single-machine, secure (overlay), agent and gateway configs pass `otelcol-monitor validate`."""
    configs, env = SHIPPED[name]
    missing = _required_env(*configs) - set(env)
    assert not missing, f"{name}: set {sorted(missing)} in this test as the deployment does"
    _assert_valid(_validate(otelcol, configs, env))


@pytest.mark.parametrize("configmap", sorted(_configmaps()))
def test_kubernetes_configmap_validates_with_its_workloads_environment(otelcol, configmap, tmp_path):
    """Each generated ConfigMap's config, at the path its workload reads, validates with that workload's env only."""
    workload = _workloads()[configmap]
    container = workload["spec"]["template"]["spec"]["containers"][0]
    volumes = {v["name"]: v for v in workload["spec"]["template"]["spec"]["volumes"]}
    mount = next(
        m for m in container["volumeMounts"] if volumes[m["name"]].get("configMap", {}).get("name") == configmap
    )
    # Lay the ConfigMap out as the kubelet would, and take the --config path from the container's args.
    for key, text in _configmaps()[configmap]["data"].items():
        (tmp_path / key).write_text(text)
    config_args = [a.split("=", 1)[1] for a in container["args"] if a.startswith("--config=")]
    assert config_args and all(a.startswith(mount["mountPath"] + "/") for a in config_args), container["args"]
    files = [tmp_path / a[len(mount["mountPath"]) + 1 :] for a in config_args]
    env = _container_env(workload)
    # A variable naming a hostPath mount (the agent's /hostfs for hostmetrics'
    # root_path, which validate stats) points at a folder standing for it.
    host_mounts = {m["mountPath"] for m in container["volumeMounts"] if "hostPath" in volumes.get(m["name"], {})}
    for variable, value in env.items():
        if value in host_mounts:
            env[variable] = str(tmp_path / value.strip("/"))
            Path(env[variable]).mkdir(parents=True, exist_ok=True)
    missing = _required_env(*files) - set(env)
    name = workload["metadata"]["name"]
    assert not missing, f"{configmap}: the config needs {sorted(missing)}, which {name} does not set"
    _assert_valid(_validate(otelcol, files, env))


def test_validate_catches_an_ottl_typo(otelcol, tmp_path):
    """The check has teeth: a misspelt OTTL function in transform/redact fails validation."""
    broken = tmp_path / "config.yaml"
    text = SINGLE.read_text()
    assert "replace_all_patterns(" in text
    broken.write_text(text.replace("replace_all_patterns(", "replace_all_pattern(", 1))
    result = _validate(otelcol, [broken], {})
    assert result.returncode != 0 and "replace_all_pattern" in result.stderr


def _types_used() -> dict[str, set[str]]:
    used: dict[str, set[str]] = {kind: set() for kind in KINDS}
    for path in (SINGLE, SECURE, AGENT, GATEWAY):
        config = yaml.safe_load(path.read_text())
        for kind in KINDS:
            used[kind] |= {name.split("/")[0] for name in config.get(kind) or {}}
    return used


def test_the_distribution_has_exactly_the_components_the_configs_use(otelcol):
    """`otelcol-monitor components` lists exactly the component types the shipped configs use, no more."""
    result = subprocess.run([str(otelcol), "components"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    built = yaml.safe_load(result.stdout)
    assert built["buildinfo"]["version"] == yaml.safe_load(MANIFEST.read_text())["dist"]["version"]
    for kind, used in _types_used().items():
        assert {c["name"] for c in built.get(kind) or []} == used, kind


def test_every_module_of_the_manifest_is_at_one_release():
    """Core modules at v0.X, stable core modules at the matching v1.Y, contrib at v0.X; ocb and the image agree."""
    manifest = yaml.safe_load(MANIFEST.read_text())
    modules = [entry["gomod"].split() for kind in (*KINDS, "providers") for entry in manifest.get(kind) or []]
    versions = {version for module, version in modules if not version.startswith("v1.")}
    assert len(versions) == 1, versions
    (release,) = versions
    assert manifest["dist"]["version"] == release.lstrip("v")
    assert len({version for module, version in modules if version.startswith("v1.")}) <= 1
    assert f"OCB_VERSION={release}" in (COLLECTOR / "build.sh").read_text()
    assert f"ARG OCB_VERSION={release}" in (COLLECTOR / "Dockerfile").read_text()
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    assert compose["services"]["collector"]["image"].endswith(":" + release.lstrip("v"))

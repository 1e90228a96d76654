"""Host metrics end to end: the single-machine collector's host_metrics receiver, scraped by Prometheus
with the generated rules, measured against what this machine's kernel says (statvfs, /proc/meminfo)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.support.e2e_stack import PROMETHEUS, Prometheus
from tests.support.otelcol import SINGLE, Collector, free_port, local_config, wait_for

pytestmark = pytest.mark.slow

HOST = "e2e-host"
HOST_ALERTS = {"HostCpuHigh", "HostMemoryHigh", "HostDiskFillingUp", "HostDiskFull"}


@pytest.fixture(scope="module")
def host_run(otelcol, tmp_path_factory):
    if PROMETHEUS is None:
        pytest.skip("prometheus not found: apt-get install prometheus")
    work = tmp_path_factory.mktemp("host")
    config, ports = local_config(SINGLE, work / "collector")
    config["exporters"]["otlp_grpc/jaeger"]["endpoint"] = f"127.0.0.1:{free_port()}"
    config["exporters"]["otlp_http/victorialogs"]["endpoint"] = f"http://127.0.0.1:{free_port()}"
    config["receivers"]["host_metrics"]["collection_interval"] = "1s"
    collector = Collector(otelcol, config, work, "single", ports[13133], env={"HOST_NAME": HOST}).start()
    prometheus = Prometheus(work, {"collector:8889": f"127.0.0.1:{ports[8889]}"})
    try:
        prometheus.start()
        wait_for(
            lambda: prometheus.query('system_filesystem_utilization_ratio{job="host"}'),
            60,
            "host series in Prometheus",
            prometheus,
        )
        yield prometheus
    finally:
        prometheus.stop()
        collector.stop()


def _root_usage() -> float:
    """df's Use% of /: used / (used + available to users)."""
    st = os.statvfs("/")
    used = st.f_blocks - st.f_bfree
    return used / (used + st.f_bavail)


def _memory_used() -> float:
    fields = {line.split(":")[0]: int(line.split()[1]) for line in Path("/proc/meminfo").read_text().splitlines()}
    return 1 - fields["MemAvailable"] / fields["MemTotal"]


def test_host_series_come_as_job_host_with_the_host_name(host_run):
    """CPU, memory, filesystem and load series carry job="host" and instance=<host name>, as the Host* rules expect."""
    for metric in (
        "system_cpu_utilization_ratio",
        "system_memory_utilization_ratio",
        "system_filesystem_utilization_ratio",
        "system_cpu_load_average_1m",
        "system_disk_io_bytes_total",
    ):
        series = host_run.query(metric)
        assert series, metric
        assert {(s["metric"]["job"], s["metric"]["instance"]) for s in series} == {("host", HOST)}, metric


def test_root_filesystem_usage_matches_statvfs(host_run):
    """The "/" filesystem's utilization is df's Use%, and no pseudo or in-memory filesystem is reported."""
    series = host_run.query('system_filesystem_utilization_ratio{job="host"}')
    by_mount = {s["metric"]["mountpoint"]: float(s["value"][1]) for s in series}
    assert by_mount["/"] == pytest.approx(_root_usage(), abs=0.01)
    assert not {s["metric"]["type"] for s in series} & {"tmpfs", "proc", "sysfs", "overlay", "devtmpfs", "cgroup2"}
    assert not [m for m in by_mount if m.startswith(("/proc", "/sys", "/dev", "/run"))]


def test_memory_and_cpu_figures_match_the_kernel(host_run):
    """Memory used is 1 - MemAvailable/MemTotal; the CPU states of the host add up to 1."""
    (memory,) = host_run.query('sum by (instance) (system_memory_utilization_ratio{job="host", state="used"})')
    assert float(memory["value"][1]) == pytest.approx(_memory_used(), abs=0.05)
    (busy,) = host_run.query('1 - avg by (job, instance) (system_cpu_utilization_ratio{state="idle"})')
    assert 0 <= float(busy["value"][1]) <= 1
    (states,) = host_run.query('sum by (instance) (system_cpu_utilization_ratio{job="host"})')
    assert float(states["value"][1]) == pytest.approx(1, abs=0.05)


def test_host_alert_rules_evaluate_on_the_host_series(host_run):
    """Every Host* rule is evaluated by Prometheus on the host series without an error."""

    def host_rules():
        groups = host_run.get("/api/v1/rules")["data"]["groups"]
        rules = {r["name"]: r for g in groups for r in g["rules"] if r["name"] in HOST_ALERTS}
        evaluated = all(r.get("lastEvaluation", "").startswith("2") for r in rules.values())
        return rules if set(rules) == HOST_ALERTS and evaluated else None

    rules = wait_for(host_rules, 30, "Host* rules evaluated")
    assert {name: r["health"] for name, r in rules.items()} == dict.fromkeys(HOST_ALERTS, "ok")

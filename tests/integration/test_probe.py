"""`otel-monitor probe`: the config file's URLs requested from outside, reported over OTLP under the
collector's httpcheck receiver's names (a real OTLP receiver and a real HTTP server on loopback)."""

from __future__ import annotations

import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from otel_monitor.cli import main
from otel_monitor.launcher.probe_command import run_probes
from otel_monitor.semantics.uptime import Probe, Uptime


class Site:
    """/ok answers 200, /fail 503, /moved redirects to /ok, /flip answers ``flip_status``."""

    def __init__(self) -> None:
        self.flip_status = 200
        site = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if self.path == "/moved":
                    self.send_response(302)
                    self.send_header("Location", "/ok")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                status = {"/ok": 200, "/fail": 503, "/flip": site.flip_status}.get(self.path, 404)
                body = b"hello"
                self.send_response(status)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def site():
    s = Site()
    yield s
    s.close()


def _status(points: list[dict], url: str) -> dict[str, tuple[int, int]]:
    """{status class: (value, http.status_code)} of one URL's httpcheck.status points."""
    return {
        p["attributes"]["http.status_class"]: (p["value"], p["attributes"]["http.status_code"])
        for p in points
        if p["attributes"]["http.url"] == url
    }


@pytest.fixture
def refusing_port():
    """A loopback port bound but not listening: connections are refused, and no one else can take it."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        yield s.getsockname()[1]


def test_probe_once_reports_httpcheck_metrics_for_every_url(
    site, otlp_sink, refusing_port, tmp_path, capsys, monkeypatch
):
    """A 200, a 503, a redirect to a 200 and a refused port give httpcheck's status, duration and error points."""
    for variable in ("OTEL_SERVICE_NAME", "OTEL_RESOURCE_ATTRIBUTES"):
        monkeypatch.delenv(variable, raising=False)
    closed = f"http://127.0.0.1:{refusing_port}/"
    config = tmp_path / "otel-monitor.yaml"
    urls = [f"{site.url}/ok", f"{site.url}/fail", f"{site.url}/moved", closed]
    # A generous timeout: on a busy machine a loopback answer can take seconds.
    config.write_text("uptime:\n  timeout: 30s\n  probes:\n" + "".join(f"    - url: {u}\n" for u in urls))

    code = main(["probe", "--config", str(config), "--once", "--endpoint", otlp_sink.endpoint])

    assert code == 1  # not every URL was up
    status = otlp_sink.metric_points("httpcheck.status")
    assert len(status) == 4 * 5
    assert {(p["type"], p["monotonic"], p["temporality"], p["unit"]) for p in status} == {("sum", False, 2, "1")}
    zeros = {c: 0 for c in ("1xx", "3xx", "4xx")}
    assert _status(status, f"{site.url}/ok") == {"2xx": (1, 200), "5xx": (0, 200), **{c: (0, 200) for c in zeros}}
    assert _status(status, f"{site.url}/fail") == {"5xx": (1, 503), "2xx": (0, 503), **{c: (0, 503) for c in zeros}}
    assert _status(status, f"{site.url}/moved")["2xx"] == (1, 200)
    assert set(_status(status, closed).values()) == {(0, 0)}
    assert {p["attributes"]["http.method"] for p in status} == {"GET"}
    durations = otlp_sink.metric_points("httpcheck.duration")
    assert sorted(p["attributes"]["http.url"] for p in durations) == sorted(urls)
    assert all(p["type"] == "gauge" and p["unit"] == "ms" and p["value"] >= 0 for p in durations)
    (error,) = otlp_sink.metric_points("httpcheck.error")
    assert error["attributes"]["http.url"] == closed and error["value"] == 1
    assert "refused" in error["attributes"]["error.message"].lower()
    assert {p["resource"]["service.name"] for p in status} == {"otel-monitor-probe"}
    out = capsys.readouterr().out
    assert f"up   GET {site.url}/ok: HTTP 200" in out
    assert f"down GET {site.url}/fail: HTTP 503" in out
    assert f"down GET {closed}: no answer:" in out


class Recorder:
    """An exporter that keeps each export's data as it was handed over."""

    def __init__(self) -> None:
        self.exports: list = []

    def export(self, data, **_: object) -> None:
        self.exports.append(data)


def _points(data) -> list:
    (rm,) = data.resource_metrics
    (sm,) = rm.scope_metrics
    return [(m.name, dict(p.attributes), p.value) for m in sm.metrics for p in m.data.data_points]


def test_a_changed_status_code_is_not_reported_again(site):
    """After /flip turns from 200 to 503, the next export carries only 503: no stale 2xx point lingers."""
    from opentelemetry.sdk.resources import Resource

    recorder, lines = Recorder(), []
    uptime = Uptime(interval=0.1, timeout=30, probes=(Probe(f"{site.url}/flip"),), configured=True)
    stop = threading.Event()
    run_probes(uptime, recorder, Resource.create({}), stop=stop, rounds=1, report=lines.append)
    site.flip_status = 503
    run_probes(uptime, recorder, Resource.create({}), stop=stop, rounds=1, report=lines.append)

    first, second = (_points(d) for d in recorder.exports)
    assert {a["http.status_code"] for n, a, _ in first if n == "httpcheck.status"} == {200}
    assert {a["http.status_code"] for n, a, _ in second if n == "httpcheck.status"} == {503}
    assert [(a["http.status_class"], v) for n, a, v in second if n == "httpcheck.status" and v] == [("5xx", 1)]


def test_state_changes_are_reported_once(site):
    """Three rounds up then a failure print two lines: the first state, and the change."""
    from opentelemetry.sdk.resources import Resource

    lines: list[str] = []
    uptime = Uptime(interval=0.05, timeout=30, probes=(Probe(f"{site.url}/flip"),), configured=True)
    assert run_probes(uptime, Recorder(), Resource.create({}), stop=threading.Event(), rounds=3, report=lines.append)
    assert len(lines) == 1 and lines[0].startswith("up ")


@pytest.mark.parametrize(
    ("section", "message"),
    [
        ("uptime:\n  probes:\n    - url: ftp://example.com/\n", "otel-monitor.yaml:3: an http:// or https:// URL"),
        ("uptime:\n  probes: []\n", "lists no URL under uptime: probes:"),
        ("uptime:\n  objective: 99.9\n  probes: [http://x.test/]\n", "otel-monitor.yaml:2: an uptime objective"),
    ],
)
def test_bad_uptime_sections_are_refused_with_file_and_line(tmp_path, capsys, section, message):
    """A bad probe list stops the command with exit 2 and says where."""
    config = Path(tmp_path / "otel-monitor.yaml")
    config.write_text(section)
    assert main(["probe", "--config", str(config), "--once"]) == 2
    assert message in capsys.readouterr().err

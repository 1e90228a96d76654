"""py-spy under load: where the instrumented server spends its CPU."""

from __future__ import annotations

import shutil
import subprocess
import sys
import threading
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchmarks.configurations import Configuration
from benchmarks.loadgen import run_wrk
from benchmarks.processes import ROOT, AppServer, clean_environment, free_port


@dataclass
class Profile:
    endpoint: str
    samples: int
    self_time: list[tuple[str, int]] = field(default_factory=list)
    by_package: dict[str, int] = field(default_factory=dict)
    raw_path: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {
            "endpoint": self.endpoint,
            "samples": self.samples,
            "raw": self.raw_path,
            "self_time": [{"frame": frame, "samples": n} for frame, n in self.self_time],
            "by_package": self.by_package,
        }


# Stack frames whose file path contains one of these count towards that group.
_GROUPS = {
    "otel_monitor": "/otel_monitor/",
    "opentelemetry (sdk, exporters, instrumentation)": "/opentelemetry/",
    "sqlalchemy": "/sqlalchemy/",
    "fastapi": "/fastapi/",
    "starlette": "/starlette/",
    "uvicorn": "/uvicorn/",
    "psutil (system metrics)": "/psutil/",
}
# Leaves where a thread sleeps on a lock (idle pool workers, the exporters'
# timers): py-spy's non-blocking sampling cannot always tell them from work.
_WAITING = ("Condition.wait", "Event.wait", "Thread._wait_for_tstate_lock")


def short_frame(frame: str) -> str:
    """'f (/x/site-packages/pkg/mod.py)' -> 'f (pkg/mod.py)'."""
    function, _, path = frame.partition(" (")
    for marker in ("site-packages/", "/lib/python3."):
        if marker in path:
            path = path.split(marker, 1)[1]
            if marker.startswith("/lib"):
                path = path.split("/", 1)[-1]
            break
    else:
        path = path.replace(str(ROOT) + "/", "")
    return f"{function} ({path}" if path else function


def summarize_collapsed(text: str, top: int = 15) -> tuple[int, list[tuple[str, int]], dict[str, int]]:
    """From py-spy's raw (collapsed) stacks: busy samples, top leaf frames, self time per package.

    A sample's time goes to the innermost frame of a known package, so the
    standard library's work is charged to the package that asked for it (the
    instrumentation middleware wraps everything, so counting every frame
    would charge it all to opentelemetry). Samples whose leaf is a lock wait
    are not busy: they count only under "waiting".
    """
    leaves: Counter[str] = Counter()
    groups: Counter[str] = Counter()
    total = 0
    for line in text.splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = stack.split(";")
        if frames[-1].partition(" (")[0] in _WAITING:
            groups["waiting"] += count
            continue
        total += count
        leaves[short_frame(frames[-1])] += count
        owner = next(
            (group for frame in reversed(frames) for group, marker in _GROUPS.items() if marker in frame), "other"
        )
        groups[owner] += count
    return total, leaves.most_common(top), dict(groups)


def profile_under_load(
    configuration: Configuration,
    app: str,
    path: str,
    seconds: float,
    connections: int,
    server_cpu: int | None,
    load_cpu: int | None,
    endpoint: str,
    out_dir: Path,
) -> Profile | None:
    """Record `seconds` of py-spy samples while wrk loads `path`; None when py-spy is absent."""
    # The harness's own venv has py-spy (dev extra); the profiled server's venv may not.
    py_spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    if not Path(py_spy).exists():
        print("  py-spy not found (it is in the dev extra): profile skipped")
        return None
    name = path.strip("/").replace("/", "_") or "root"
    raw_path = out_dir / f"profile-{configuration.key}-{name}.txt"
    port = free_port()
    server = AppServer(
        configuration.server_command(app, port),
        clean_environment(configuration.environment(endpoint)),
        port,
        server_cpu,
        out_dir / f"profile-{configuration.key}.log",
    )
    with server.start(ready_path=path):
        load = threading.Thread(target=run_wrk, args=(server.base_url + path, seconds + 2, connections, 1, load_cpu))
        load.start()
        # --nonblocking: sampling must not pause the server it measures.
        subprocess.run(
            [
                py_spy,
                "record",
                "--pid",
                str(server.pid),
                "--duration",
                str(int(seconds)),
                "--rate",
                "200",
                "--nonblocking",
                "--nolineno",
                "--full-filenames",
                "--format",
                "raw",
                "-o",
                str(raw_path),
            ],
            capture_output=True,
            timeout=seconds + 60,
        )
        load.join()
    if not raw_path.exists():
        print("  py-spy produced no profile (ptrace not permitted?)")
        return None
    total, top, groups = summarize_collapsed(raw_path.read_text())
    return Profile(path, total, top, groups, str(raw_path))

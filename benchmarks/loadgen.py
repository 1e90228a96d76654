"""Driving wrk and reading its report."""

from __future__ import annotations

import re
import shutil
import signal
import subprocess
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

_UNITS = {"us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
_SIZE_UNITS = {"B": 1, "KB": 1024, "MB": 1024**2, "GB": 1024**3, "TB": 1024**4}

# Each request gets a path never used before, up to `limit`; then the thread
# stops and leaves a marker file. wrk's main thread still sleeps out -d, so the
# harness interrupts it (SIGINT makes wrk print its report) once the marker appears.
_DISTINCT_PATHS_LUA = """
counter = 0
limit = {limit}
finished = false
request = function()
  counter = counter + 1
  return wrk.format("GET", "{prefix}" .. counter)
end
response = function(status, headers, body)
  if counter >= limit and not finished then
    finished = true
    io.open("{marker}", "w"):close()
    wrk.thread:stop()
  end
end
"""


class WrkError(RuntimeError):
    """wrk did not run, or printed a report this module cannot read."""


@dataclass
class WrkResult:
    requests: int
    seconds: float
    rps: float
    latency_avg: float
    p50: float
    p75: float
    p90: float
    p99: float
    non_2xx: int
    socket_errors: int

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def parse_duration(text: str) -> float:
    """'1.23ms' -> 0.00123 seconds."""
    match = re.fullmatch(r"([\d.]+)(us|ms|s|m|h)", text.strip())
    if not match:
        raise WrkError(f"unreadable duration {text!r} in wrk output")
    return float(match.group(1)) * _UNITS[match.group(2)]


def parse_wrk_output(text: str) -> WrkResult:
    """Read the report of `wrk --latency` into numbers (seconds, requests/s)."""
    percentiles: dict[str, float] = {}
    for pct, value in re.findall(r"^\s+(50|75|90|99)(?:\.0+)?%\s+(\S+)\s*$", text, re.MULTILINE):
        percentiles[pct] = parse_duration(value)
    done = re.search(r"^\s*(\d+) requests in ([\d.]+\w+),", text, re.MULTILINE)
    rps = re.search(r"^Requests/sec:\s+([\d.]+)", text, re.MULTILINE)
    avg = re.search(r"^\s+Latency\s+(\S+)", text, re.MULTILINE)
    if not (done and rps and avg) or len(percentiles) < 4:
        raise WrkError("wrk output lacks the summary or the --latency distribution:\n" + text)
    non_2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", text)
    sockets = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
    return WrkResult(
        requests=int(done.group(1)),
        seconds=parse_duration(done.group(2)),
        rps=float(rps.group(1)),
        latency_avg=parse_duration(avg.group(1)),
        p50=percentiles["50"],
        p75=percentiles["75"],
        p90=percentiles["90"],
        p99=percentiles["99"],
        non_2xx=int(non_2xx.group(1)) if non_2xx else 0,
        socket_errors=sum(int(n) for n in sockets.groups()) if sockets else 0,
    )


def wrk_command(
    url: str, duration: float, connections: int, threads: int, cpu: int | None = None, script: Path | None = None
) -> list[str]:
    command = [
        "wrk",
        "--latency",
        f"-t{threads}",
        f"-c{connections}",
        f"-d{max(1, round(duration))}s",
        "--timeout",
        "10s",
    ]
    if script is not None:
        command += ["-s", str(script)]
    command.append(url)
    if cpu is not None and shutil.which("taskset"):
        command = ["taskset", "-c", str(cpu), *command]
    return command


def run_wrk(
    url: str,
    duration: float,
    connections: int = 32,
    threads: int = 1,
    cpu: int | None = None,
    script: Path | None = None,
    finished_marker: Path | None = None,
) -> WrkResult:
    """Load `url` for `duration` seconds, or until `finished_marker` exists; bounded by a hard timeout."""
    if shutil.which("wrk") is None:
        raise WrkError("wrk is not installed: apt-get install wrk")
    command = wrk_command(url, duration, connections, threads, cpu, script)
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + duration + 60
    while process.poll() is None and time.monotonic() < deadline:
        if finished_marker is not None and finished_marker.exists():
            process.send_signal(signal.SIGINT)
            break
        time.sleep(0.1)
    try:
        stdout, stderr = process.communicate(timeout=max(1.0, deadline - time.monotonic()))
    except subprocess.TimeoutExpired:
        process.kill()
        process.communicate()
        raise WrkError(f"{' '.join(command)} did not finish within {duration + 60:.0f} s") from None
    if process.returncode != 0:
        raise WrkError(f"{' '.join(command)} failed ({process.returncode}): {stderr.strip()}")
    return parse_wrk_output(stdout)


def run_distinct_paths(
    base_url: str, prefix: str, count: int, max_seconds: float, connections: int = 32, cpu: int | None = None
) -> WrkResult:
    """Send up to `count` requests, each to a path never seen before (`prefix` + n)."""
    with tempfile.TemporaryDirectory() as tmp:
        script = Path(tmp) / "distinct.lua"
        marker = Path(tmp) / "finished"
        script.write_text(_DISTINCT_PATHS_LUA.format(limit=count, prefix=prefix, marker=marker))
        # One thread, so the Lua counter covers every request.
        return run_wrk(base_url, max_seconds, connections, 1, cpu, script, marker)

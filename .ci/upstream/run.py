"""The upstream projects' own test suites, run stock and with otel-monitor's replacements swapped in.

otel-monitor replaces the SDK's span type, its OTLP encoders and OTLP/HTTP
exporters, and FastAPI's request path. This runs the test suites that ship in
the sdists of the pinned releases twice each: stock, then with the
replacements put where production puts them (``swap.py``, a pytest plugin).
A test that passes stock and fails swapped fails the run, unless
``intended.txt`` lists it with the reason it is an intended difference.

    python .ci/upstream/run.py                 # the pinned releases
    python .ci/upstream/run.py --newest        # the newest releases (the canary)

Needs network access to PyPI for the sdists and the suites' test
dependencies, cached under ``$OTEL_MONITOR_CACHE`` (default
``~/.cache/otel-monitor``).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tarfile
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
CACHE = Path(os.environ.get("OTEL_MONITOR_CACHE", Path.home() / ".cache" / "otel-monitor")) / "upstream"


@dataclass(frozen=True)
class Suite:
    project: str
    version: str
    tests: tuple[str, ...]
    swaps: str  # what swap.py puts in place for this suite
    deps: tuple[str, ...] = ()  # the suite's own test dependencies beyond otel-monitor's


SUITES = (
    Suite("opentelemetry-sdk", "1.45.1", ("tests",), "spans",
          ("opentelemetry-test-utils==0.66b1", "flaky", "pytest-timeout")),
    Suite("opentelemetry-exporter-otlp-proto-common", "1.45.1", ("tests",), "encoders",
          ("opentelemetry-test-utils==0.66b1",)),
    Suite("opentelemetry-exporter-otlp-proto-http", "1.45.1", ("tests",), "exporters",
          ("opentelemetry-test-utils==0.66b1", "responses", "requests", "mocket")),
    Suite("fastapi", "0.165.0", ("tests/test_telemetry", "tests/test_tutorial"), "fastapi,spans",
          ("httpx>=0.27,<1", "httpx2>=2.0.0", "anyio[trio]>=4.1,<5", "dirty-equals>=0.9", "inline-snapshot>=0.21.1",
           "pwdlib[argon2]>=0.2.1", "pyjwt>=2.9", "sqlmodel>=0.0.31", "pyyaml", "python-multipart",
           "email-validator", "jinja2", "itsdangerous", "orjson", "ujson", "pydantic-settings", "pydantic-extra-types",
           "flask>=3,<4", "a2wsgi>=1.9,<=2.0", "strawberry-graphql>=0.200,<1", "typer", "pytest-timeout",
           "pytest-xdist")),
)


def sh(*args: str, **kwargs: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, check=True, text=True, **kwargs)  # type: ignore[call-overload, no-any-return]


def newest(project: str, python: Path) -> str:
    out = subprocess.run([str(python), "-m", "pip", "index", "versions", project], text=True, capture_output=True,
                         check=True).stdout
    return out.split("(", 1)[1].split(")", 1)[0]


def source(suite: Suite, python: Path) -> Path:
    """The sdist's folder, downloaded and unpacked once."""
    folder = CACHE / f"{suite.project}-{suite.version}"
    if (folder / ".unpacked").exists():
        return folder
    download = CACHE / "sdists"
    download.mkdir(parents=True, exist_ok=True)
    sh(str(python), "-m", "pip", "download", "--quiet", "--no-deps", "--no-binary", ":all:", "--dest", str(download),
       f"{suite.project}=={suite.version}")
    stem = suite.project.replace("-", "_")
    archive = next(p for p in download.iterdir() if p.name.lower().startswith(f"{stem}-{suite.version}".lower()))
    folder.mkdir(parents=True, exist_ok=True)
    with tarfile.open(archive) as tar:
        top = tar.getnames()[0].split("/")[0]
        tar.extractall(folder.parent / "unpack", filter="data")
    unpacked = folder.parent / "unpack" / top
    for child in unpacked.iterdir():
        child.rename(folder / child.name)
    (folder / ".unpacked").touch()
    return folder


def environment(venv: Path, pins: list[str]) -> Path:
    """A virtual environment with otel-monitor, the releases under test and every suite's test dependencies."""
    python = venv / "bin" / "python"
    if not python.exists():
        sh(sys.executable, "-m", "venv", str(venv))
        sh(str(python), "-m", "pip", "install", "--quiet", "--upgrade", "pip")
    deps = sorted({d for s in SUITES for d in s.deps})
    sh(str(python), "-m", "pip", "install", "--quiet", "-e", f"{ROOT}[fastapi,sqlalchemy,httpx]", "pytest", *deps,
       *pins)
    return python


def outcomes(report: Path) -> dict[str, str]:
    """Test id -> passed, failed or skipped, from a JUnit report."""
    if not report.exists():
        return {}
    result = {}
    for case in ET.parse(report).iter("testcase"):
        test_id = f"{case.get('classname')}::{case.get('name')}"
        if case.find("failure") is not None or case.find("error") is not None:
            result[test_id] = "failed"
        elif case.find("skipped") is not None:
            result[test_id] = "skipped"
        else:
            result[test_id] = "passed"
    return result


def run(suite: Suite, folder: Path, python: Path, swapped: bool, out: Path) -> dict[str, str]:
    report = out / f"{suite.project}-{'swapped' if swapped else 'stock'}.xml"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "PYTEST_"))}
    args = [str(python), "-m", "pytest", "-q", "-p", "no:cacheprovider", "-o", "addopts=", "--timeout=120",
            f"--junitxml={report}", "-W", "ignore::DeprecationWarning", *suite.tests]
    if swapped:
        env["PYTHONPATH"] = str(HERE)
        env["UPSTREAM_SWAP"] = suite.swaps
        args[3:3] = ["-p", "swap"]
    started = time.monotonic()
    subprocess.run(args, cwd=folder, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False,
                   timeout=1800)
    got = outcomes(report)
    counts = {kind: sum(v == kind for v in got.values()) for kind in ("passed", "failed", "skipped")}
    print(f"  {suite.project} {'swapped' if swapped else 'stock  '}: {counts['passed']} passed, "
          f"{counts['failed']} failed, {counts['skipped']} skipped ({time.monotonic() - started:.0f} s)", flush=True)
    return got


def intended() -> dict[str, str]:
    """Test id -> reason, from intended.txt (``project test-id  # reason``)."""
    listed = {}
    for line in (HERE / "intended.txt").read_text().splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        entry, _, reason = line.partition("#")
        project, test_id = entry.split(None, 1)
        listed[f"{project} {test_id.strip()}"] = reason.strip()
    return listed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--newest", action="store_true", help="the newest releases instead of the pinned ones")
    parser.add_argument("--only", default="", help="comma-separated projects to run")
    args = parser.parse_args()
    venv = CACHE / ("venv-newest" if args.newest else "venv")
    python = environment(venv, [])
    suites = [s for s in SUITES if not args.only or s.project in args.only.split(",")]
    if args.newest:
        # The canary keeps to the telemetry tests: FastAPI's tutorial tests exercise FastAPI itself.
        suites = [Suite(s.project, newest(s.project, python), tuple(t for t in s.tests if "tutorial" not in t),
                        s.swaps, s.deps) for s in suites]
        # Past the pins, as the canary installs them: the newest releases over otel-monitor's environment,
        # without letting pip refuse them for the pins (the SDK's API and proto packages move with it).
        sdk = next((s.version for s in suites if s.project == "opentelemetry-sdk"), None)
        family = [f"opentelemetry-api=={sdk}", f"opentelemetry-proto=={sdk}"] if sdk else []
        sh(str(python), "-m", "pip", "install", "--quiet", "--no-deps", "--upgrade",
           *[f"{s.project}=={s.version}" for s in suites], *family)
    out = ROOT / "test-artifacts" / "upstream"
    out.mkdir(parents=True, exist_ok=True)
    listed = intended()
    regressions, seen_intended, summary = [], [], []
    for suite in suites:
        folder = source(suite, python)
        stock = run(suite, folder, python, False, out)
        swapped = run(suite, folder, python, True, out)
        lost = sorted(t for t, v in stock.items() if v == "passed" and swapped.get(t, "failed") == "failed")
        mine = [t for t in lost if f"{suite.project} {t}" in listed]
        seen_intended += [(suite.project, t, listed[f"{suite.project} {t}"]) for t in mine]
        regressions += [(suite.project, t) for t in lost if t not in mine]
        summary.append({"project": suite.project, "version": suite.version, "tests": len(stock),
                        "stock_passed": sum(v == "passed" for v in stock.values()),
                        "swapped_passed": sum(v == "passed" for v in swapped.values()),
                        "intended": len(mine), "regressions": len(lost) - len(mine)})
    print("\nupstream suites (stock / swapped / intended differences / regressions):")
    for row in summary:
        print(f"  {row['project']} {row['version']}: {row['tests']} tests, {row['stock_passed']} pass stock, "
              f"{row['swapped_passed']} pass swapped, {row['intended']} intended, {row['regressions']} regressions")
    for project, test_id, reason in seen_intended:
        print(f"  intended: {project} {test_id}: {reason}")
    for project, test_id in regressions:
        print(f"  REGRESSION: {project} {test_id} passes stock and fails with otel-monitor's replacement")
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    return 1 if regressions else 0


if __name__ == "__main__":
    sys.exit(main())

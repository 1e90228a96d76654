"""The configurations compared side by side, and the vanilla venv they need."""

from __future__ import annotations

import hashlib
import subprocess
import sys
from dataclasses import dataclass, field
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from benchmarks.processes import ROOT

VANILLA_VENV = ROOT / "benchmarks" / ".venvs" / "vanilla"
# The SDK's own configurator, registered as "sdk_floor" by a dist-info directory (see its README).
FLOOR_DIR = ROOT / "benchmarks" / "floor"
CONTRIB_VERSION = "0.66b1"

# The app's own dependencies are pinned to the versions otel-monitor's venv has,
# so the vanilla and otel-monitor servers run the same FastAPI/SQLAlchemy/uvicorn.
_APP_PACKAGES = ("fastapi", "starlette", "SQLAlchemy", "uvicorn", "PyYAML", "httpx")


def installed_version(package: str) -> str | None:
    try:
        return version(package)
    except PackageNotFoundError:
        return None


def vanilla_requirements() -> list[str]:
    sdk = installed_version("opentelemetry-sdk")
    requirements = [
        f"opentelemetry-distro=={CONTRIB_VERSION}",
        f"opentelemetry-instrumentation-fastapi=={CONTRIB_VERSION}",
        f"opentelemetry-instrumentation-sqlalchemy=={CONTRIB_VERSION}",
        f"opentelemetry-exporter-otlp-proto-http=={sdk}" if sdk else "opentelemetry-exporter-otlp-proto-http",
        f"opentelemetry-sdk=={sdk}" if sdk else "opentelemetry-sdk",
    ]
    for package in _APP_PACKAGES:
        pinned = installed_version(package)
        requirements.append(f"{package}=={pinned}" if pinned else package)
    return requirements


def ensure_vanilla_venv(venv: Path = VANILLA_VENV) -> Path:
    """Create (once per requirement set) the venv with opentelemetry-distro; returns its bin dir."""
    requirements = vanilla_requirements()
    stamp = venv / ".bench-requirements"
    digest = hashlib.sha256("\n".join(requirements).encode()).hexdigest()
    if stamp.exists() and stamp.read_text() == digest and (venv / "bin" / "opentelemetry-instrument").exists():
        return venv / "bin"
    print(f"creating the vanilla venv in {venv} ...", flush=True)
    subprocess.run([sys.executable, "-m", "venv", "--clear", str(venv)], check=True)
    subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet", *requirements], check=True)
    stamp.write_text(digest)
    return venv / "bin"


def sqlalchemy_instrumentation_conflict(bin_dir: Path) -> str | None:
    """The conflict the SQLAlchemy instrumentation declares with the venv's SQLAlchemy, if any.

    The launcher skips an instrumentation that declares one, unless a distro loads it itself.
    """
    probe = (
        "from importlib.metadata import distribution\n"
        "from opentelemetry.instrumentation.dependencies import get_dist_dependency_conflicts\n"
        "c = get_dist_dependency_conflicts(distribution('opentelemetry-instrumentation-sqlalchemy'))\n"
        "print(c or '')\n"
    )
    done = subprocess.run([str(bin_dir / "python"), "-c", probe], capture_output=True, text=True, timeout=60)
    if done.returncode != 0:
        return f"probe failed: {done.stderr.strip()[-200:]}"
    return done.stdout.strip() or None


@dataclass
class Configuration:
    """One way of running the same app: which launcher, which environment."""

    key: str
    label: str
    bin_dir: Path
    instrumented: bool
    env: dict[str, str] = field(default_factory=dict)

    def server_command(self, app: str, port: int) -> list[str]:
        uvicorn = [
            str(self.bin_dir / "uvicorn"),
            app,
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            "1",
            "--no-access-log",
            "--log-level",
            "warning",
        ]
        if self.instrumented:
            return [str(self.bin_dir / "opentelemetry-instrument"), *uvicorn]
        return uvicorn

    def startup_command(self) -> list[str]:
        python = str(self.bin_dir / "python")
        if self.instrumented:
            return [str(self.bin_dir / "opentelemetry-instrument"), python, "-c", "pass"]
        return [python, "-c", "pass"]

    def environment(self, endpoint: str, service: str | None = None) -> dict[str, str]:
        """Exporter settings shared by every instrumented configuration, then its own."""
        if not self.instrumented:
            return {}
        return {
            "OTEL_SERVICE_NAME": service or f"bench-{self.key}",
            "OTEL_TRACES_EXPORTER": "otlp",
            "OTEL_METRICS_EXPORTER": "otlp",
            "OTEL_LOGS_EXPORTER": "otlp",
            "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
            "OTEL_EXPORTER_OTLP_ENDPOINT": endpoint,
            # Metrics reach the receiver within each measured window.
            "OTEL_METRIC_EXPORT_INTERVAL": "5000",
            **self.env,
        }


def build_configurations(monitor_bin: Path, vanilla_bin: Path | None) -> list[Configuration]:
    """Uninstrumented, vanilla (when its venv exists), otel-monitor full, otel-monitor production."""
    configurations = [Configuration("uninstrumented", "uninstrumented", monitor_bin, instrumented=False)]
    if vanilla_bin is not None:
        configurations.append(
            Configuration(
                "vanilla",
                "vanilla opentelemetry-distro",
                vanilla_bin,
                instrumented=True,
                env={
                    # Name the distro so an otel-monitor on the path could never be picked.
                    "OTEL_PYTHON_DISTRO": "distro",
                    "OTEL_PYTHON_CONFIGURATOR": "configurator",
                    "OTEL_PYTHON_LOGGING_AUTO_INSTRUMENTATION_ENABLED": "true",
                },
            )
        )
    monitor = {"OTEL_PYTHON_DISTRO": "otel_monitor", "OTEL_PYTHON_CONFIGURATOR": "otel_monitor"}
    configurations.append(
        Configuration(
            "monitor-full",
            "otel-monitor, every trace kept",
            monitor_bin,
            instrumented=True,
            env={**monitor, "OTEL_TRACES_SAMPLER": "parentbased_always_on"},
        )
    )
    configurations.append(
        Configuration(
            "monitor-production",
            "otel-monitor, production profile",
            monitor_bin,
            instrumented=True,
            env={
                **monitor,
                "OTEL_TRACES_SAMPLER": "parentbased_traceidratio",
                "OTEL_TRACES_SAMPLER_ARG": "0.1",
                "OTEL_MONITOR_LOG_LEVEL": "INFO",
            },
        )
    )
    return configurations


def startup_floors(monitor_bin: Path) -> list[Configuration]:
    """What the launcher and the SDK cost in otel-monitor's venv before any otel-monitor code runs.

    The launcher's default distro and no instrumentation. ``floor-launcher``
    loads no configurator: the two processes of ``opentelemetry-instrument``
    and its own imports, nothing else. The others add the SDK's own
    configurator (``_OTelSDKConfigurator``, registered by :data:`FLOOR_DIR`):
    ``floor-sdk`` sets up its tracer, meter and logger providers with no
    exporter; ``floor-otlp`` adds its OTLP/HTTP exporters for the three
    signals, as any distro that exports through the SDK must, on the SDK's
    urllib3 transport as otel-monitor's are.
    """
    base = {
        "OTEL_PYTHON_DISTRO": "launcher-default",  # names no installed distro: the launcher's DefaultDistro
        "OTEL_PYTHON_CONFIGURATOR": "sdk_floor",
        "OTEL_PYTHON_DISABLED_INSTRUMENTATIONS": "*",
        "PYTHONPATH": str(FLOOR_DIR),
    }
    nothing = {"OTEL_TRACES_EXPORTER": "none", "OTEL_METRICS_EXPORTER": "none", "OTEL_LOGS_EXPORTER": "none"}
    return [
        Configuration(
            "floor-launcher",
            "floor: the launcher alone, no SDK",
            monitor_bin,
            instrumented=True,
            env={**base, **nothing, "OTEL_PYTHON_CONFIGURATOR": "none"},
        ),  # names no configurator
        Configuration(
            "floor-sdk",
            "floor: launcher + SDK providers, no exporter",
            monitor_bin,
            instrumented=True,
            env={**base, **nothing},
        ),
        Configuration(
            "floor-otlp", "floor: launcher + SDK providers and OTLP exporters", monitor_bin, instrumented=True, env=base
        ),
    ]

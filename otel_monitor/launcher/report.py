"""``otel-monitor config``: effective settings, where each came from, and what loads."""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
from typing import Any

from otel_monitor.config.settings import SETTINGS, ConfigError, markdown_table
from otel_monitor.launcher.distro import DEFAULTS

# Standard variables worth showing even when unset (with the SDK's default).
STANDARD = {
    "OTEL_SERVICE_NAME": "unknown_service",
    "OTEL_RESOURCE_ATTRIBUTES": "",
    "OTEL_TRACES_EXPORTER": "otlp",
    "OTEL_METRICS_EXPORTER": "otlp",
    "OTEL_LOGS_EXPORTER": "otlp",
    "OTEL_EXPORTER_OTLP_ENDPOINT": "http://localhost:4318",
    "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
    "OTEL_EXPORTER_OTLP_COMPRESSION": "none",
    "OTEL_EXPORTER_OTLP_TIMEOUT": "10",
    "OTEL_TRACES_SAMPLER": "parentbased_always_on",
    "OTEL_TRACES_SAMPLER_ARG": "",
    "OTEL_BSP_SCHEDULE_DELAY": "5000",
    "OTEL_BSP_MAX_QUEUE_SIZE": "2048",
    "OTEL_BSP_MAX_EXPORT_BATCH_SIZE": "512",
    "OTEL_METRIC_EXPORT_INTERVAL": "60000",
    "OTEL_PYTHON_DISABLED_INSTRUMENTATIONS": "",
}
_SECRET_WORDS = ("HEADERS", "KEY", "TOKEN", "PASSWORD", "SECRET")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print JSON instead of text")
    parser.add_argument("--markdown", action="store_true", help="print the README settings table and exit")


def _hide(name: str, value: str) -> str:
    return "<set, hidden>" if value and any(w in name for w in _SECRET_WORDS) else value


def distro_clash() -> list[str]:
    """Warnings when another distro or configurator could be picked by the launcher."""
    from opentelemetry.util._importlib_metadata import entry_points

    warnings = []
    for group, env in (
        ("opentelemetry_distro", "OTEL_PYTHON_DISTRO"),
        ("opentelemetry_configurator", "OTEL_PYTHON_CONFIGURATOR"),
    ):
        names = [ep.name for ep in entry_points(group=group)]
        others = [n for n in names if n != "otel_monitor"]
        chosen = os.environ.get(env)
        if others and chosen != "otel_monitor":
            warnings.append(
                f"{group} entry points {', '.join(others)} are installed besides otel_monitor; the launcher takes "
                f"{'the first one found' if chosen is None else chosen!r}. Set {env}=otel_monitor to use otel-monitor."
            )
    return warnings


def instrumentations_not_installed() -> list[dict[str, str]]:
    """Installed libraries with an OpenTelemetry instrumentation that is not installed, and how to add it.

    The list is ``opentelemetry-bootstrap``'s (``bootstrap_gen.libraries``); the
    command is otel-monitor's extra when one brings that instrumentation, else
    the instrumentation package itself. Instrumentations otel-monitor does not
    load on their own (ASGI, WSGI, DB-API, system metrics) are left out.
    """
    from importlib import metadata

    from opentelemetry.instrumentation.bootstrap_gen import libraries
    from packaging.requirements import InvalidRequirement, Requirement

    from otel_monitor.launcher.instrumentations import _SKIP, _TRIGGERS

    skipped = {name.replace("_", "-") for name in _SKIP}
    if _installed("fastapi"):
        skipped.add("starlette")  # a FastAPI app's requests are traced through FastAPI
    extras: dict[str, str] = {}  # instrumentation distribution -> our extra that brings it
    try:
        ours = [e for e in metadata.metadata("otel-monitor").get_all("Provides-Extra") or [] if e != "dev"]
        for line in metadata.requires("otel-monitor") or []:
            requirement = Requirement(line)
            extra = next((e for e in ours if requirement.marker and requirement.marker.evaluate({"extra": e})), None)
            if extra:
                extras.setdefault(_canonical(requirement.name), extra)
    except (metadata.PackageNotFoundError, InvalidRequirement):
        pass
    out = []
    for entry in libraries:
        try:
            library, instrumentation = Requirement(entry["library"]), Requirement(entry["instrumentation"])
        except InvalidRequirement:
            continue
        name = _canonical(instrumentation.name)
        if name.removeprefix("opentelemetry-instrumentation-") in skipped or _installed(instrumentation.name):
            continue
        trigger = _TRIGGERS.get(name.removeprefix("opentelemetry-instrumentation-"))
        if trigger and not _importable(trigger):  # a library named for another's sake (pydantic for tortoise)
            continue
        found = _installed(library.name)
        if found is None or not library.specifier.contains(found, prereleases=True):
            continue
        extra = extras.get(name)
        command = f'pip install "otel-monitor[{extra}]"' if extra else f'pip install "{instrumentation}"'
        out.append({"library": f"{library.name} {found}", "instrumentation": str(instrumentation), "install": command})
    return out


def _canonical(name: str) -> str:
    return name.lower().replace("_", "-").replace(".", "-")


def _importable(module: str) -> bool:
    import importlib.util

    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def _installed(distribution: str) -> str | None:
    from importlib import metadata

    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return None


def collect() -> dict[str, Any]:
    from otel_monitor.fast import compat
    from otel_monitor.launcher.config_check import check_configuration
    from otel_monitor.launcher.instrumentations import REPORT, InstrumentationLoader

    checked = check_configuration()
    settings, config = checked.settings, checked.config
    ours = []
    for s in SETTINGS:
        r = settings.resolved[s.key]
        shown = "<set, hidden>" if s.secret and r.value else ("" if r.raw is None else r.raw)
        ours.append({"name": s.env, "value": shown, "source": r.source})
    standard = []
    names = sorted(
        set(STANDARD) | {k for k in os.environ if k.startswith("OTEL_") and not k.startswith("OTEL_MONITOR_")}
    )
    for name in names:
        if name in os.environ:
            value, source = os.environ[name], "environment"
        elif name in DEFAULTS:
            value, source = DEFAULTS[name], "otel-monitor default"
        else:
            value, source = STANDARD.get(name, ""), "SDK default"
        standard.append({"name": name, "value": _hide(name, value), "source": source})
    REPORT.clear()
    InstrumentationLoader(settings, None, dry_run=True).start()
    instrumentations = [{"name": d.name, "state": d.state, "reason": d.reason} for d in REPORT.values()]
    return {
        "config_file": config.path if settings.config else None,
        "settings": ours,
        "standard": standard,
        "instrumentations": instrumentations,
        "fast_paths": [dataclasses.asdict(s) for s in compat.table(settings)],
        "not_installed": instrumentations_not_installed(),
        "warnings": distro_clash(),
        "problems": checked.problems,
    }


def run(args: argparse.Namespace) -> int:
    if args.markdown:
        print(markdown_table())
        return 0
    try:
        report = collect()
    except ConfigError as exc:  # OTEL_MONITOR_STRICT=true: the launcher would stop the app here
        print(f"otel-monitor: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(report, indent=2))
        return 1 if report["problems"] else 0
    for warning in report["warnings"]:
        print(f"WARNING: {warning}")
    for problem in report["problems"]:
        print(f"PROBLEM: {problem}")
    print(f"config file: {report['config_file'] or '(none; set OTEL_MONITOR_CONFIG)'}")
    for title, rows in (("otel-monitor settings", report["settings"]), ("OpenTelemetry settings", report["standard"])):
        print(f"\n{title}:")
        width = max(len(r["name"]) for r in rows)
        for r in rows:
            print(f"  {r['name']:<{width}}  {r['value'] or '-':<30}  ({r['source']})")
    print("\ninstrumentations:")
    for r in report["instrumentations"]:
        print(f"  {r['name']:<16} {r['state']:<20} {r['reason']}")
    print("\nfast paths (private internals of a dependency; each falls back to its public path):")
    from otel_monitor.fast import compat

    for line in compat.lines([compat.PathStatus(**r) for r in report["fast_paths"]]):
        print(line)
    if report["not_installed"]:
        print("\ninstalled libraries without their instrumentation (not traced):")
        for r in report["not_installed"]:
            print(f"  {r['library']:<24} {r['install']}")
    return 1 if report["problems"] else 0

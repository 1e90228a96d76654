"""``otel-monitor config``: effective settings, where each came from, and what loads."""

from __future__ import annotations

import argparse
import json
import os
from typing import Any

from otel_monitor.config.settings import SETTINGS, markdown_table
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
    for group, env in (("opentelemetry_distro", "OTEL_PYTHON_DISTRO"),
                       ("opentelemetry_configurator", "OTEL_PYTHON_CONFIGURATOR")):
        names = [ep.name for ep in entry_points(group=group)]
        others = [n for n in names if n != "otel_monitor"]
        chosen = os.environ.get(env)
        if others and chosen != "otel_monitor":
            warnings.append(
                f"{group} entry points {', '.join(others)} are installed besides otel_monitor; the launcher takes "
                f"{'the first one found' if chosen is None else chosen!r}. Set {env}=otel_monitor to use otel-monitor.")
    return warnings


def collect() -> dict[str, Any]:
    from otel_monitor.launcher.configurator import load_configuration
    from otel_monitor.launcher.instrumentations import REPORT, InstrumentationLoader

    settings, config = load_configuration()
    ours = []
    for s in SETTINGS:
        r = settings.resolved[s.key]
        shown = "<set, hidden>" if s.secret and r.value else ("" if r.raw is None else r.raw)
        ours.append({"name": s.env, "value": shown, "source": r.source})
    standard = []
    names = sorted(set(STANDARD)
                   | {k for k in os.environ if k.startswith("OTEL_") and not k.startswith("OTEL_MONITOR_")})
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
        "warnings": distro_clash(),
        "problems": settings.problems,
    }


def run(args: argparse.Namespace) -> int:
    if args.markdown:
        print(markdown_table())
        return 0
    report = collect()
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
    return 1 if report["problems"] else 0

"""The ``otel-monitor`` command.

Each subcommand lives in the module of its concern and is imported only when
it runs, so ``otel-monitor --help`` stays fast.  A subcommand module exposes
``add_arguments(parser)`` and ``run(args) -> int``.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

# name -> (module, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "config": (
        "otel_monitor.launcher.report",
        "print effective settings, their sources, and which instrumentations load",
    ),
    "rules": ("otel_monitor.launcher.rules_command", "generate Prometheus rules from the SLOs in the config file"),
    "console": ("otel_monitor.console.cli", "run the local OTLP receiver and web console"),
    "status": ("otel_monitor.console.status", "print health per service and exit non-zero when any is unhealthy"),
    "probe": (
        "otel_monitor.launcher.probe_command",
        "probe the config file's uptime URLs from outside and send httpcheck metrics over OTLP",
    ),
}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="otel-monitor", description="OpenTelemetry monitoring for Python services.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    argv = list(sys.argv[1:] if argv is None else argv)
    chosen = next((a for a in argv if not a.startswith("-")), None)
    for name, (module_name, help_text) in COMMANDS.items():
        command_parser = sub.add_parser(name, help=help_text, description=help_text)
        if name == chosen:
            module = importlib.import_module(module_name)
            module.add_arguments(command_parser)
            command_parser.set_defaults(command_run=module.run)
    args = parser.parse_args(argv)
    if not getattr(args, "command_run", None):
        parser.print_help()
        return 2
    return int(args.command_run(args) or 0)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

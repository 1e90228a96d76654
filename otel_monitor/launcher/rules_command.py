"""``otel-monitor rules``: the config file checked as the launcher checks it, then the rules generated.

The generator (:mod:`otel_monitor.alerting.rules`) reads the ``slos:``
section only; a user running it still hears about every other problem the
launcher would report (an unknown key in ``operations:``, a bad setting), with
the same messages, and ``OTEL_MONITOR_STRICT=true`` turns them into an error
here as it stops the app there.
"""

from __future__ import annotations

import argparse
import sys

from otel_monitor.alerting import rules
from otel_monitor.config.settings import ConfigError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    rules.add_arguments(parser)


def run(args: argparse.Namespace) -> int:
    if not args.config:
        return rules.run(args)
    from otel_monitor.launcher.config_check import check_configuration

    try:
        # The SLOs are the generator's to judge: a bad one fails generation, it is not a warning.
        checked = check_configuration(args.config, skip=("slos",))
    except ConfigError as exc:
        print(f"otel-monitor rules: {exc}", file=sys.stderr)
        return 2
    if checked.config.path != args.config:  # unreadable or not YAML: the generator says so and stops
        return rules.run(args)
    for problem in checked.problems:
        print(f"otel-monitor rules: warning: {problem}", file=sys.stderr)
    return rules.run(args, checked.config)

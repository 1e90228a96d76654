"""The distro: environment defaults for the launcher, and instrumentor options.

It only sets defaults (``os.environ.setdefault``: every variable the user set
wins) and decides how each instrumentor is loaded; the configurator wires the
SDK.
"""

from __future__ import annotations

import os
from typing import Any

# The module is marked `# type: ignore` as a whole, so mypy sees none of its names.
from opentelemetry.instrumentation.distro import BaseDistro  # type: ignore[attr-defined]

from otel_monitor.launcher.env_defaults import DEFAULTS, apply_defaults
from otel_monitor.launcher.instrumentations import DISABLED_ENV, USER_DISABLED_ENV

__all__ = ["DEFAULTS", "MonitorDistro", "apply_defaults"]


class MonitorDistro(BaseDistro):
    """otel-monitor's distro for ``opentelemetry-instrument``."""

    def _configure(self, **kwargs: Any) -> None:
        apply_defaults()
        from otel_monitor.launcher.sdk_env import check_before_sdk_import, exit_launcher

        try:
            check_before_sdk_import(DEFAULTS)
        except SystemExit as exc:  # strict mode: the one line is printed
            exit_launcher(exc.code)
        # We load instrumentors ourselves, lazily (see otel_monitor.launcher.instrumentations):
        # keep the user's list for that, and make the launcher's own loop a no-op.
        if USER_DISABLED_ENV not in os.environ:
            os.environ[USER_DISABLED_ENV] = os.environ.get(DISABLED_ENV, "")
        os.environ[DISABLED_ENV] = "*"

    def load_instrumentor(self, entry_point: Any, **kwargs: Any) -> None:
        """Instantiate and instrument one entry point with the options given.

        :class:`~otel_monitor.launcher.instrumentations.InstrumentationLoader` calls this
        with the tuned options of :func:`~otel_monitor.launcher.instrumentations.tuned_kwargs`.
        """
        instrumentor = entry_point.load()
        instrumentor().instrument(**kwargs)

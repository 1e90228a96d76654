"""The process's runtime state: one object, created by the configuration.

Everything a configuration builds and that code called back by the SDK or
the app needs later (the settings, the providers, the processor pipeline,
the instruments, the error classifier, the journey recorder, the health
registry…) is a field of one :class:`Runtime`.  The configurator creates it
and :func:`install`\\ s it; everything else reads it through :func:`current`.
Before configuration (an app that calls ``cache_lookup`` without the
launcher, a unit test) :func:`current` returns an unconfigured runtime whose
fields the modules that own them fill lazily with defaults on the global
providers.

This is a base module: it imports nothing of ours, so every layer may read
it.  Its fields are typed ``Any`` for the same reason (their classes live in
the layers above); the comment beside each names the class.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Runtime:
    """What one configuration built; a second configuration returns the first one's."""

    settings: Any = None  # config.settings.Settings; None until configured
    config: Any = None  # config.file.ConfigFile
    providers: dict[str, Any] = field(default_factory=dict)  # "traces", "metrics", "logs" -> SDK provider
    problems: list[str] = field(default_factory=list)  # bad configuration, one line each
    pipeline: Any = None  # pipeline.processors.Pipeline, once built
    default_pipeline: Any = None  # the built-in one, scrubbing until (or if never) a pipeline is built
    instruments: Any = None  # pipeline.instruments.Instruments
    classifier: Any = None  # semantics.errors.ErrorClassifier with the config file's rules
    operation_namer: Any = None  # (span) -> str | None, from the operation rules
    journey_recorder: Any = None  # semantics.journeys.JourneyRecorder
    distinct_users: Any = None  # pipeline.business.DistinctUsers
    internal_errors: Any = None  # the monitor.sdk.internal_errors counter the guard adds to
    health_registry: Any = None  # health.registry.HealthRegistry
    status_page: dict[str, Any] | None = None  # what the launcher's status page adds to each app
    health_endpoints: dict[str, Any] | None = None  # what the health endpoints add to each app
    # Guards the lazy filling of the fields above; renewed in a forked child.
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    @property
    def configured(self) -> bool:
        return self.settings is not None


_runtime = Runtime()


def current() -> Runtime:
    """The runtime of this process: the configured one, or the unconfigured default."""
    return _runtime


def configured() -> Runtime | None:
    """The runtime the configuration installed, if otel-monitor configured this process."""
    return _runtime if _runtime.settings is not None else None


def install(runtime: Runtime) -> Runtime:
    """Make ``runtime`` the process's (the configurator calls this once).

    The health registry an app filled before it configured (``default_registry().add(...)``
    ahead of ``otel_monitor.configure()``) is carried over: the config file's checks join it.
    """
    global _runtime
    if runtime.health_registry is None:
        runtime.health_registry = _runtime.health_registry
    _runtime = runtime
    return runtime


def after_fork() -> None:
    """In a forked child: a fresh lock (a parent thread may have held it at the instant of fork)."""
    _runtime.lock = threading.Lock()


def reset() -> Runtime:
    """Forget everything: a fresh unconfigured runtime (``otel_monitor.testing.reset`` calls this)."""
    global _runtime
    _runtime = Runtime()
    return _runtime

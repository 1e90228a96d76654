"""INFO records to OTLP while the app has not configured logging, and the app's own output unchanged.

Python's root logger starts at WARNING: a logger the app leaves at NOTSET
drops an INFO record before any handler sees it, so the OTLP handler at
``OTEL_MONITOR_LOG_LEVEL=INFO`` would only ever get warnings. While the root
logger is as Python made it (WARNING, no handler but ours), we lower it to
just below the OTLP level, and keep what the app prints as it was:

* every other handler gets :class:`AppLevelFilter`, which passes a record
  only if the logger levels the app set (root at WARNING) would have let it
  through; handlers added later (``basicConfig``, ``dictConfig``,
  ``fileConfig`` or ``addHandler``) get it before the first record that
  needs it reaches them: when such a record is made;
* Python's last-resort handler (warnings to stderr when no handler exists)
  stops firing once the OTLP handler sits on the root logger; a stand-in on
  the root logger calls it exactly when Python would have.

The root level is lowered to one below the OTLP level, not to that level
itself, so that an app setting the root level later (to any value, INFO
included) is seen as the app's choice, which then rules.
"""

from __future__ import annotations

import logging
import logging.config
from collections.abc import Callable
from typing import Any

from otel_monitor import patching

_DEFAULT_ROOT_LEVEL = logging.WARNING


class AppLevelFilter(logging.Filter):
    """Pass a record only if the app's own logger levels would have let it through.

    Once the root logger is lowered for the OTLP handler, a record from a
    logger left at NOTSET reaches every handler on its way up; the app's
    handlers must still see only what the root level the app had (or set
    since) lets through. Called synchronously by the handler; never raises.
    """

    def __init__(self, routing: InfoRouting) -> None:
        super().__init__()
        self.routing = routing

    def filter(self, record: logging.LogRecord) -> bool:
        level = record.levelno
        if not isinstance(level, int) or level >= self.routing.app_root_level():
            return True  # a record made by hand (makeLogRecord) may carry no level: Python's handlers judge it
        logger: Any = logging.Logger.manager.loggerDict.get(record.name)
        root = logging.root
        while isinstance(logger, logging.Logger) and logger is not root:
            if logger.level:
                return level >= logger.level
            logger = logger.parent
        return False


class LastResortStandIn(logging.Handler):
    """Call Python's last-resort handler when no handler of the app's is on the record's way.

    ``Logger.callHandlers`` uses ``logging.lastResort`` only when it found no
    handler at all; the OTLP handler on the root logger counts as one, so an
    app without logging configuration would stop printing its warnings.
    This handler, on the root logger beside it, counts the others as Python
    does and calls the last resort when there are none.
    """

    def __init__(self, ours: set[int]) -> None:
        super().__init__(logging.NOTSET)
        self.ours = ours  # ids of the handlers that are not the app's (the OTLP one, this one)

    def handle(self, record: logging.LogRecord) -> bool:
        last = logging.lastResort
        if last is None or not isinstance(record.levelno, int) or record.levelno < last.level:
            return False
        logger: Any = logging.Logger.manager.loggerDict.get(record.name, logging.root)
        while isinstance(logger, logging.Logger):
            if any(id(h) not in self.ours for h in logger.handlers):
                return False
            if not logger.propagate:
                break
            logger = logger.parent
        last.handle(record)
        return True

    def emit(self, record: logging.LogRecord) -> None:  # pragma: no cover - handle() does the work
        pass


class InfoRouting:
    """The OTLP handler beside the app's logging: the stand-in always, the root lowered when ``lower``."""

    def __init__(self, otlp_handler: logging.Handler, level: int, lower: bool = True) -> None:
        self.otlp_handler = otlp_handler
        self.lower = lower
        self.lowered = level - 1 if lower else None
        self.filter = AppLevelFilter(self)
        self.stand_in = LastResortStandIn({id(otlp_handler)})
        self.stand_in.ours.add(id(self.stand_in))

    def app_root_level(self) -> int:
        """The root level as the app would have it: Python's default until the app sets one."""
        level = logging.root.level
        return _DEFAULT_ROOT_LEVEL if level == self.lowered else level

    def filter_app_handlers(self) -> None:
        """Give every handler that is not ours the app-level filter (idempotent)."""
        if not self.lower:
            return
        loggers: list[Any] = [logging.root, *logging.Logger.manager.loggerDict.values()]
        for logger in loggers:
            for handler in list(getattr(logger, "handlers", ())):
                if id(handler) in self.stand_in.ours or self.filter in handler.filters:
                    continue
                handler.addFilter(self.filter)

    def filter_handlers_on_the_way(self, name: str) -> None:
        """Give the app-level filter to the handlers a record of logger ``name`` will meet."""
        logger: Any = logging.Logger.manager.loggerDict.get(name, logging.root)
        while isinstance(logger, logging.Logger):
            for handler in logger.handlers:
                if id(handler) not in self.stand_in.ours and self.filter not in handler.filters:
                    handler.addFilter(self.filter)
            if not logger.propagate:
                break
            logger = logger.parent

    def _record_factory(self, previous: Callable[..., logging.LogRecord]) -> Callable[..., logging.LogRecord]:
        def make_record(*args: Any, **kwargs: Any) -> logging.LogRecord:
            record = previous(*args, **kwargs)
            # Only records below the app's root level can reach a handler that must not see them.
            level = record.levelno
            if isinstance(level, int) and level < self.app_root_level():
                self.filter_handlers_on_the_way(record.name)
            return record

        return make_record

    def start(self) -> None:
        root = logging.root
        root.addHandler(self.stand_in)
        if self.lowered is not None:
            self.filter_app_handlers()
            logging.setLogRecordFactory(self._record_factory(logging.getLogRecordFactory()))
            root.setLevel(self.lowered)
        for name in ("basicConfig",):
            patching.replace(logging, name, self._around_config(getattr(logging, name)))
        for name in ("dictConfig", "fileConfig"):
            patching.replace(logging.config, name, self._around_config(getattr(logging.config, name)))

    def _around_config(self, config: Callable[..., Any]) -> Callable[..., Any]:
        """The app's logging configuration runs as if neither handler of ours were there; its handlers filtered."""

        def configure(*args: Any, **kwargs: Any) -> Any:
            root = logging.root
            present = self.stand_in in root.handlers
            if present:
                root.removeHandler(self.stand_in)
            try:
                return config(*args, **kwargs)
            finally:
                if present or self.otlp_handler in root.handlers:
                    root.addHandler(self.stand_in)
                self.filter_app_handlers()

        configure.__wrapped__ = config  # type: ignore[attr-defined]
        return configure


def route_info_records(otlp_handler: logging.Handler | None, level: int) -> InfoRouting | None:
    """Records from ``level`` up to the OTLP handler, and the app's own output as it was.

    The last-resort stand-in goes beside the OTLP handler whatever the level.
    The root logger is lowered only while it is as Python made it (level
    WARNING, no handler but the OTLP one) and ``level`` is below it: an app
    that configured its root logger before (``otel_monitor.configure()``
    called late) keeps its levels.
    """
    root = logging.root
    if otlp_handler is None or otlp_handler not in root.handlers:
        return None
    untouched = root.level == _DEFAULT_ROOT_LEVEL and all(h is otlp_handler for h in root.handlers)
    routing = InfoRouting(otlp_handler, level, lower=untouched and level < root.level)
    routing.start()
    return routing

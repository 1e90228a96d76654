"""The ``OTEL_MONITOR_CONFIG`` YAML file: loading, with file and line for every value.

Each top-level section belongs to one concern, which validates it:

=============  ==============================================
section        read by
=============  ==============================================
``settings``   :mod:`otel_monitor.config.settings` (any setting key)
``operations`` :mod:`otel_monitor.semantics.operations`
``errors``     :mod:`otel_monitor.semantics.errors`
``funnels``    :mod:`otel_monitor.semantics.journeys`
``redaction``  :mod:`otel_monitor.semantics.redaction`
``slos``       :mod:`otel_monitor.semantics.slo`
``health``     :mod:`otel_monitor.health.registry`
``uptime``     :mod:`otel_monitor.semantics.uptime`
=============  ==============================================

Problems are reported as ``path:line: what is wrong`` so a user can jump to it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

SECTIONS = ("settings", "operations", "errors", "funnels", "redaction", "slos", "health", "alerting", "kpis", "uptime")

Path = tuple[str | int, ...]


class ConfigFileError(ValueError):
    """The config file cannot be read or parsed at all."""


@dataclass
class ConfigFile:
    """A parsed config file: plain data plus the line of every node."""

    path: str
    data: dict[str, Any] = field(default_factory=dict)
    lines: dict[Path, int] = field(default_factory=dict)

    def section(self, name: str) -> Any:
        return self.data.get(name)

    def where(self, *keys: str | int) -> str:
        """``path:line`` of the deepest known node along ``keys``."""
        path: Path = tuple(keys)
        while path and path not in self.lines:
            path = path[:-1]
        line = self.lines.get(path)
        return f"{self.path}:{line}" if line else self.path


EMPTY = ConfigFile(path="<no config file>")


# A config file is a few hundred lines: anything far beyond is not one.
MAX_CONFIG_BYTES = 1 << 20
MAX_DEPTH = 64
MAX_ALIASES = 100
# Nodes the document stands for with every alias followed (billion laughs: few nodes, 10^9 expanded).
MAX_EXPANDED_NODES = 100_000


class _TooBig(Exception):
    def __init__(self, line: int | None, message: str) -> None:
        super().__init__(message)
        self.line = line


def _line(event: Any) -> int | None:
    mark = getattr(event, "start_mark", None)
    return mark.line + 1 if mark is not None else None


def _bounded_loader(text: str) -> Any:
    """A ``yaml.SafeLoader`` that refuses deep nesting and many aliases while it composes."""
    import yaml

    class BoundedLoader(yaml.SafeLoader):
        depth = 0
        aliases = 0

        def compose_node(self, parent: Any, index: Any) -> Any:
            event = self.peek_event()
            if isinstance(event, yaml.AliasEvent):
                self.aliases += 1
                if self.aliases > MAX_ALIASES:
                    raise _TooBig(_line(event), f"more than {MAX_ALIASES} YAML aliases")
                return super().compose_node(parent, index)
            self.depth += 1
            try:
                if self.depth > MAX_DEPTH:
                    raise _TooBig(_line(event), f"nested more than {MAX_DEPTH} levels deep")
                return super().compose_node(parent, index)
            finally:
                self.depth -= 1

    return BoundedLoader(text)


def _expanded_size(node: Any, sizes: dict[int, int]) -> int:
    """How many nodes ``node`` stands for with aliases followed, each shared node computed once."""
    known = sizes.get(id(node))
    if known is not None:
        return known
    sizes[id(node)] = 1  # a recursive alias counts once
    total = 1
    if isinstance(node.value, list):
        for item in node.value:
            if isinstance(item, tuple):
                total += _expanded_size(item[0], sizes) + _expanded_size(item[1], sizes)
            else:
                total += _expanded_size(item, sizes)
            if total > MAX_EXPANDED_NODES:
                break
    sizes[id(node)] = total
    return total


def _index(node: Any, path: Path, lines: dict[Path, int], seen: set[int]) -> None:
    """The line of every node; a node reached again through an alias is not walked again."""
    import yaml

    lines[path] = node.start_mark.line + 1
    if id(node) in seen:
        return
    seen.add(id(node))
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            key = key_node.value
            _index(value_node, (*path, key), lines, seen)
            lines[(*path, key)] = key_node.start_mark.line + 1
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _index(item, (*path, i), lines, seen)


def parse_config_text(text: str, path: str) -> ConfigFile:
    """Parse YAML text; raise :class:`ConfigFileError` naming file and line.

    Nesting depth and aliases are bounded while the document is composed, and
    what the aliases expand to before anything walks it, so no file can
    exhaust the stack, the memory or the time of the process starting.
    """
    import yaml

    try:
        loader = _bounded_loader(text)
        try:
            node = loader.get_single_node()
            if node is not None and _expanded_size(node, {}) > MAX_EXPANDED_NODES:
                raise _TooBig(_line(node), f"its aliases expand to more than {MAX_EXPANDED_NODES:,} nodes")
            data = loader.construct_document(node) if node is not None else None
        finally:
            loader.dispose()
    except _TooBig as exc:
        line = f":{exc.line}" if exc.line else ""
        raise ConfigFileError(f"{path}{line}: refused: {exc}") from None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = f":{mark.line + 1}" if mark is not None else ""
        raise ConfigFileError(f"{path}{line}: invalid YAML: {exc.problem or exc}") from None
    except yaml.YAMLError as exc:
        raise ConfigFileError(f"{path}: invalid YAML: {exc}") from None
    except RecursionError:
        raise ConfigFileError(f"{path}: refused: nested too deeply") from None
    if data is None:
        return ConfigFile(path=path)
    if not isinstance(data, dict):
        raise ConfigFileError(
            f"{path}:1: expected a mapping of sections ({', '.join(SECTIONS)}), got {type(data).__name__}"
        )
    lines: dict[Path, int] = {}
    _index(node, (), lines, set())
    config = ConfigFile(path=path, data=data, lines=lines)
    unknown = [key for key in data if key not in SECTIONS]
    if unknown:
        raise ConfigFileError(
            f"{config.where(unknown[0])}: unknown section {unknown[0]!r}; expected one of {', '.join(SECTIONS)}"
        )
    return config


def load_config_file(path: str) -> ConfigFile:
    """Read and parse the file at ``path``: a regular file of at most :data:`MAX_CONFIG_BYTES`.

    Opened without blocking (a FIFO would wait for a writer forever) and
    checked before reading (``/dev/zero`` never ends, a directory has no text).
    """
    import os
    import stat

    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
    except OSError as exc:
        raise ConfigFileError(f"{path}: cannot read the config file: {exc.strerror or exc}") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            kind = (
                "a directory"
                if stat.S_ISDIR(info.st_mode)
                else "a FIFO"
                if stat.S_ISFIFO(info.st_mode)
                else "a device"
                if stat.S_ISCHR(info.st_mode) or stat.S_ISBLK(info.st_mode)
                else "not a regular file"
            )
            raise ConfigFileError(f"{path}: cannot read the config file: it is {kind}, not a regular file")
        if info.st_size > MAX_CONFIG_BYTES:
            raise ConfigFileError(
                f"{path}: cannot read the config file: it is {info.st_size:,} bytes, "
                f"over the limit of {MAX_CONFIG_BYTES:,}"
            )
        with os.fdopen(fd, "rb", closefd=True) as handle:
            fd = -1
            raw = handle.read(MAX_CONFIG_BYTES + 1)
        if len(raw) > MAX_CONFIG_BYTES:  # it grew while we read
            raise ConfigFileError(f"{path}: cannot read the config file: it is over {MAX_CONFIG_BYTES:,} bytes")
        text = raw.decode("utf-8")
    except OSError as exc:
        raise ConfigFileError(f"{path}: cannot read the config file: {exc.strerror or exc}") from None
    except UnicodeDecodeError as exc:
        raise ConfigFileError(f"{path}: cannot read the config file: not UTF-8 text ({exc.reason})") from None
    finally:
        if fd >= 0:
            os.close(fd)
    return parse_config_text(text, path)


def file_settings(config: ConfigFile) -> tuple[dict[str, tuple[Any, str]], list[str]]:
    """The ``settings:`` section as ``{key: (value, "file:line")}``, plus problems."""
    from otel_monitor.config.settings import BY_ENV, BY_KEY

    section = config.section("settings")
    if section is None:
        return {}, []
    if not isinstance(section, dict):
        return {}, [f"{config.where('settings')}: 'settings' must be a mapping of setting names to values"]
    result: dict[str, tuple[Any, str]] = {}
    problems: list[str] = []
    for name, value in section.items():
        key = BY_ENV[name].key if name in BY_ENV else str(name).lower()
        if key not in BY_KEY or key == "config":
            problems.append(f"{config.where('settings', name)}: unknown setting {name!r}")
            continue
        result[key] = (value, config.where("settings", name))
    return result, problems

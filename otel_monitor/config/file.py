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
=============  ==============================================

Problems are reported as ``path:line: what is wrong`` so a user can jump to it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

SECTIONS = ("settings", "operations", "errors", "funnels", "redaction", "slos", "health")

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


def _index(node: Any, path: Path, lines: dict[Path, int]) -> None:
    import yaml

    lines[path] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            key = key_node.value
            _index(value_node, (*path, key), lines)
            lines[(*path, key)] = key_node.start_mark.line + 1
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _index(item, (*path, i), lines)


def parse_config_text(text: str, path: str) -> ConfigFile:
    """Parse YAML text; raise :class:`ConfigFileError` naming file and line."""
    import yaml

    try:
        data = yaml.safe_load(text)
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = f":{mark.line + 1}" if mark is not None else ""
        raise ConfigFileError(f"{path}{line}: invalid YAML: {exc.problem or exc}") from None
    except yaml.YAMLError as exc:
        raise ConfigFileError(f"{path}: invalid YAML: {exc}") from None
    if data is None:
        return ConfigFile(path=path)
    if not isinstance(data, dict):
        raise ConfigFileError(
            f"{path}:1: expected a mapping of sections ({', '.join(SECTIONS)}), got {type(data).__name__}")
    lines: dict[Path, int] = {}
    if node is not None:
        _index(node, (), lines)
    config = ConfigFile(path=path, data=data, lines=lines)
    unknown = [key for key in data if key not in SECTIONS]
    if unknown:
        raise ConfigFileError(
            f"{config.where(unknown[0])}: unknown section {unknown[0]!r}; expected one of {', '.join(SECTIONS)}")
    return config


def load_config_file(path: str) -> ConfigFile:
    """Read and parse the file at ``path``."""
    try:
        with open(path, encoding="utf-8") as handle:
            text = handle.read()
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigFileError(f"{path}: cannot read the config file: {exc}") from None
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

"""The import rules of docs/architecture.md: layers import only the layers below them, no cycles.

Every import statement of the package is read from its source with ``ast``: module
level, inside functions (lazy imports) and under ``if TYPE_CHECKING:`` alike, since
each of them is a dependency a reader has to follow.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import pytest

PACKAGE_DIR = Path(__file__).resolve().parents[2] / "otel_monitor"

# First name under the package -> layer.  A new subpackage needs a line here (and in the doc).
LAYER_OF = {
    "semconv": "base",
    "guard": "base",
    "runtime": "base",
    "patching": "base",
    "config": "base",
    "semantics": "semantics",
    "otlp": "codec",
    "pipeline": "pipeline",
    "fast": "fast",
    "launcher": "launcher",
    "health": "health",
    "alerting": "alerting",
    "console": "console",
    # The package's own entry points: the public names, ``python -m``, the CLI, the test helpers.
    "": "entry",
    "__main__": "entry",
    "cli": "entry",
    "testing": "entry",
}

_BELOW_PIPELINE = {"base", "semantics", "codec"}
# layer -> the layers it may import (its own included).
MAY_IMPORT: Mapping[str, set[str]] = {
    "base": {"base"},
    "semantics": {"base", "semantics"},
    "codec": {"base", "codec"},
    "pipeline": _BELOW_PIPELINE | {"pipeline"},
    "fast": _BELOW_PIPELINE | {"pipeline", "fast"},
    "launcher": _BELOW_PIPELINE | {"pipeline", "fast", "launcher", "health", "alerting", "console"},
    "health": _BELOW_PIPELINE | {"health"},
    "alerting": _BELOW_PIPELINE | {"alerting"},
    "console": _BELOW_PIPELINE | {"console", "alerting", "health"},
    "entry": {"base", "semantics", "codec", "pipeline", "launcher", "health", "alerting", "console", "entry"},
}

# (layer, prefix of a module outside the package it must never import, why)
FORBIDDEN_EXTERNAL = [
    ("semantics", "opentelemetry.sdk", "semantics are pure rules: they run without the SDK"),
]


@dataclass(frozen=True)
class Edge:
    source: str
    target: str
    line: int

    def __str__(self) -> str:
        return f"{self.source} -> {self.target} (line {self.line})"


def modules_of(package_dir: Path) -> dict[str, Path]:
    """Dotted module name -> file, for every module of the package."""
    package = package_dir.name
    found = {}
    for path in package_dir.rglob("*.py"):
        parts = path.relative_to(package_dir).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        found[".".join((package, *parts))] = path
    return found


def imports_of(name: str, path: Path, modules: Iterable[str]) -> tuple[list[Edge], list[Edge]]:
    """(edges to modules of the package, edges to modules outside it) of every import in ``path``."""
    known = set(modules)
    package = name.split(".")[0]
    is_package = path.name == "__init__.py"
    ours: list[Edge] = []
    external: list[Edge] = []

    def add(target: str, line: int) -> None:
        if target != package and not target.startswith(package + "."):
            external.append(Edge(name, target, line))
            return
        while target not in known:
            target = target.rpartition(".")[0]
        # A module's own ancestors are imported by Python before it: not an edge a reader follows.
        if target != name and not name.startswith(target + "."):
            ours.append(Edge(name, target, line))

    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                add(alias.name, node.lineno)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = name.split(".") if is_package else name.split(".")[:-1]
                base = base[: len(base) - (node.level - 1)]
                module = ".".join([*base, node.module] if node.module else base)
            else:
                module = node.module or ""
            for alias in node.names:
                # ``from pkg import mod`` imports the module pkg.mod; ``from mod import name`` imports mod.
                submodule = f"{module}.{alias.name}"
                add(submodule if submodule in known else module, node.lineno)
    return list(dict.fromkeys(ours)), list(dict.fromkeys(external))


def layer_of(module: str) -> str:
    first = module.split(".")[1] if "." in module else ""
    return LAYER_OF[first]


def violations(package_dir: Path) -> list[str]:
    """Every forbidden edge of the package, as readable lines."""
    modules = modules_of(package_dir)
    found = []
    for name, path in sorted(modules.items()):
        ours, external = imports_of(name, path, modules)
        source_layer = layer_of(name)
        for edge in ours:
            target_layer = layer_of(edge.target)
            if name.endswith(".semconv") and edge.target != name:
                found.append(f"{edge}: semconv is the contract, a leaf: it imports nothing of ours")
            elif target_layer not in MAY_IMPORT[source_layer]:
                found.append(f"{edge}: layer {source_layer} may not import layer {target_layer}")
        for edge in external:
            for layer, prefix, why in FORBIDDEN_EXTERNAL:
                if source_layer == layer and (edge.target == prefix or edge.target.startswith(prefix + ".")):
                    found.append(f"{edge}: {why}")
    return found


def cycles(package_dir: Path) -> list[list[str]]:
    """The import cycles among the package's modules (strongly connected components of two or more)."""
    modules = modules_of(package_dir)
    graph = {name: sorted({e.target for e in imports_of(name, path, modules)[0]}) for name, path in modules.items()}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []

    def visit(node: str) -> None:  # Tarjan's algorithm; the package is far too shallow for the recursion limit
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in graph[node]:
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                components.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return components


def test_every_module_has_a_layer() -> None:
    """Each module of the package belongs to a layer of the table."""
    unknown = [name for name in modules_of(PACKAGE_DIR) if ("." in name and name.split(".")[1] not in LAYER_OF)]
    assert unknown == [], f"give these a layer in LAYER_OF and docs/architecture.md: {unknown}"


def test_no_forbidden_import() -> None:
    """No module imports a layer above its own, and semantics never imports the SDK."""
    assert violations(PACKAGE_DIR) == []


def test_no_import_cycle() -> None:
    """The package's modules import each other without a cycle."""
    assert cycles(PACKAGE_DIR) == []


# --- the checker itself, on a package written for the purpose ---------------------------------


def _package(tmp_path: Path, files: Mapping[str, str]) -> Path:
    root = tmp_path / "otel_monitor"
    for relative, text in {"__init__.py": "", **files}.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


@pytest.mark.parametrize(
    ("files", "expected"),
    [
        (
            {
                "semconv.py": "from otel_monitor.config import settings\n",
                "config/__init__.py": "",
                "config/settings.py": "",
            },
            "semconv is the contract",
        ),
        (
            {
                "semantics/__init__.py": "",
                "semantics/x.py": "def f():\n    from otel_monitor.pipeline import p\n",
                "pipeline/__init__.py": "",
                "pipeline/p.py": "",
            },
            "layer semantics may not import layer pipeline",
        ),
        (
            {"semantics/__init__.py": "", "semantics/x.py": "from opentelemetry.sdk.trace import Span\n"},
            "semantics are pure rules",
        ),
        (
            {
                "pipeline/__init__.py": "",
                "pipeline/p.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from ..fast import spans\n",
                "fast/__init__.py": "",
                "fast/spans.py": "",
            },
            "layer pipeline may not import layer fast",
        ),
        (
            {
                "console/__init__.py": "",
                "console/app.py": "import otel_monitor.launcher.report\n",
                "launcher/__init__.py": "",
                "launcher/report.py": "",
            },
            "layer console may not import layer launcher",
        ),
        (
            {
                "health/__init__.py": "",
                "health/r.py": "from otel_monitor.pipeline.instruments import current\n",
                "pipeline/__init__.py": "",
                "pipeline/instruments.py": "",
            },
            "layer health may not import layer pipeline",
        ),
    ],
)
def test_checker_finds_a_forbidden_import(tmp_path: Path, files: Mapping[str, str], expected: str) -> None:
    """A forbidden import is found wherever it is written: top level, lazy, relative, under TYPE_CHECKING."""
    found = violations(_package(tmp_path, files))
    assert len(found) == 1 and expected in found[0], found


def test_checker_allows_the_permitted_directions(tmp_path: Path) -> None:
    """fast imports pipeline, launcher imports fast, semantics imports config and semconv: all fine."""
    root = _package(
        tmp_path,
        {
            "semconv.py": "",
            "config/__init__.py": "",
            "config/settings.py": "from otel_monitor import semconv\n",
            "semantics/__init__.py": "",
            "semantics/x.py": "from otel_monitor.config import settings\n",
            "pipeline/__init__.py": "",
            "pipeline/p.py": "from otel_monitor.semantics import x\n",
            "fast/__init__.py": "",
            "fast/spans.py": "from otel_monitor.pipeline import p\n",
            "launcher/__init__.py": "",
            "launcher/c.py": "from otel_monitor.fast import spans\n",
        },
    )
    assert violations(root) == []
    assert cycles(root) == []


def test_checker_finds_a_cycle(tmp_path: Path) -> None:
    """Two modules that import each other, one of them lazily, are a cycle."""
    root = _package(
        tmp_path,
        {
            "console/__init__.py": "",
            "console/api.py": "from otel_monitor.console import app\n",
            "console/app.py": "def f():\n    from . import api\n",
        },
    )
    assert cycles(root) == [["otel_monitor.console.api", "otel_monitor.console.app"]]

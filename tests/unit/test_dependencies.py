"""Every package otel-monitor imports is declared in pyproject.toml (core or an extra)."""

from __future__ import annotations

import ast
import importlib.util
import re
import tomllib
from importlib import metadata
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# Imported only inside a try/except that falls back without them.
OPTIONAL = {"certifi"}


def _imported_modules() -> set[str]:
    modules: set[str] = set()
    for path in (ROOT / "otel_monitor").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                modules.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                modules.add(node.module)
    return {m for m in modules if m.split(".")[0] != "otel_monitor"}


def _distribution_of_files() -> dict[str, str]:
    owner: dict[str, str] = {}
    for dist in metadata.distributions():
        for file in dist.files or ():
            if str(file).endswith(".py"):
                owner[str(file)] = dist.metadata["Name"]
    return owner


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _declared() -> set[str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    requirements = list(project["dependencies"])
    for name, extra in project["optional-dependencies"].items():
        if name != "dev":
            requirements += extra
    return {_canonical(re.split(r"[\[<>=~!; ]", r, maxsplit=1)[0]) for r in requirements}


def test_every_imported_distribution_is_declared():
    """A module imported from an installed distribution that pyproject.toml does not name is a missing dependency."""
    owner, declared, missing = _distribution_of_files(), _declared(), {}
    for module in sorted(_imported_modules()):
        try:
            spec = importlib.util.find_spec(module)
        except (ImportError, ValueError):
            continue
        origin = spec.origin if spec else None
        if not origin or "site-packages" not in origin:
            continue  # the standard library
        dist = owner.get(origin.split("site-packages/", 1)[1])
        if dist and _canonical(dist) not in declared and module.split(".")[0] not in OPTIONAL:
            missing.setdefault(dist, module)
    assert not missing, f"imported but not declared in pyproject.toml: {missing}"

"""The one patching idiom: replace an attribute, record what it was, put it back."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from otel_monitor import patching

PACKAGE_DIR = Path(__file__).resolve().parents[2] / "otel_monitor"


class Base:
    def greet(self) -> str:
        return "base"

    @classmethod
    def make(cls) -> str:
        return f"made {cls.__name__}"


class Child(Base):
    pass


@pytest.fixture(autouse=True)
def clean():
    yield
    for patch in patching.patches():
        if patch.owner in (Base, Child):
            patching.restore(patch.owner, patch.name)


def test_a_replacement_calls_the_original_and_restore_puts_the_inherited_method_back():
    """Patching a subclass's inherited method and restoring it leaves the subclass inheriting again."""
    original = patching.replace(Child, "greet", lambda self: "patched " + Base.greet(self))
    assert original is Base.greet
    assert Child().greet() == "patched base" and Base().greet() == "base"
    assert patching.is_patched(Child, "greet") and not patching.is_patched(Base, "greet")
    assert patching.restore(Child, "greet")
    assert "greet" not in vars(Child) and Child().greet() == "base"
    assert not patching.is_patched(Child, "greet") and not patching.restore(Child, "greet")


def test_stacked_patches_come_off_newest_first_and_a_classmethod_stays_one():
    """Two patches of one attribute: restore undoes the newer; the class's own classmethod comes back as it was."""
    first = patching.replace(Base, "make", classmethod(lambda cls: "first"))
    patching.replace(Base, "make", classmethod(lambda cls: "second " + first()))
    assert Base.make() == "second made Base"
    assert patching.original(Base, "make")() == "made Base"
    patching.restore(Base, "make")
    assert Base.make() == "first"
    patching.restore(Base, "make")
    assert Base.make() == "made Base" and Child.make() == "made Child"
    assert isinstance(vars(Base)["make"], classmethod)


def test_an_instance_patch_leaves_its_class_alone():
    """Replacing one object's method is that object's; restoring removes the instance entry."""
    one, other = Base(), Base()
    patching.replace(one, "greet", lambda: "one's own")
    assert one.greet() == "one's own" and other.greet() == "base"
    patching.restore(one, "greet")
    assert one.greet() == "base" and "greet" not in vars(one)


def test_restore_all_undoes_every_patch():
    """restore_all() puts back every patch, newest first."""
    patching.replace(Base, "greet", lambda self: "a")
    patching.replace(Child, "greet", lambda self: "b")
    assert Child().greet() == "b"
    undone = patching.restore_all()
    assert undone >= 2
    assert Base().greet() == "base" and Child().greet() == "base"


def attribute_writes_on_imported_names() -> list[str]:
    """``x.attr = value`` and ``setattr(x, ...)`` where ``x`` is an imported module, class or provider
    (not ``self``, a local object of ours, or our marker attributes): patches made outside the idiom."""
    found = []
    suspicious = {"fastapi", "contrib", "_asgi", "applications", "_configuration", "logging", "exceptions"}
    for path in PACKAGE_DIR.rglob("*.py"):
        if path.name == "patching.py":
            continue
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            targets = node.targets if isinstance(node, ast.Assign) else []
            for target in targets:
                if isinstance(target, ast.Attribute):
                    root = target.value
                    while isinstance(root, ast.Attribute):
                        root = root.value
                    if isinstance(root, ast.Name) and root.id in suspicious | {"provider", "dialect", "module"}:
                        if target.attr.startswith("_otel_monitor") or target.attr == "__wrapped__":
                            continue
                        found.append(f"{path.relative_to(PACKAGE_DIR)}:{node.lineno} {ast.unparse(target)}")
    return found


def test_every_patch_goes_through_the_idiom():
    """No module, class or provider of a dependency gets an attribute assigned outside otel_monitor.patching."""
    assert attribute_writes_on_imported_names() == []

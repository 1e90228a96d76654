"""Replacing an attribute of a dependency's class, module or object: the one way otel-monitor patches.

Every patch goes through :func:`replace`, which sets the attribute and
records what it replaced: the value as read through the owner (what the
replacement calls) and the owner's own entry (what :func:`restore` puts
back, so a class that inherited the method inherits it again). A patch is
made once (:func:`is_patched`), and :func:`restore` undoes the newest patch
of an attribute, :func:`restore_all` every one, newest first.

Plain functions, not ``wrapt`` proxies (the contrib's idiom): several of
these replace a method on the request path (a provider's ``get_logger``,
FastAPI's ``__init__``), where a plain function is one call; and the checks
that compare a dependency's method with the one they know (the compat
checks) see a function, not a proxy.

The record is the process's, not a configuration's: a patched class stays
patched as long as it lives, whatever configuration made the patch.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

_MISSING: Any = object()


@dataclass(frozen=True)
class Patch:
    """One replaced attribute: ``owner.name`` was ``original`` (its own entry ``own``) and is ``replacement``."""

    owner: Any
    name: str
    original: Any
    own: Any
    replacement: Any


_patches: list[Patch] = []  # oldest first
_lock = threading.Lock()


def _own_entry(owner: Any, name: str) -> Any:
    try:
        return vars(owner).get(name, _MISSING)
    except TypeError:  # no __dict__ (slots): the attribute is the type's
        return _MISSING


def replace(owner: Any, name: str, replacement: Any) -> Any:
    """Set ``owner.name`` to ``replacement``; return what it was (as read through ``owner``)."""
    with _lock:
        original = getattr(owner, name)
        own = _own_entry(owner, name)
        setattr(owner, name, replacement)
        _patches.append(Patch(owner, name, original, own, replacement))
        return original


def is_patched(owner: Any, name: str) -> bool:
    """Whether ``owner.name`` is still a replacement made by :func:`replace`."""
    with _lock:
        current = _own_entry(owner, name)
        return any(p.owner is owner and p.name == name and p.replacement is current for p in _patches)


def original(owner: Any, name: str) -> Any:
    """What the first patch of ``owner.name`` replaced; the attribute itself when it is not patched."""
    with _lock:
        for patch in _patches:
            if patch.owner is owner and patch.name == name:
                return patch.original
    return getattr(owner, name)


def restore(owner: Any, name: str) -> bool:
    """Undo the newest patch of ``owner.name``; False when there is none."""
    with _lock:
        for index in range(len(_patches) - 1, -1, -1):
            patch = _patches[index]
            if patch.owner is owner and patch.name == name:
                del _patches[index]
                _put_back(patch)
                return True
    return False


def restore_all() -> int:
    """Undo every patch, newest first; how many there were."""
    with _lock:
        undone = list(reversed(_patches))
        _patches.clear()
    for patch in undone:
        _put_back(patch)
    return len(undone)


def patches() -> list[Patch]:
    """The patches in force, oldest first (``otel-monitor config`` and tests read them)."""
    with _lock:
        return list(_patches)


def _put_back(patch: Patch) -> None:
    if patch.own is _MISSING:
        try:
            delattr(patch.owner, patch.name)
        except AttributeError:
            pass
    else:
        setattr(patch.owner, patch.name, patch.own)

"""Every public class and function of ``curves``, ``protocols`` and ``mpc`` has a docstring.

"Public" is what the API reference (docs/api) documents: the names in ``__all__`` of every module
whose dotted name has no part starting with ``_``, and the public methods and properties those
classes define (a method that overrides a documented one inherits its docstring, as autodoc
shows it). A class's docstring must be its own: the signature that ``dataclass`` writes into an
undocumented class does not count. Constants are not checked here (Sphinx documents them from
the source, ``-W`` catches broken ones).
"""

from __future__ import annotations

import enum
import functools
import importlib
import inspect
import pkgutil
from collections.abc import Iterator
from types import ModuleType
from typing import Any

from mpc.errors import ChainLibraryMissing

PACKAGES = ("curves", "protocols", "mpc")

# Public objects allowed to have no docstring, as "module.Class.method" or "module.function",
# each with the reason. Keep it short: a docstring is usually the better fix.
EXCLUDED: dict[str, str] = {}


def public_modules() -> Iterator[ModuleType]:
    for package in PACKAGES:
        root = importlib.import_module(package)
        yield root
        for info in pkgutil.walk_packages(root.__path__, package + "."):
            if any(part.startswith("_") for part in info.name.split(".")):
                continue
            try:
                yield importlib.import_module(info.name)
            except ChainLibraryMissing:  # a chain adapter without its optional library
                continue


def _own(obj: Any) -> bool:
    return str(getattr(obj, "__module__", "")).split(".")[0] in PACKAGES


def _class_documented(cls: type) -> bool:
    doc = cls.__dict__.get("__doc__")
    if not isinstance(doc, str) or not doc.strip():
        return False
    if doc.startswith(cls.__name__ + "("):  # written by @dataclass / NamedTuple
        return False
    return not (issubclass(cls, enum.Enum) and doc == "An enumeration.")


def _function_of(value: Any) -> Any:
    if isinstance(value, (staticmethod, classmethod)):
        return value.__func__
    if isinstance(value, property):
        return value.fget
    if isinstance(value, functools.cached_property):
        return value.func
    return value if inspect.isfunction(value) else None


def _method_documented(cls: type, name: str, function: Any) -> bool:
    if inspect.getdoc(function):
        return True
    for base in cls.__mro__[1:]:
        inherited = _function_of(base.__dict__.get(name))
        if inherited is not None and inspect.getdoc(inherited):
            return True
    return False


def undocumented() -> tuple[list[str], int]:
    """The public classes, functions and methods without a docstring, and how many were checked."""
    seen: set[str] = set()
    missing: list[str] = []
    for module in public_modules():
        for name in getattr(module, "__all__", ()):
            obj = getattr(module, name)
            if not (inspect.isclass(obj) or inspect.isfunction(obj)) or not _own(obj):
                continue
            qualified = f"{obj.__module__}.{obj.__qualname__}"
            if qualified in seen:
                continue
            seen.add(qualified)
            if inspect.isfunction(obj):
                if not inspect.getdoc(obj):
                    missing.append(qualified)
                continue
            if not _class_documented(obj):
                missing.append(qualified)
            for member, value in vars(obj).items():
                function = _function_of(value)
                if member.startswith("_") or function is None:
                    continue
                seen.add(f"{qualified}.{member}")
                if not _method_documented(obj, member, function):
                    missing.append(f"{qualified}.{member}")
    return sorted(missing), len(seen)


def test_every_public_class_and_function_has_a_docstring() -> None:
    found, checked = undocumented()
    assert checked > 500  # the walk found the packages' API
    missing = [name for name in found if name not in EXCLUDED]
    assert not missing, (
        f"{len(missing)} public objects have no docstring (add one; or, with a reason, to EXCLUDED "
        "in tests/test_docstrings.py):\n  " + "\n  ".join(missing)
    )


def test_exclusions_are_still_needed() -> None:
    """An exclusion whose object is gone or now documented is taken off the list."""
    found, _ = undocumented()
    assert not set(EXCLUDED) - set(found)

"""Sphinx extension for the API reference: ``.. api-modules:: PACKAGE`` documents every public module.

The directive line is replaced (Sphinx ``source-read`` event) by one section per public module of
the package (no ``_`` in any part of its dotted name), in ``pkgutil.walk_packages`` order: the
module docstring, then each name of its ``__all__`` that the module *owns*, with ``autoclass`` /
``autoexception`` / ``autofunction`` / ``autodata``. A name is owned by the module that defines
it, or by the first public module that exports it from a private one (``curves.secp256k1``
exports ``Secp256k1`` from ``curves._secp256k1_base``); a name re-exported from another public
module is documented there only (``curves.Group`` is ``curves.base.Group``), so nothing is
documented twice. No module list is kept by hand: a new module appears by itself.
"""

from __future__ import annotations

import ast
import importlib
import inspect
import pkgutil
import re
import sys
from types import ModuleType
from typing import Any

_DIRECTIVE = re.compile(r"^\.\. api-modules:: *(\S+) *$", re.MULTILINE)


def public_modules(package: str) -> list[ModuleType]:
    """The package and its submodules whose dotted names have no part starting with ``_``."""
    root = importlib.import_module(package)
    modules = [root]
    for info in pkgutil.walk_packages(root.__path__, package + "."):
        if any(part.startswith("_") for part in info.name.split(".")):
            continue
        modules.append(importlib.import_module(info.name))
    return modules


def _top_level(module: ModuleType) -> tuple[set[str], dict[str, str]]:
    """Names the module's source defines at top level, and names it imports (name -> module)."""
    source = inspect.getsource(module)
    defined: set[str] = set()
    imported: dict[str, str] = {}

    def visit(body: list[ast.stmt]) -> None:
        for node in body:
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                defined.add(node.name)
            elif isinstance(node, ast.Assign):
                for target in node.targets:
                    for leaf in ast.walk(target):
                        if isinstance(leaf, ast.Name):
                            defined.add(leaf.id)
            elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
                defined.add(node.target.id)
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                for alias in node.names:
                    imported[alias.asname or alias.name] = node.module
            elif isinstance(node, (ast.If, ast.Try, ast.With)):
                visit(node.body)
                for extra in (getattr(node, "orelse", []), getattr(node, "finalbody", [])):
                    visit(extra)
                for handler in getattr(node, "handlers", []):
                    visit(handler.body)

    visit(ast.parse(source).body)
    return defined, imported


def owned_names(module: ModuleType) -> list[str]:
    """The names of ``module.__all__`` documented on the module's own section (see above)."""
    defined, imported = _top_level(module)
    owned = []
    for name in getattr(module, "__all__", []):
        value = getattr(module, name)
        if inspect.ismodule(value):
            continue
        source = imported.get(name)
        if name in defined or source is None:
            owned.append(name)
            continue
        private = any(part.startswith("_") for part in source.split("."))
        exported = name in getattr(importlib.import_module(source), "__all__", ()) if not private else False
        if not exported:
            owned.append(name)
    return owned


def _short_value(value: Any) -> bool:
    simple = (int, str, bytes, bool, float, type(None))
    if isinstance(value, tuple):
        return all(isinstance(v, simple) for v in value) and len(repr(value)) <= 100
    return isinstance(value, simple) and len(repr(value)) <= 100


def _entry(module: ModuleType, name: str) -> list[str]:
    value = getattr(module, name)
    target = f"{module.__name__}.{name}"
    if inspect.isclass(value) and issubclass(value, BaseException):
        return [f".. autoexception:: {target}", "   :members:", "   :show-inheritance:", ""]
    if inspect.isclass(value):
        return [f".. autoclass:: {target}", "   :members:", "   :show-inheritance:", ""]
    if inspect.isfunction(value) or inspect.isbuiltin(value):
        if target in sys.modules:  # protocols.frost.sign: the helper shadows the submodule's name
            return [f".. autofunction:: {target}", "   :no-index:", ""]
        return [f".. autofunction:: {target}", ""]
    lines = [f".. autodata:: {target}"]
    if not _short_value(value):
        lines.append("   :no-value:")
    return [*lines, ""]


def module_rst(module: ModuleType) -> str:
    """The reST section of one module."""
    name = module.__name__
    title = f"``{name}``"
    lines = [title, "-" * len(title), "", f".. automodule:: {name}", ""]
    owned = owned_names(module)
    reexported = [n for n in getattr(module, "__all__", []) if n not in owned]
    if reexported:
        refs = ", ".join(f"``{n}``" for n in reexported)
        lines += [f"Also exports {refs}: each is documented in the module that defines it.", ""]
    for item in owned:
        lines += _entry(module, item)
    return "\n".join(lines) + "\n"


def _expand(app: Any, docname: str, source: list[str]) -> None:
    source[0] = _DIRECTIVE.sub(
        lambda m: "\n".join(module_rst(mod) for mod in public_modules(m.group(1))), source[0]
    )


_LITERAL = re.compile(r"(``.*?``)")


def _escape_bars(line: str) -> str:
    """``|N|`` in a docstring is a bit length or absolute value, never a reST substitution."""
    parts = _LITERAL.split(line)
    return "".join(p if p.startswith("``") else re.sub(r"(?<!\\)\|", r"\\|", p) for p in parts)


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip())


_ITEM = re.compile(r"^\s*([-*+•]|\d+[.)]|#\.)\s")


def _literal_blocks(lines: list[str]) -> list[str]:
    """A one-line paragraph (not a list item) ending in one ``:`` and followed at once by
    more-indented lines introduces a plain-text table (the operation flows of ``mpc.client`` and
    ``mpc.custodian``): make it a literal block."""
    out: list[str] = []
    block: int | None = None  # the indentation of the line that opened the current block
    verbatim: int | None = None  # the same for a block already marked (``::``, a directive)
    for i, line in enumerate(lines):
        if verbatim is not None and (not line.strip() or _indent(line) > verbatim):
            out.append(line)
            continue
        verbatim = None
        if block is not None and line.strip() and _indent(line) <= block:
            if out[-1].strip():
                out.append("")  # a literal block ends with a blank line
            block = None
        following = lines[i + 1] if i + 1 < len(lines) else ""
        stripped = line.rstrip()
        if block is None and (stripped.endswith("::") or stripped.lstrip().startswith(".. ")):
            verbatim = _indent(line)
            out.append(line)
        elif (block is None and stripped.endswith(":") and not stripped.endswith("::")
                and (i == 0 or not lines[i - 1].strip()) and not _ITEM.match(line)
                and following.strip() and _indent(following) > _indent(line)):
            out += [stripped + ":", ""]
            block = _indent(line)
        else:
            out.append(line)
    return out


def _process_docstring(app: Any, what: str, name: str, obj: Any, options: Any, lines: list[str]) -> None:
    """Docstrings are reST with plain-text conventions; adapt the two that reST reads otherwise.

    A constant without a docstring of its own would show its type's docstring (``dict``'s for
    ``mpc.storage.store.SEALED_COLUMNS``): that is dropped.
    """
    if what in ("data", "attribute") and lines:
        doc = getattr(type(obj), "__doc__", None)
        type_doc = doc.strip().splitlines() if isinstance(doc, str) else []
        if type_doc and lines[0].strip() == type_doc[0].strip():
            lines[:] = []
            return
    lines[:] = _escape_outside_literals(_literal_blocks(lines))


def _escape_outside_literals(lines: list[str]) -> list[str]:
    """``_escape_bars`` on every line but those of literal blocks and doctest blocks."""
    out: list[str] = []
    literal: int | None = None  # the indentation of the ``::`` line of the current literal block
    doctest = False
    for line in lines:
        if literal is not None and line.strip() and _indent(line) <= literal:
            literal = None
        if doctest and not line.strip():
            doctest = False
        elif line.lstrip().startswith(">>>"):
            doctest = True
        verbatim = literal is not None or doctest
        out.append(line if verbatim else _escape_bars(line))
        if not verbatim and line.rstrip().endswith("::"):
            literal = _indent(line)
    return out


def setup(app: Any) -> dict[str, Any]:
    """Register the ``api-modules`` expansion and the docstring adaptations with Sphinx."""
    app.connect("source-read", _expand)
    app.connect("autodoc-process-docstring", _process_docstring, priority=600)  # after napoleon (500)
    return {"parallel_read_safe": True, "parallel_write_safe": True}


__all__ = ["public_modules", "owned_names", "module_rst", "setup"]

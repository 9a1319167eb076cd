"""The layering of docs/architecture.md (section 1): imports point down only.

``curves`` imports neither ``protocols`` nor ``mpc``; ``protocols`` does not import ``mpc``; no
library module imports the tests, the benchmarks or ``phe`` (GPLv3: a benchmark and test
reference only). Checked on the source, so a lazy import inside a function counts too.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LAYERS = {"curves": 0, "protocols": 1, "mpc": 2}
NEVER_FROM_LIBRARY = {"tests", "benchmarks", "phe"}


def _imports(path: Path) -> list[tuple[int, str]]:
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append((node.lineno, node.module))
    return found


@pytest.mark.parametrize("package", sorted(LAYERS))
def test_imports_point_down(package: str) -> None:
    wrong = []
    for path in sorted((ROOT / package).rglob("*.py")):
        for line, module in _imports(path):
            top = module.split(".")[0]
            if LAYERS.get(top, -1) > LAYERS[package] or top in NEVER_FROM_LIBRARY:
                wrong.append(f"{path.relative_to(ROOT)}:{line} imports {module}")
    assert not wrong, "\n".join(wrong)

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


# Inside ``mpc`` (docs/architecture.md, layout by role): the device side of the network never
# imports the service, so a device app that uses ``RemoteCustodian`` does not load the server, its
# store or its process pool; the engine, its backups and storage import neither; the shared wire
# module imports only errors. ``__main__`` (the command line) may use every role.
_ROLE_RULES = {
    "mpc/remote": ("mpc.service",),
    "mpc/wire.py": ("mpc.service", "mpc.remote", "mpc.client", "mpc.custodian", "mpc.storage", "mpc.backup"),
    "mpc/backup": ("mpc.service", "mpc.remote", "mpc.client", "mpc.custodian"),
    "mpc/storage": ("mpc.service", "mpc.remote", "mpc.client", "mpc.custodian", "mpc.backup"),
    "mpc/chains": ("mpc.service",),
}
_ENGINE_MODULES = ("__init__", "addresses", "client", "custodian", "errors", "hd", "operation", "presign", "signing",
                   "status", "wallet")


def _role_paths(prefix: str) -> list[Path]:
    path = ROOT / prefix
    return [path] if path.suffix == ".py" else sorted(path.rglob("*.py"))


@pytest.mark.parametrize("prefix", sorted(_ROLE_RULES))
def test_roles_inside_mpc_do_not_import_upwards(prefix: str) -> None:
    forbidden = _ROLE_RULES[prefix]
    wrong = [f"{path.relative_to(ROOT)}:{line} imports {module}"
             for path in _role_paths(prefix) for line, module in _imports(path)
             if module.startswith(forbidden)]
    assert not wrong, "\n".join(wrong)


def test_engine_imports_neither_service_nor_remote() -> None:
    # mpc/__init__.py exports RemoteCustodian lazily (imported on first use, typed under TYPE_CHECKING).
    wrong = [f"mpc/{name}.py:{line} imports {module}"
             for name in _ENGINE_MODULES if name != "__init__" for line, module in _imports(ROOT / "mpc" / f"{name}.py")
             if module.startswith(("mpc.service", "mpc.remote"))]
    assert not wrong, "\n".join(wrong)


def test_mpc_shows_its_roles_as_folders() -> None:
    """No flat module grows back beside the engine: the roles are folders (docs/architecture.md)."""
    flat = {path.stem for path in (ROOT / "mpc").glob("*.py")}
    assert flat <= set(_ENGINE_MODULES) | {"__main__", "wire"}, sorted(flat - set(_ENGINE_MODULES))
    assert {"backup", "storage", "service", "remote", "chains"} <= {p.name for p in (ROOT / "mpc").iterdir() if p.is_dir()}


def test_importing_the_remote_client_loads_no_service() -> None:
    import subprocess
    import sys
    code = ("import sys, mpc.remote; loaded = sorted(m for m in sys.modules if m.startswith('mpc.service') "
            "or m in ('psycopg', 'concurrent.futures.process')); print(loaded); assert not loaded")
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr

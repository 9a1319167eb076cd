"""Sphinx configuration of the API reference (docs/api; build: see index.rst)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))  # the packages, also when not installed
sys.path.insert(0, str(Path(__file__).parent))  # apimodules, the extension beside this file

project = "portal-mpc"
author = "portal-mpc"
copyright = "portal-mpc authors"
try:
    from importlib.metadata import version as _version

    release = _version("portal-mpc")
except Exception:  # a source tree that was never installed
    release = "unknown"

extensions = ["sphinx.ext.autodoc", "sphinx.ext.napoleon", "apimodules"]

# Optional libraries: the chain adapters import theirs at import time (mpc.chains.*); the service
# and the PostgreSQL store import websockets and psycopg only when used. CI installs them all
# (.[test]); a docs-only environment (.[docs]) gets stand-ins for the missing ones, so the
# reference builds either way. Only libraries that are really absent are mocked.
_OPTIONAL = ["eth_account", "rlp", "eth_utils", "embit", "tronpy", "base58", "google.protobuf",
             "solders", "stellar_sdk", "websockets", "psycopg"]


def _missing(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is None
    except ImportError:  # a parent package is missing
        return True


autodoc_mock_imports = [name for name in _OPTIONAL if _missing(name)]

autodoc_member_order = "bysource"
autodoc_typehints = "signature"
autodoc_inherit_docstrings = True
napoleon_google_docstring = True
napoleon_numpy_docstring = False

root_doc = "index"
exclude_patterns = ["_build"]
html_theme = "alabaster"
html_static_path: list[str] = []
html_theme_options = {"description": "Two-party MPC wallet engine: API reference", "fixed_sidebar": True}
html_sidebars = {"**": ["about.html", "navigation.html", "searchbox.html"]}

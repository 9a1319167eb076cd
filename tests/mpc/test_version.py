"""``mpc.__version__``: the installed distribution's version, the one pyproject.toml declares and
CHANGELOG.md describes."""

from __future__ import annotations

import re
from importlib import metadata
from pathlib import Path

import mpc

ROOT = Path(__file__).resolve().parents[2]
# PEP 440 public versions as this project uses them: 1.2.3, 1.2.3rc1, 1.2.3.dev0, 1.2.3.post1
PEP440 = re.compile(r"^\d+\.\d+\.\d+((a|b|rc)\d+)?(\.post\d+)?(\.dev\d+)?$")


def _pyproject_version() -> str:
    text = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    project = text.split("[project]", 1)[1].split("\n[", 1)[0]
    found = re.search(r'^version\s*=\s*"([^"]+)"', project, re.MULTILINE)
    assert found, "pyproject.toml declares no [project] version"
    return found.group(1)


def test_version_is_the_installed_distributions() -> None:
    assert mpc.__version__ == metadata.version("portal-mpc")
    assert "__version__" in mpc.__all__


def test_version_is_pep440_and_declared_in_pyproject() -> None:
    assert PEP440.match(mpc.__version__), mpc.__version__
    # A stale editable install (pip install -e . not re-run after a bump) fails here.
    assert mpc.__version__ == _pyproject_version()


def test_changelog_covers_the_version() -> None:
    changelog = (ROOT / "CHANGELOG.md").read_text(encoding="utf-8")
    if ".dev" in mpc.__version__:
        assert f"## [Unreleased] ({mpc.__version__})" in changelog
    else:
        assert f"## [{mpc.__version__}] - " in changelog

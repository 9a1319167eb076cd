"""Shared fixtures for the FROST tests: the vector directory beside the repository."""

from __future__ import annotations

import json
from pathlib import Path
from collections.abc import Callable
from typing import Any

import pytest

# tests/protocols/frost/ -> repo root is parents[3]; CI puts shared/ next to the repo.
VECTOR_DIR = Path(__file__).resolve().parents[3] / ".." / "shared" / "vectors" / "frost-ed25519"


def _load(name: str) -> dict[str, Any]:
    path = VECTOR_DIR / name
    if not path.is_file():
        pytest.skip(f"test vector {name} not found at {path} (expects ../shared/vectors beside the repo)")
    with path.open(encoding="utf-8") as fh:
        return json.load(fh)


@pytest.fixture
def load_vector() -> Callable[[str], dict[str, Any]]:
    """``load_vector(name)``: a parsed vector file, or skip the test when it is absent."""
    return _load

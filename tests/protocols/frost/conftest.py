"""Shared fixtures for the FROST tests: the vendored vectors in ``tests/vectors/frost-ed25519/``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from tests.fixtures.vectors import load_vector as _load_vendored

VECTOR_SET = "frost-ed25519"


def _load(name: str) -> dict[str, Any]:
    return _load_vendored(VECTOR_SET, name)  # type: ignore[no-any-return]


@pytest.fixture
def load_vector() -> Callable[[str], dict[str, Any]]:
    """``load_vector(name)``: a parsed vector file; a missing file fails the test (no skip)."""
    return _load

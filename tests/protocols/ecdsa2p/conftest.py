"""Shared fixtures for the two-party ECDSA tests: one key pair made once (keygen costs ~0.5 s)."""

from __future__ import annotations

import pytest

from protocols import ecdsa2p
from protocols.ecdsa2p import P1KeyShare, P2KeyShare


@pytest.fixture(scope="session")
def pair(custodian_setup: ecdsa2p.CustodianSetup) -> tuple[P1KeyShare, P2KeyShare]:
    """A signing pair for tests that do not lock or consume it (copy P1's share before locking)."""
    return ecdsa2p.keygen(custodian_setup)

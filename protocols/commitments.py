"""Hash commitments bound to the session, the protocol and the committing party.

``commit`` returns a 32-byte commitment and a fresh 32-byte opening nonce:
``C = SHA-256(len-prefixed("portal-mpc/commit/v1", protocol, session_id, party, nonce, value))``.
Binding the session id and party id stops a commitment from being replayed into another run or
reflected back by the other party; the random nonce makes it hiding. Verification compares in
constant time and raises ``ProofError`` on mismatch.
"""

from __future__ import annotations

import hashlib
import hmac
from protocols import randomness

from protocols.errors import ProofError

__all__ = ["commit", "verify_opening", "COMMITMENT_LENGTH", "NONCE_LENGTH"]

COMMITMENT_LENGTH = 32
NONCE_LENGTH = 32
_TAG = b"portal-mpc/commit/v1"


def _digest(protocol: str, session_id: bytes, party: int, nonce: bytes, value: bytes) -> bytes:
    h = hashlib.sha256()
    for item in (_TAG, protocol.encode(), session_id, party.to_bytes(4, "big"), nonce, value):
        h.update(len(item).to_bytes(8, "big"))
        h.update(item)
    return h.digest()


def commit(protocol: str, session_id: bytes, party: int, value: bytes) -> tuple[bytes, bytes]:
    """Commit to ``value``; returns ``(commitment, nonce)``. Keep the nonce until the opening."""
    nonce = randomness.token_bytes(NONCE_LENGTH)
    return _digest(protocol, session_id, party, nonce, value), nonce


def verify_opening(
    protocol: str, session_id: bytes, party: int, commitment: bytes, value: bytes, nonce: bytes
) -> None:
    """Raise ``ProofError`` unless ``(value, nonce)`` opens ``commitment`` made by ``party``."""
    if len(nonce) != NONCE_LENGTH or len(commitment) != COMMITMENT_LENGTH:
        raise ProofError("commitment opening has the wrong length")
    expected = _digest(protocol, session_id, party, nonce, value)
    if not hmac.compare_digest(expected, commitment):
        raise ProofError("commitment opening does not match the commitment")

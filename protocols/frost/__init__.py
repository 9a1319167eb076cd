"""FROST(Ed25519, SHA-512) threshold signatures per RFC 9591: DKG, signing, refresh, resharing.

Modules, named after the spec:
- ``ciphersuite``  H1..H5, contextString and serialisation (§6.1)
- ``helpers``      §4 helper functions (binding factors, group commitment, challenge)
- ``keys``         KeyShare, its byte format, the trusted dealer (App. C)
- ``dkg``          Pedersen DKG with proofs of knowledge (Komlo–Goldberg, Fig. 1)
- ``round1``, ``round2``, ``aggregate``   §5.1, §5.2, §5.3 and §5.4
- ``sign``         a signing session per signer over the round-message API
- ``round_trip``   two-party signing in one round trip with fresh nonces on both sides
- ``reshare``      refresh (same t, same ids) and resharing to a new (t', n') (Wong–Wang)
- ``broadcast``    how broadcast consistency is checked over point-to-point channels

One-call helpers run every party in memory (``protocols.local.run``) with a fresh session id.

Example: a 2-of-3 key from the DKG, a signature by parties 1 and 3, and its verification (the
library's RFC 8032 check raises ``ProofError`` on a bad signature; any Ed25519 verifier, here
PyNaCl's, accepts it):

>>> from protocols import frost
>>> shares = frost.dkg(2, 3)
>>> [share.identifier for share in shares]
[1, 2, 3]
>>> signature = frost.sign([shares[0], shares[2]], b"message")
>>> len(signature)
64
>>> frost.FROST_ED25519_SHA512.verify_signature(shares[0].public_key, b"message", signature)
>>> import nacl.signing
>>> nacl.signing.VerifyKey(shares[0].public_key).verify(b"message", signature)
b'message'

The same with the sans-I/O sessions, one per party, driven by ``protocols.local.run`` (which
moves every message through its wire encoding, as a real transport would):

>>> import secrets
>>> from protocols.local import run
>>> sid = secrets.token_bytes(32)
>>> two = run([frost.DKGSession(sid, party, [1, 2], threshold=2) for party in (1, 2)])
>>> sid = secrets.token_bytes(32)
>>> signatures = run([frost.SignSession(sid, share, [1, 2], b"message") for share in two])
>>> signatures[0] == signatures[1]
True
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable, Sequence

from protocols.errors import UsageError, require_instance
from protocols.frost.ciphersuite import FROST_ED25519_SHA512, Ciphersuite
from protocols.frost.dkg import DKGSession
from protocols.frost.keys import (
    KeyShare,
    check_identifiers,
    secret_scalar_from_seed,
    split_secret,
    trusted_dealer_keygen,
)
from protocols.frost.round_trip import InitiatorSession, ResponderSession
from protocols.frost.reshare import RefreshSession, ReshareSession
from protocols.frost.sign import SignSession
from protocols.local import run

__all__ = [
    "Ciphersuite",
    "FROST_ED25519_SHA512",
    "KeyShare",
    "SignSession",
    "InitiatorSession",
    "ResponderSession",
    "DKGSession",
    "RefreshSession",
    "ReshareSession",
    "refresh",
    "reshare",
    "dkg",
    "trusted_dealer_keygen",
    "split_secret",
    "secret_scalar_from_seed",
    "sign",
]


def _new_session_id() -> bytes:
    return secrets.token_bytes(32)


def _same_key(key_shares: Sequence[KeyShare]) -> list[KeyShare]:
    if isinstance(key_shares, (str, bytes)) or not isinstance(key_shares, Iterable):
        raise UsageError("need a non-empty list of KeyShare")
    shares = list(key_shares)
    if not shares:
        raise UsageError("need a non-empty list of KeyShare")
    for share in shares:
        require_instance(share, KeyShare, "FROST needs the participants' key shares")
    if len({s.public_key for s in shares}) != 1:
        raise UsageError("key shares belong to different keys")
    return shares


def sign(key_shares: Sequence[KeyShare], message: bytes) -> bytes:
    """Sign ``message`` with the given shares (the signers); returns the 64-byte signature.

    >>> shares = dkg(2, 3)
    >>> signature = sign(shares[1:], b"message")  # parties 2 and 3
    >>> FROST_ED25519_SHA512.verify_signature(shares[0].public_key, b"message", signature)
    """
    shares = _same_key(key_shares)
    signers = [s.identifier for s in shares]
    session_id = _new_session_id()
    sessions = [SignSession(session_id, s, signers, message) for s in shares]
    signature: bytes = run(sessions)[0]
    return signature


def dkg(threshold: int, n: int) -> list[KeyShare]:
    """Run a t-of-n DKG (2 ≤ t ≤ n) among parties 1..n in memory; returns their KeyShares in order.

    >>> shares = dkg(2, 3)
    >>> len({share.public_key for share in shares})  # one group public key, 32 bytes
    1
    """
    if not isinstance(n, int) or isinstance(n, bool) or n < 1:
        raise UsageError("n must be a positive integer")
    parties = range(1, n + 1)
    session_id = _new_session_id()
    return run([DKGSession(session_id, i, parties, threshold) for i in parties])


def refresh(key_shares: Sequence[KeyShare]) -> list[KeyShare]:
    """Refresh the given shares (≥ t of one key) in memory: same key, same t, fresh shares."""
    shares = _same_key(key_shares)
    parties = [s.identifier for s in shares]
    session_id = _new_session_id()
    return run([RefreshSession(session_id, s, parties) for s in shares])


def reshare(key_shares: Sequence[KeyShare], new_threshold: int, new_participants: Sequence[int]) -> list[KeyShare]:
    """Reshare the key of ``key_shares`` (≥ t old holders, the dealers) to a new t'-of-n' set.

    An identifier in both sets is the same party. Returns the new KeyShares in the order of
    ``sorted(new_participants)``.
    """
    shares = _same_key(key_shares)
    by_id = {s.identifier: s for s in shares}
    receivers = list(check_identifiers(new_participants))
    first = shares[0]
    session_id = _new_session_id()
    sessions = [
        ReshareSession(
            session_id, party, dealers=list(by_id), receivers=receivers, new_threshold=new_threshold,
            key_share=by_id.get(party), group_public_key=first.group_public_key,
            old_verifying_shares=first.verifying_shares,
        )
        for party in sorted(set(by_id) | set(receivers))
    ]
    results = run(sessions)
    return [r for s, r in zip(sessions, results) if s.party_id in set(receivers)]

"""Proof of possession of the client's backup share, asked before backup material leaves the
custodian (eject) or a recover reshares from it.

The custodian's first step of eject and recover carries a fresh 32-byte ``nonce``; the client
decrypts its backup share and answers with one Schnorr proof of knowledge per curve
(``protocols.zk.schnorr``): of x1 for Q1 = x1·G on secp256k1 (the custodian's backup share holds
Q1) and of the FROST signing share s1 for the verifying share s1·B on ed25519. Each proof's
transcript binds the domain, the operation, the session id, the client id, the backup method,
the custodian's nonce and the curve, so a proof seen once (an old session, another client,
another curve) never verifies again: the nonce is the custodian's, not the client's.

A bearer token alone therefore gets no custodian backup share and starts no reshare; every failed
proof counts (``mpc.backup.attempts``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from curves import Point, SecretScalar, ed25519, secp256k1
from mpc.wallet import CLIENT_PARTY, CURVES, PARTIES
from protocols.encoding import require_keys
from protocols.errors import InvalidMessage
from protocols.transcript import Transcript
from protocols.zk import schnorr

__all__ = ["prove", "verify", "NONCE_BYTES"]

NONCE_BYTES = 32
_DOMAIN = "portal-mpc/possession/v1"
_GROUPS = {"secp256k1": secp256k1, "ed25519": ed25519}


def _transcript(protocol: str, session_id: bytes, client_id: str, method: str, nonce: bytes,
                curve: str) -> Transcript:
    transcript = Transcript.for_context(_DOMAIN, protocol=protocol, session_id=session_id, round=0,
                                        parties=PARTIES)
    for label, value in (("client_id", client_id.encode()), ("method", method.encode()),
                         ("nonce", nonce), ("curve", curve.encode())):
        transcript.append_bytes(label, value)
    return transcript


def _client_secret(curve: str, client_share: Any) -> SecretScalar:
    """x1 of an ECDSA P1 share, s1 of a FROST key share."""
    secret: SecretScalar = client_share.x1 if curve == "secp256k1" else client_share.signing_share
    return secret


def _client_public(curve: str, custodian_share: Any) -> Point:
    """Q1 from the custodian's ECDSA P2 share, the client's verifying share from its FROST share."""
    point: Point = custodian_share.q1 if curve == "secp256k1" else custodian_share.verifying_shares[CLIENT_PARTY]
    return point


def prove(client_shares: Mapping[str, Any], *, protocol: str, session_id: bytes, client_id: str,
          method: str, nonce: bytes) -> dict[str, Any]:
    """The client's ``possession`` step: one Schnorr proof per curve over its backup shares."""
    return {
        curve: schnorr.prove(_client_secret(curve, client_shares[curve]),
                             _transcript(protocol, session_id, client_id, method, nonce, curve)).to_payload()
        for curve in CURVES
    }


def verify(custodian_shares: Mapping[str, Any], data: Mapping[str, Any], *, protocol: str, session_id: bytes,
           client_id: str, method: str, nonce: bytes) -> None:
    """Check the client's ``possession`` step against the custodian's backup shares.

    Raises ``InvalidMessage`` for a malformed step, ``ProofError`` for a proof that fails.
    """
    require_keys(data, CURVES)
    proofs = {}
    for curve in CURVES:  # decode everything before checking anything
        if not isinstance(data[curve], Mapping):
            raise InvalidMessage("a possession proof must be an object")
        proofs[curve] = schnorr.SchnorrProof.from_payload(data[curve], _GROUPS[curve])
    for curve in CURVES:
        schnorr.verify(_client_public(curve, custodian_shares[curve]), proofs[curve],
                       _transcript(protocol, session_id, client_id, method, nonce, curve))

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

The same proofs over the client's *signing* shares enrol a device key (``enrol_device`` of the
custodian service, ``docs/operations.md``, Device keys): :func:`prove_enrolment` binds the
service's challenge and the new device public key (protocol ``device/enrol``, method
``device``), so a proof authorises that key on that connection only.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

from curves import Point, SecretScalar, ed25519, secp256k1
from mpc.wallet import CLIENT_PARTY, CURVES, PARTIES
from protocols.encoding import require_keys
from protocols.errors import InvalidMessage
from protocols.transcript import Transcript
from protocols.zk import schnorr

__all__ = ["prove", "verify", "prove_enrolment", "verify_enrolment", "NONCE_BYTES", "ENROL_PROTOCOL"]

NONCE_BYTES = 32
_DOMAIN = "portal-mpc/possession/v1"
ENROL_PROTOCOL = "device/enrol"
_ENROL_METHOD = "device"
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


def _enrolment_nonce(challenge: bytes, device_public: bytes) -> bytes:
    """The challenge bound to the device key being enrolled (length-prefixed, domain-tagged)."""
    parts = [challenge, device_public]
    return hashlib.blake2b(b"".join(len(p).to_bytes(4, "big") + p for p in parts), digest_size=NONCE_BYTES,
                           person=b"portal-mpc-enrol").digest()


def prove_enrolment(client_signing_shares: Mapping[str, Any], *, client_id: str, challenge: bytes,
                    device_public: bytes) -> dict[str, Any]:
    """The device's proof that it holds the client's signing shares, for enrolling
    ``device_public`` on the connection that got ``challenge``."""
    return prove(client_signing_shares, protocol=ENROL_PROTOCOL, session_id=challenge, client_id=client_id,
                 method=_ENROL_METHOD, nonce=_enrolment_nonce(challenge, device_public))


def verify_enrolment(custodian_signing_shares: Mapping[str, Any], data: Mapping[str, Any], *, client_id: str,
                     challenge: bytes, device_public: bytes) -> None:
    """Check :func:`prove_enrolment`'s proofs against the custodian's signing shares
    (``InvalidMessage`` malformed, ``ProofError`` failing)."""
    verify(custodian_signing_shares, data, protocol=ENROL_PROTOCOL, session_id=challenge, client_id=client_id,
           method=_ENROL_METHOD, nonce=_enrolment_nonce(challenge, device_public))

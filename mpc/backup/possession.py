"""Proofs of possession: the client proves it holds a pair of its shares before the custodian
lets a bearer of its token change or release anything.

Three kinds of share are proved, each under its own transcript domain, so a proof of one kind
never verifies as another (``KINDS``):

- ``BACKUP_SHARE``: the decrypted client backup share, before backup material leaves the
  custodian (eject) or a recover reshares from it;
- ``SIGNING_SHARE``: the device's signing share, before a backup reshares it (the custodian
  verifies it against the Q1 and the FROST verifying share of its stored signing shares);
- ``NEW_BACKUP_SHARE``: the client backup share a backup just made, before the custodian stores
  the client's boxes and promotes the new version (verified against the Q1' and verifying share
  of the pending custodian backup share: what a later recover checks ``BACKUP_SHARE`` against);
- ``CONFIRM_BACKUP``: the same share when the customer keeps the boxes; made at the end of the
  backup, handed to the customer with the boxes (the result's ``confirmation``) and verified when
  it confirms it stored them (``Custodian.stored_client_backup_share``).

The custodian's first step of each of these operations carries a fresh 32-byte ``nonce``; the
client answers with one Schnorr proof of knowledge per curve (``protocols.zk.schnorr``): of x1
for Q1 = x1·G on secp256k1 (the custodian's ECDSA share holds Q1) and of the FROST share s1 for
the verifying share s1·B on ed25519. Each proof's transcript binds the domain (the kind), the
operation, the session id, the client id, the backup method, the custodian's nonce and the
curve, so a proof seen once (an old session, another operation, another client, another kind,
another curve) never verifies again: the nonce is the custodian's, not the client's.

A bearer token alone therefore gets no custodian backup share, starts no reshare and replaces no
backup (``docs/threat-model.md``, what proves the device per operation).

The same proofs over the client's *signing* shares enrol a device key (``enrol_device`` of the
custodian service, ``docs/operations.md``, Device keys): :func:`prove_enrolment` binds the
service's challenge and the new device public key (protocol ``device/enrol``, method
``device``, kind ``SIGNING_SHARE``), so a proof authorises that key on that connection only.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

from curves import Point, SecretScalar, ed25519, secp256k1
from mpc.wallet import CLIENT_PARTY, CURVES, PARTIES
from protocols.encoding import get_bytes, get_point, require_keys
from protocols.errors import InvalidMessage, ShareMismatch, UsageError
from protocols.transcript import Transcript
from protocols.zk import schnorr

__all__ = ["prove", "verify", "client_public", "public_shares", "check_public_shares", "decode_public_shares",
           "decode_nonce", "prove_enrolment", "verify_enrolment", "NONCE_BYTES", "ENROL_PROTOCOL", "BACKUP_SHARE", "SIGNING_SHARE", "NEW_BACKUP_SHARE",
           "CONFIRM_BACKUP", "KINDS", "verify_points"]

NONCE_BYTES = 32
BACKUP_SHARE = "backup-share"
SIGNING_SHARE = "signing-share"
NEW_BACKUP_SHARE = "new-backup-share"
CONFIRM_BACKUP = "confirm-backup"
# One transcript domain per kind (the backup share's is the original one: recover and eject
# proofs are unchanged on the wire).
_DOMAINS = {
    BACKUP_SHARE: "portal-mpc/possession/v1",
    SIGNING_SHARE: "portal-mpc/possession/signing-share/v1",
    NEW_BACKUP_SHARE: "portal-mpc/possession/new-backup-share/v1",
    CONFIRM_BACKUP: "portal-mpc/possession/confirm-backup/v1",
}
KINDS = tuple(_DOMAINS)
ENROL_PROTOCOL = "device/enrol"
_ENROL_METHOD = "device"
_GROUPS = {"secp256k1": secp256k1, "ed25519": ed25519}


def _transcript(kind: str, protocol: str, session_id: bytes, client_id: str, method: str, nonce: bytes,
                curve: str) -> Transcript:
    if kind not in _DOMAINS:
        raise UsageError(f"unknown kind of share {kind!r}")
    transcript = Transcript.for_context(_DOMAINS[kind], protocol=protocol, session_id=session_id, round=0,
                                        parties=PARTIES)
    for label, value in (("client_id", client_id.encode()), ("method", method.encode()),
                         ("nonce", nonce), ("curve", curve.encode())):
        transcript.append_bytes(label, value)
    return transcript


def _client_secret(curve: str, client_share: Any) -> SecretScalar:
    """x1 of an ECDSA P1 share, s1 of a FROST key share."""
    secret: SecretScalar = client_share.x1 if curve == "secp256k1" else client_share.signing_share
    return secret


def client_public(curve: str, custodian_share: Any) -> Point:
    """Q1 from the custodian's ECDSA P2 share, the client's verifying share from its FROST share
    (of a signing pair or a backup pair alike)."""
    point: Point = custodian_share.q1 if curve == "secp256k1" else custodian_share.verifying_shares[CLIENT_PARTY]
    return point


def decode_nonce(data: Mapping[str, Any]) -> bytes:
    """The custodian's nonce from a step's ``data`` (exactly ``NONCE_BYTES`` bytes)."""
    return get_bytes(data, "nonce", NONCE_BYTES)


def prove(client_shares: Mapping[str, Any], *, protocol: str, session_id: bytes, client_id: str,
          method: str, nonce: bytes, kind: str = BACKUP_SHARE) -> dict[str, Any]:
    """The client's ``possession`` data: one Schnorr proof per curve over its shares of ``kind``."""
    return {
        curve: schnorr.prove(_client_secret(curve, client_shares[curve]),
                             _transcript(kind, protocol, session_id, client_id, method, nonce, curve)).to_payload()
        for curve in CURVES
    }


def verify(custodian_shares: Mapping[str, Any], data: Mapping[str, Any], *, protocol: str, session_id: bytes,
           client_id: str, method: str, nonce: bytes, kind: str = BACKUP_SHARE) -> None:
    """Check the client's ``possession`` data against the custodian's shares of the same pair
    (the client's public shares they record, ``client_public``).

    Raises ``InvalidMessage`` for malformed data, ``ProofError`` for a proof that fails.
    """
    points = {curve: client_public(curve, custodian_shares[curve]) for curve in CURVES}
    verify_points(points, data, protocol=protocol, session_id=session_id, client_id=client_id, method=method,
                  nonce=nonce, kind=kind)


def verify_points(points: Mapping[str, Point], data: Any, *, protocol: str, session_id: bytes, client_id: str,
                  method: str, nonce: bytes, kind: str) -> None:
    """``verify`` against the client's public shares themselves (Q1; its verifying share)."""
    if not isinstance(data, Mapping):
        raise InvalidMessage("the possession proofs must be an object")
    require_keys(data, CURVES)
    proofs = {}
    for curve in CURVES:  # decode everything before checking anything
        if not isinstance(data[curve], Mapping):
            raise InvalidMessage("a possession proof must be an object")
        proofs[curve] = schnorr.SchnorrProof.from_payload(data[curve], _GROUPS[curve])
    for curve in CURVES:
        schnorr.verify(points[curve], proofs[curve],
                       _transcript(kind, protocol, session_id, client_id, method, nonce, curve))

def public_shares(shares: Mapping[str, Any]) -> dict[str, str]:
    """The client's public share per curve, hex (Q1; its FROST verifying share), from either
    party's shares of one pair: what a ``SIGNING_SHARE`` step names before its proofs."""
    return {curve: client_public(curve, shares[curve]).to_bytes().hex() for curve in CURVES}


def check_public_shares(custodian_shares: Mapping[str, Any], data: Any) -> None:
    """The client's named public shares, decoded strictly and compared with the custodian's:
    another pair (a stale device whose shares a recover replaced) is ``ShareMismatch``."""
    named = decode_public_shares(data)
    if any(named[curve] != client_public(curve, custodian_shares[curve]) for curve in CURVES):
        raise ShareMismatch("the client's shares are not the other half of the custodian's")


def decode_public_shares(data: Any) -> dict[str, Point]:
    """The client's public shares named in ``data`` (as ``public_shares`` writes them), strictly."""
    require_keys(data, CURVES)
    return {curve: get_point(data, curve, _GROUPS[curve]) for curve in CURVES}


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
                 method=_ENROL_METHOD, nonce=_enrolment_nonce(challenge, device_public), kind=SIGNING_SHARE)


def verify_enrolment(custodian_signing_shares: Mapping[str, Any], data: Mapping[str, Any], *, client_id: str,
                     challenge: bytes, device_public: bytes) -> None:
    """Check :func:`prove_enrolment`'s proofs against the custodian's signing shares
    (``InvalidMessage`` malformed, ``ProofError`` failing)."""
    verify(custodian_signing_shares, data, protocol=ENROL_PROTOCOL, session_id=challenge, client_id=client_id,
           method=_ENROL_METHOD, nonce=_enrolment_nonce(challenge, device_public), kind=SIGNING_SHARE)

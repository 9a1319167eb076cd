"""Two-party ECDSA signing (Lindell 2017, signing protocol; REFERENCES.md §2 "Signing").

Round 1  P1 -> P2  digest and Q1 (so a mismatched pair stops here); commitment to
                   (R1 = k1·G, Schnorr proof of k1)
Round 2  P2 -> P1  R2 = k2·G with its Schnorr proof
Round 3  P1 -> P2  opening of round 1
Round 4  P2 -> P1  c3 = Enc(ρ·q + k2⁻¹·(m + r·x2)) ⊕ (k2⁻¹·r) ⊙ c_key     (homomorphic step)
Round 5  P1 -> P2  the signature (r, s, recid), after P1 verified it
Output   both parties: the same low-s ``Signature``

Both sides compute R = k1·R2 = k2·R1 and r = R.x mod q and refuse r = 0. P1 decrypts s' as a
*signed* value (cb-mpc #124), sets s = k1⁻¹·s' mod q, normalises to low-s, computes the
recovery id and verifies (r, s) under Q before releasing anything (cb-mpc #126). If the check
fails, P1 locks its share for good and raises ``KeyLocked``: a crafted c3 can make verification
fail exactly when a chosen bit of x1 is set, so each failure may leak a bit (BitForge §3.2,
CVE-2023-33242). P2 verifies the signature it receives too.

The mask ρ is uniform below 2^(ℓ+ε+κ): Π_log* only bounds |x1| ≤ 2^(ℓ+ε), so the mask must
swamp (k2⁻¹·r)·x1 < q·2^(ℓ+ε) by a statistical margin κ; the whole plaintext stays far below
N/2 (see ``MASK_BITS``), so it decrypts without wrapping.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Any

from curves import Point, SecretScalar, secp256k1
from protocols import paillier
from protocols.commitments import COMMITMENT_LENGTH, NONCE_LENGTH
from protocols.ecdsa2p.common import CLIENT, CUSTODIAN, GROUP, TwoPartySession, point_and_proof_bytes
from protocols.ecdsa2p.shares import P1KeyShare, P2KeyShare
from protocols.ecdsa2p.signature import Signature, digest_to_int, recover_public_key, verify_signature
from protocols.encoding import get_bytes, get_point, get_scalar, require_keys
from protocols.errors import InvalidMessage, KeyLocked, ProtocolAbort, UsageError
from protocols.rounds import Message
from protocols.zk import schnorr
from protocols.zk.params import ELL, EPSILON

__all__ = ["SignP1", "SignP2", "MASK_BITS"]

PROTOCOL = "ecdsa2p/sign"
Q = GROUP.order
STATISTICAL_BITS = 128  # κ: statistical distance 2^-128 between masked plaintexts
MASK_BITS = ELL + EPSILON + STATISTICAL_BITS  # ρ < 2^896, so ρ·q < 2^1152 ≪ N/2 = 2^2047


def nonce_point(k: int, peer_point: Point) -> tuple[Point, int]:
    """R = k·R_peer and r = R.x mod q; r = 0 would let (O, 0)-style forgeries through."""
    r_point = peer_point * k
    if r_point.is_identity:
        raise ProtocolAbort("nonce point is the identity")
    r = secp256k1.affine(r_point)[0] % Q
    if r == 0:
        raise ProtocolAbort("r = 0")
    return r_point, r


@dataclass(frozen=True)
class _Opening:
    r1: Point


class SignP1(TwoPartySession):
    """The client's side of signing: it decrypts, verifies and gets the signature first."""

    protocol = PROTOCOL

    def __init__(self, session_id: bytes, share: P1KeyShare, digest: bytes) -> None:
        share.check_usable()
        if share.paillier is None:
            raise UsageError("a backup share cannot sign; reshare it into a signing share first")
        super().__init__(session_id, CLIENT)
        self._share = share
        self._m = digest_to_int(digest)  # validates the digest first (UsageError)
        self._digest = bytes(digest)
        self._k1 = SecretScalar.random(GROUP)

    def _begin(self) -> list[Message]:
        self._share.check_usable()
        r1 = self._k1.public_point()
        proof = schnorr.prove(self._k1, self._transcript("dlog", 1, CLIENT, self._digest))
        commitment, nonce = self._commit(self._digest + point_and_proof_bytes(r1, proof))
        self._opening = {"R1": r1.to_bytes().hex(), "proof": proof.to_payload(), "nonce": nonce.hex()}
        self._expect(2)
        payload = {"digest": self._digest.hex(), "Q1": self._share.q1.to_bytes().hex(), "commitment": commitment.hex()}
        return [self._message(1, payload, CUSTODIAN)]

    def _decode_round2(self, msg: Message) -> Point:
        require_keys(msg.payload, ("R2", "proof"))
        r2 = get_point(msg.payload, "R2", GROUP)
        proof = schnorr.SchnorrProof.from_payload(msg.payload["proof"], GROUP)
        schnorr.verify(r2, proof, self._transcript("dlog", 2, CUSTODIAN, self._digest))
        return r2

    def _on_round2(self, inputs: dict[int, Any]) -> list[Message]:
        self._share.check_usable()
        try:
            self._r_point, self._r = nonce_point(self._k1.value, inputs[CUSTODIAN])
        except ProtocolAbort as exc:
            raise ProtocolAbort(exc.reason, CUSTODIAN) from None
        self._expect(4)
        return [self._message(3, self._opening, CUSTODIAN)]

    def _decode_round4(self, msg: Message) -> int:
        require_keys(msg.payload, ("c3",))
        return paillier.decode_ciphertext(msg.payload, "c3", self._share.paillier.public_key)  # type: ignore[union-attr]

    def _on_round4(self, inputs: dict[int, Any]) -> list[Message]:
        # Another session on this share object may have locked it since this one started:
        # decrypting now would still tell the custodian one more bit (CVE-2023-33242).
        self._share.check_usable()
        signature = self._finish_signature(inputs[CUSTODIAN])
        self._finish(signature)
        return [self._message(5, signature_payload(signature), CUSTODIAN)]

    def _finish_signature(self, c3: int) -> Signature:
        """Decrypt, unblind, normalise and verify; lock the share on any failure."""
        s_prime = paillier.decrypt_signed(self._share.paillier, c3)  # type: ignore[arg-type]
        s = pow(self._k1.value, -1, Q) * s_prime % Q
        if s != 0:
            signature = Signature.from_nonce_point(self._r_point, s)
            if verify_signature(self._share.public_point, self._digest, signature):
                return signature
        self._share.lock()
        raise KeyLocked("the computed signature did not verify: the key share is now locked (custodian at fault)")


class SignP2(TwoPartySession):
    """The custodian's side of signing: the homomorphic step, then it verifies the result."""

    protocol = PROTOCOL

    def __init__(self, session_id: bytes, share: P2KeyShare, digest: bytes) -> None:
        if share.paillier is None or share.c_key is None:
            raise UsageError("a backup share cannot sign; reshare it into a signing share first")
        super().__init__(session_id, CUSTODIAN)
        self._share = share
        self._m = digest_to_int(digest)  # validates the digest first (UsageError)
        self._digest = bytes(digest)
        self._k2 = SecretScalar.random(GROUP)

    def _begin(self) -> list[Message]:
        self._expect(1)
        return []

    def _decode_round1(self, msg: Message) -> bytes:
        require_keys(msg.payload, ("digest", "Q1", "commitment"))
        if get_bytes(msg.payload, "digest", 32) != self._digest:
            raise InvalidMessage("the client asks to sign a different digest")
        # A stale or foreign pair is refused here, before any nonce is used (and before a
        # failed signature could lock the client's share).
        if get_point(msg.payload, "Q1", GROUP) != self._share.q1:
            raise InvalidMessage("the client's share does not belong to this custodian share")
        return get_bytes(msg.payload, "commitment", COMMITMENT_LENGTH)

    def _on_round1(self, inputs: dict[int, Any]) -> list[Message]:
        self._commitment = inputs[CLIENT]
        proof = schnorr.prove(self._k2, self._transcript("dlog", 2, CUSTODIAN, self._digest))
        self._expect(3)
        payload = {"R2": self._k2.public_point().to_bytes().hex(), "proof": proof.to_payload()}
        return [self._message(2, payload, CLIENT)]

    def _decode_round3(self, msg: Message) -> Point:
        require_keys(msg.payload, ("R1", "proof", "nonce"))
        r1 = get_point(msg.payload, "R1", GROUP)
        proof = schnorr.SchnorrProof.from_payload(msg.payload["proof"], GROUP)
        nonce = get_bytes(msg.payload, "nonce", NONCE_LENGTH)
        self._verify_opening(self._commitment, self._digest + point_and_proof_bytes(r1, proof), nonce)
        schnorr.verify(r1, proof, self._transcript("dlog", 1, CLIENT, self._digest))
        return r1

    def _on_round3(self, inputs: dict[int, Any]) -> list[Message]:
        try:
            _, self._r = nonce_point(self._k2.value, inputs[CLIENT])
        except ProtocolAbort as exc:
            raise ProtocolAbort(exc.reason, CLIENT) from None
        c3 = self._homomorphic_step(self._r)
        self._expect(5)
        return [self._message(4, {"c3": paillier.encode_ciphertext(c3)}, CLIENT)]

    def _homomorphic_step(self, r: int) -> int:
        """c3 = Enc(ρ·q + k2⁻¹·(m + r·x2)) ⊕ (k2⁻¹·r) ⊙ c_key (Lindell 2017, signing step 4)."""
        pk = self._share.paillier
        k2_inv = pow(self._k2.value, -1, Q)
        rho = secrets.randbits(MASK_BITS)
        plain = rho * Q + k2_inv * (self._m + r * self._share.x2.value) % Q
        masked, _ = paillier.encrypt(pk, plain)  # type: ignore[arg-type]
        scaled = paillier.mul(pk, self._share.c_key, k2_inv * r % Q)  # type: ignore[arg-type]
        return paillier.add(pk, masked, scaled)  # type: ignore[arg-type]

    def _decode_round5(self, msg: Message) -> Signature:
        return decode_signature(msg.payload)

    def _on_round5(self, inputs: dict[int, Any]) -> list[Message]:
        check_client_signature(self._share.public_point, self._digest, self._r, inputs[CLIENT])
        self._finish(inputs[CLIENT])
        return []


def signature_payload(signature: Signature) -> dict[str, Any]:
    """The final message of P1: r and s as 32-byte scalars, and the recovery id."""
    return {"r": GROUP.encode_scalar(signature.r).hex(), "s": GROUP.encode_scalar(signature.s).hex(),
            "recid": signature.recid}


def decode_signature(payload: Any) -> Signature:
    """Strictly decode ``signature_payload`` output (``InvalidMessage`` otherwise)."""
    require_keys(payload, ("r", "s", "recid"))
    recid = payload["recid"]
    if not isinstance(recid, int) or isinstance(recid, bool):
        raise InvalidMessage("recid must be an integer")
    return Signature(get_scalar(payload, "r", GROUP), get_scalar(payload, "s", GROUP), recid)


def check_client_signature(public_point: Point, digest: bytes, r: int, signature: Signature) -> None:
    """P2's check of the signature P1 hands over: its r, (r, s) under Q, and its recovery id."""
    if signature.r != r or not verify_signature(public_point, digest, signature):
        raise ProtocolAbort("the client's signature does not verify", CLIENT)
    # (r, s) verifying says nothing about recid: a wrong one would make every recovering
    # verifier (Ethereum's ecrecover) derive another address.
    try:
        recovered = recover_public_key(digest, signature)
    except InvalidMessage:
        recovered = None
    if recovered != public_point:
        raise ProtocolAbort("the client's recovery id does not recover the public key", CLIENT)



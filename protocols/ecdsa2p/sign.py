"""Two-party ECDSA signing (Lindell 2017, signing protocol; ePrint 2017/552; cb-mpc ecdsa_2p.cpp).

Message flow::

    Round 1  P1 -> P2  digest and Q1 (so a mismatched pair stops here); commitment to
                       (R1 = k1·G, Schnorr proof of k1)
    Round 2  P2 -> P1  R2 = k2·G with its Schnorr proof
    Round 3  P1 -> P2  opening of round 1
    Round 4  P2 -> P1  c3 = (r·w1) ⊙ c_key' ⊕ Enc(w1·m + w2·r + ρ·q) with w1 = k2⁻¹, w2 = k2⁻¹·x2
                       (mod q) and c_key' = c_key ⊕ SHIFT (homomorphic step), and Π_c3: a proof
                       that c3 was formed so (``protocols.zk.c3``, cb-mpc's default signing)
    Round 5  P1 -> P2  the signature (r, s, recid), after P1 verified it
    Output   both parties: the same low-s ``Signature``

Both sides compute R = k1·R2 = k2·R1 and r = R.x mod q and refuse r = 0. P1 verifies Π_c3
against its own ring-Pedersen parameters **before it decrypts anything**: a c3 altered in any way
(shifted by q, another session's, a random one) is refused with a ``ProtocolAbort`` naming the
custodian, nothing is decrypted, and the share is not locked: the verdict of a public proof is
something the custodian can compute itself, so it learns nothing from it. With a valid proof the
plaintext of c3 is k2⁻¹·(m + r·x) + (multiple of q) below N/2 for sure, so the signature is valid
whatever x1 is, and the Lindell bit leak (BitForge §3.2, CVE-2023-33242) has nothing to work
with. P1 then decrypts s' as a *signed* value (cb-mpc #124), sets s = k1⁻¹·s' mod q, normalises
to low-s, computes the recovery id and verifies (r, s) under Q before releasing anything (cb-mpc
#126). A signature that fails *despite* a valid proof means something is broken; then P1 locks
its share for good and raises ``KeyLocked`` (defence in depth). P2 verifies the signature it
receives too.

The mask ρ is uniform below 2^``MASK_BITS`` (see ``protocols.zk.c3``: it swamps the rest of the
plaintext for every |x1| ≤ 2^(ℓ+ε) that Π_log* admits, within 2^-128).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Any, Protocol

from curves import Point, SecretScalar, secp256k1
from protocols import bigint, paillier, randomness
from protocols.commitments import COMMITMENT_LENGTH, NONCE_LENGTH
from protocols.ecdsa2p.common import CLIENT, CUSTODIAN, GROUP, TwoPartySession, point_and_proof_bytes
from protocols.ecdsa2p.shares import P1KeyShare, P2KeyShare
from protocols.ecdsa2p.signature import Signature, digest_to_int, verified_nonce_point, verify_signature
from protocols.encoding import get_bytes, get_point, get_scalar, require_keys
from protocols.errors import InvalidMessage, KeyLocked, ProtocolAbort, ShareMismatch, UsageError, require_instance
from protocols.ring_pedersen import RingPedersenParams, RingPedersenSecret
from protocols.rounds import Message
from protocols.transcript import Transcript
from protocols.zk import c3 as c3_proof
from protocols.zk import schnorr
from protocols.state import register_attrs, register_dataclass

__all__ = ["SignP1", "SignP2", "MASK_BITS", "C3Precomputation", "DecryptionGuard", "PrecomputationSource"]

PROTOCOL = "ecdsa2p/sign"
Q = GROUP.order
MASK_BITS = c3_proof.DEFAULT_BOUNDS.mask_bits


def nonce_point(k: int, peer_point: Point) -> tuple[Point, int]:
    """R = k·R_peer and r = R.x mod q; r = 0 would let (O, 0)-style forgeries through."""
    r_point = peer_point * k
    if r_point.is_identity:
        raise ProtocolAbort("nonce point is the identity")
    r = secp256k1.affine(r_point)[0] % Q
    if r == 0:
        raise ProtocolAbort("r = 0")
    return r_point, r


PrecomputationSource = Callable[[], "C3Precomputation | None"]
"""Hands out one precomputation (or None) when ``SignP2`` reaches round 3 (``mpc.presign``'s pool)."""


class _OneShot:
    """A source that hands out one given precomputation, once."""

    def __init__(self, item: C3Precomputation) -> None:
        self._item: C3Precomputation | None = item

    def __call__(self) -> C3Precomputation | None:
        item, self._item = self._item, None
        return item


@dataclass(frozen=True)
class _Opening:
    r1: Point


class DecryptionGuard(Protocol):
    """How P1's storage learns that a decryption is in flight (docs/threat-model.md: the lock must be
    persisted before decryption completes). ``begin`` is called after Π_c3 verified and before
    c3 is decrypted; ``end`` only once the signature verified. A ``begin`` without ``end`` (a
    crash, or a failed signature) must count as a failed signature: lock the share."""

    def begin(self) -> None:
        """Persist "decryption in flight": called after Π_c3 verified, before c3 is decrypted."""

    def end(self) -> None:
        """Clear the marker: called only once the signature verified."""


class SignP1(TwoPartySession):
    """The client's side of signing: it decrypts, verifies and gets the signature first."""

    protocol = PROTOCOL

    def __init__(
        self, session_id: bytes, share: P1KeyShare, digest: bytes, *, decryption_guard: DecryptionGuard | None = None
    ) -> None:
        require_instance(share, P1KeyShare, "SignP1 takes the client's share")
        share.check_usable()
        if share.paillier is None:
            raise UsageError("a backup share cannot sign; reshare it into a signing share first")
        super().__init__(session_id, CLIENT)
        self._share = share
        self._m = digest_to_int(digest)  # validates the digest first (UsageError)
        self._digest = bytes(digest)
        self._k1 = SecretScalar.random(GROUP)
        self._decryption_guard = decryption_guard

    def _begin(self) -> list[Message]:
        self._share.check_usable()
        r1 = self._k1.public_point()
        proof = schnorr.prove(self._k1, self._transcript("dlog", 1, CLIENT, self._digest))
        commitment, nonce = self._commit(self._digest + point_and_proof_bytes(r1, proof))
        self._opening = {"R1": r1.to_bytes().hex(), "proof": proof.to_payload(), "nonce": nonce.hex()}
        self._expect(2)
        payload = {"digest": self._digest.hex(), "Q1": self._share.q1.to_bytes().hex(), "commitment": commitment.hex(),
                   "level": self._share.level.name}
        return [self._message(1, payload, CUSTODIAN)]

    def _decode_round2(self, msg: Message) -> Point:
        require_keys(msg.payload, ("R2", "proof"))
        r2 = get_point(msg.payload, "R2", GROUP)
        proof = schnorr.SchnorrProof.from_payload(msg.payload["proof"], GROUP)
        schnorr.verify(r2, proof, self._transcript("dlog", 2, CUSTODIAN, self._digest))
        return r2

    def _on_round2(self, inputs: dict[int, Any]) -> list[Message]:
        self._share.check_usable()
        self._r2 = inputs[CUSTODIAN]
        try:
            self._r_point, self._r = nonce_point(self._k1.value, self._r2)
        except ProtocolAbort as exc:
            raise ProtocolAbort(exc.reason, CUSTODIAN) from None
        self._expect(4)
        return [self._message(3, self._opening, CUSTODIAN)]

    def _decode_round4(self, msg: Message) -> int:
        """Decode c3 and verify Π_c3 (a failure aborts naming the custodian: nothing decrypted)."""
        return receive_c3(self._share, self._digest, self._r, self._r2, msg.payload,
                          self._transcript("c3", 4, CUSTODIAN, self._digest))

    def _on_round4(self, inputs: dict[int, Any]) -> list[Message]:
        # Another session on this share object may have locked it since this one started:
        # decrypting now would still tell the custodian one more bit (CVE-2023-33242).
        self._share.check_usable()
        signature = self._finish_signature(inputs[CUSTODIAN])
        self._finish(signature)
        return [self._message(5, signature_payload(signature), CUSTODIAN)]

    def _finish_signature(self, c3: int) -> Signature:
        if self._decryption_guard is not None:
            self._decryption_guard.begin()  # persisted before decryption: a crash from here on counts as a failure
        signature = finish_signature(self._share, self._k1.value, self._r_point, self._digest, c3)
        if self._decryption_guard is not None:
            self._decryption_guard.end()
        return signature

    def __reduce__(self) -> Any:
        raise TypeError("P1's signing session holds its nonce k1 and is never serialised")


class SignP2(TwoPartySession):
    """The custodian's side of signing: the homomorphic step, then it verifies the result.

    Rollback-safe by construction (docs/threat-model.md, "Rollback"): k2 and its proof nonce are
    drawn in the round-1 handler, once the client's commitment (which binds the digest, R1 and
    its proof) has arrived, and every other secret (the mask ρ, the Paillier nonces, Π_c3's
    masks) in the round-3 handler, where it is used at once. A custodian runs each step inside
    ``protocols.randomness.derived`` over the transcript so far, so a replay reproduces the same
    reply and another peer input gives fresh values. A precomputation (fresh randomness, from
    ``precomputations``, a source called only in round 3) makes the whole round-3 step fresh:
    never a derived mask beside a fresh one inside one proof. The source and what it hands out
    are never part of the parked state.
    """

    protocol = PROTOCOL
    _transient = ("precomputations",)

    def __init__(
        self,
        session_id: bytes,
        share: P2KeyShare,
        digest: bytes,
        *,
        precomputed: C3Precomputation | None = None,
        precomputations: PrecomputationSource | None = None,
    ) -> None:
        require_instance(share, P2KeyShare, "SignP2 takes the custodian's share")
        if precomputed is not None:
            require_instance(precomputed, C3Precomputation, "SignP2's precomputed")
        if share.paillier is None or share.c_key is None:
            raise UsageError("a backup share cannot sign; reshare it into a signing share first")
        if precomputed is not None and precomputed.n != share.paillier.n:
            raise UsageError("the precomputation was made for another Paillier key")
        super().__init__(session_id, CUSTODIAN)
        self._share = share
        self._m = digest_to_int(digest)  # validates the digest first (UsageError)
        self._digest = bytes(digest)
        self.precomputations: PrecomputationSource | None = precomputations
        if precomputed is not None:
            self.precomputations = _OneShot(precomputed)

    def _resume(self, context: Mapping[str, Any]) -> None:
        self.precomputations = None  # never parked: the resumer may attach a source again

    def _begin(self) -> list[Message]:
        self._expect(1)
        return []

    def _decode_round1(self, msg: Message) -> bytes:
        require_keys(msg.payload, ("digest", "Q1", "commitment", "level"))
        if get_bytes(msg.payload, "digest", 32) != self._digest:
            raise InvalidMessage("the client asks to sign a different digest")
        if msg.payload["level"] != self._share.level.name:
            raise InvalidMessage(f"the client's share is of security level {msg.payload['level']!s:.8}, "
                                 f"this custodian's of {self._share.level.name}")
        # A stale or foreign pair is refused here, before any nonce is used (and before a
        # failed signature could lock the client's share).
        if get_point(msg.payload, "Q1", GROUP) != self._share.q1:
            raise ShareMismatch("the client's share does not belong to this custodian share")
        return get_bytes(msg.payload, "commitment", COMMITMENT_LENGTH)

    def _on_round1(self, inputs: dict[int, Any]) -> list[Message]:
        self._commitment = inputs[CLIENT]
        self._k2 = SecretScalar.random(GROUP)  # only now: the client is bound to R1 (rollback rule)
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
        transcript = self._transcript("c3", 4, CUSTODIAN, self._digest)
        precomputed = self._take_precomputation()
        # All of this step's randomness from one source: the precomputation's is fresh, so the
        # rest is too (a derived mask beside a fresh one would differ between a run and its
        # replay only in part, and z − z' = (e − e')·w1 would give k2⁻¹ away).
        with randomness.fresh() if precomputed is not None else nullcontext():
            payload = prove_c3(self._share, self._k2, self._m, self._r, transcript, precomputed)
        self._expect(5)
        return [self._message(4, payload, CLIENT)]

    def _take_precomputation(self) -> C3Precomputation | None:
        """One precomputation for this share from the source, or None (then all is drawn here)."""
        source, self.precomputations = self.precomputations, None  # single use
        item = source() if source is not None else None
        pk = self._share.paillier
        return item if isinstance(item, C3Precomputation) and pk is not None and item.n == pk.n else None

    def _decode_round5(self, msg: Message) -> Signature:
        return decode_signature(msg.payload)

    def _on_round5(self, inputs: dict[int, Any]) -> list[Message]:
        check_client_signature(self._share.public_point, self._digest, self._r, inputs[CLIENT])
        self._finish(inputs[CLIENT])
        return []


@dataclass(frozen=True, repr=False)
class C3Precomputation:
    """The custodian's single-use precomputation for one c3 and its proof, made ahead for one
    share (P1's Paillier key and ring-Pedersen parameters): the two Paillier nonces with their
    N-th powers, the t-halves of Π_c3's six ring-Pedersen commitments, Π_c3's masks α_i with
    their commitments A_i = s^α_i·t^γ_i, and the signing mask ρ with its commitment
    W3 = s^ρ·t^μ3 (everything in round 4 that depends on neither the digest, nor R1, nor k2; the
    Paillier nonces stay uniform units, see ``protocols.zk.c3``).

    It holds no k2 (drawn online), but the signing mask ρ and Π_c3's masks α_i are in it, and
    either beside the one proof made with it gives w_i = (z_i − α_i)/e, so k2 and x2; one
    Paillier nonce in two c3s would let a client with a smooth p − 1 solve for the difference of
    the two k2⁻¹·r and then for the key, and shared commitment masks would reveal s^w. So it has
    no serialisation at all and is never stored nor parked: the custodian keeps its pool in
    process memory and pops each one at the moment of use (``mpc.presign``; a database restore
    cannot bring one back). Its randomness is fresh, so the round-3 step that uses it draws the
    rest fresh too (``SignP2``).
    """

    c3_nonce: c3_proof.C3Randomness
    proof_nonce: c3_proof.C3Randomness
    pedersen: c3_proof.PedersenMasks | None = None

    def __post_init__(self) -> None:
        if self.c3_nonce.modulus != self.proof_nonce.modulus:
            raise UsageError("both nonces must be for one Paillier key")

    @property
    def n(self) -> int:
        """P1's Paillier modulus N, which both nonces belong to."""
        return self.c3_nonce.modulus

    @classmethod
    def fresh(cls, pk: paillier.PaillierPublicKey, client_params: RingPedersenParams | None = None) -> C3Precomputation:
        """Fresh nonces for ``pk`` (and Π_c3's commitment masks, α, the signing mask and their
        commitments for ``client_params``, if given)."""
        pedersen = c3_proof.PedersenMasks.fresh(client_params, ahead=True) if client_params is not None else None
        return cls(c3_proof.C3Randomness.fresh(pk), c3_proof.C3Randomness.fresh(pk), pedersen)

    @classmethod
    def for_share(cls, share: P2KeyShare) -> C3Precomputation:
        """A precomputation for this signing share (its Paillier key and P1's parameters)."""
        if share.paillier is None or share.client_params is None:
            raise UsageError("a backup share cannot sign")
        return cls.fresh(share.paillier, share.client_params)

    def __repr__(self) -> str:
        return "C3Precomputation(<secret>)"


def _draw_mask() -> int:
    """The mask ρ, uniform below 2^MASK_BITS (``protocols.randomness``)."""
    return bigint.random_bits(MASK_BITS)


def prove_c3(
    share: P2KeyShare,
    k2: SecretScalar,
    m: int,
    r: int,
    transcript: Transcript,
    precomputed: C3Precomputation | None = None,
) -> dict[str, Any]:
    """P2's homomorphic step (Lindell 2017, signing step 4, in cb-mpc's form) and Π_c3.

    c3 = (r·w1) ⊙ c_key' ⊕ Enc(w1·m + w2·r + ρ·q) with w1 = k2⁻¹, w2 = k2⁻¹·x2 (mod q) and a
    fresh mask ρ < 2^MASK_BITS (the precomputation's, if it holds one); returns the round-4
    payload {"c3", "proof"}.
    """
    pk, r2 = share.paillier, k2.public_point()
    if pk is None or share.c_key is None or share.client_params is None:
        raise UsageError("a backup share cannot sign; reshare it into a signing share first")
    w1 = pow(k2.value, -1, Q)
    pedersen = precomputed.pedersen if precomputed is not None and precomputed.pedersen is not None \
        and precomputed.pedersen.n_hat == share.client_params.n_hat else None
    ahead = pedersen.ahead if pedersen is not None else None
    witness = (w1, w1 * share.x2.value % Q, ahead.w3 if ahead is not None else _draw_mask())
    nonces = precomputed or C3Precomputation.fresh(pk)
    c3 = c3_proof.form_c3(pk, share.c_key, r, m, witness, nonces.c3_nonce)
    statement = c3_proof.C3Statement(pk, share.client_params, share.c_key, c3, r, m, r2, share.x2.public_point())
    proof = c3_proof.prove(statement, witness, nonces.c3_nonce, transcript, mask_randomness=nonces.proof_nonce,
                           pedersen=pedersen)
    return {"c3": paillier.encode_ciphertext(c3), "proof": proof.to_payload()}


def receive_c3(
    share: P1KeyShare, digest: bytes, r: int, r2: Point, payload: Any, transcript: Transcript
) -> int:
    """P1: strictly decode c3 and Π_c3 and verify the proof (by CRT); returns c3, still encrypted."""
    require_keys(payload, ("c3", "proof"))
    sk, params = share.paillier, share.client_params
    if sk is None or share.c_key is None or params is None:
        raise UsageError("a backup share cannot sign; reshare it into a signing share first")
    trapdoor = share.ring_pedersen if isinstance(share.ring_pedersen, RingPedersenSecret) else None
    c3 = paillier.decode_ciphertext(payload, "c3", sk.public_key)
    statement = c3_proof.C3Statement(
        sk.public_key, params, share.c_key, c3, r, digest_to_int(digest), r2, share.q2
    )
    proof = c3_proof.C3Proof.from_payload(payload["proof"], statement)
    c3_proof.verify(statement, proof, transcript, paillier_secret=sk, ring_pedersen_secret=trapdoor)
    return c3


def finish_signature(share: P1KeyShare, k1: int, r_point: Point, digest: bytes, c3: int) -> Signature:
    """P1, after Π_c3 verified: decrypt, unblind, normalise and verify; lock the share on failure.

    A failure here cannot come from a c3 the proof accepted (the plaintext is then
    k2⁻¹·(m + r·x) plus a multiple of q, below N/2); it means a bug or a broken assumption, so
    the share locks for good (defence in depth, CVE-2023-33242).
    """
    s_prime = paillier.decrypt_signed(share.paillier, c3)  # type: ignore[arg-type]
    s = pow(k1, -1, Q) * s_prime % Q
    if s != 0:
        signature = Signature.from_nonce_point(r_point, s)
        if verify_signature(share.public_point, digest, signature):
            return signature
    share.lock()
    raise KeyLocked("the computed signature did not verify although the custodian's proof held: "
                    "the key share is now locked")


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
    nonce_point = verified_nonce_point(public_point, digest, signature) if signature.r == r else None
    if nonce_point is None:
        raise ProtocolAbort("the client's signature does not verify", CLIENT)
    # (r, s) verifying says nothing about recid: a wrong one would make every recovering
    # verifier (Ethereum's ecrecover) derive another address. The recid recovers the public key
    # exactly when it names the verified R' (SEC1 4.1.6: x = r or r + q, y's parity).
    x, y = nonce_point
    if signature.recid != (y & 1) | (2 if x >= Q else 0):
        raise ProtocolAbort("the client's recovery id does not recover the public key", CLIENT)


# Parkable state (``protocols.state``).
# Not SignP1: it holds the client's nonce k1 and runs on the device, which never stores a
# single-use secret (docs/threat-model.md, rollback).
# Not C3Precomputation: precomputations live in the custodian's memory only (``mpc.presign``).
register_attrs(SignP2)
register_dataclass(_Opening)

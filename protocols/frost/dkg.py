"""Pedersen DKG with proofs of knowledge (Komlo–Goldberg, ePrint 2020/852, Figure 1).

Message flow::

    Round 1  i -> all   C_i = [a_i0·B, …, a_i(t-1)·B] (exactly t points) and σ_i = (R_i, μ_i), a
                        Schnorr proof of knowledge of a_i0              {"commitment": [...], "proof": R‖μ}
    Round 2  i -> j     f_i(j) and i's view hash of round 1              {"share": …, "view": …}
    Round 3  j -> all   confirmation hash of (view, PK, verifying shares) {"confirmation": …}
    Output   KeyShare: s_j = Σ_i f_i(j); Y_k = Σ_i Σ_m k^m·C_im; PK = Σ_i C_i0.

The proof's challenge is ZcashFoundation/frost's (``keys/dkg.rs``):
c = HDKG(SerializeScalar(i) ‖ a_i0·B ‖ R_i), with μ_i = k + a_i0·c and R_i = k·B; verification
R_i == μ_i·B − c·C_i0. Our sessions append a 32-byte context (a hash of protocol, session id,
threshold and party ids) to that preimage, so a proof cannot be replayed into another session
or another party set; with an empty context the challenge is ZF's exactly, which the tests use
with ``vectors_dkg.json``. The proof stops a rogue-key attack (choosing C_i0 as a function of
the others' so as to control PK). The rounds themselves are ``dealing.DealingSession``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from curves import Point, SecretScalar
from protocols.encoding import get_bytes, require_keys
from protocols.errors import InvalidMessage, ProofError, UsageError
from protocols.frost.ciphersuite import FROST_ED25519_SHA512 as SUITE
from protocols.frost.keys import check_identifiers
from protocols.frost.dealing import (
    Dealing,
    DealingSession,
    PublicOutcome,
    decode_commitment,
    evaluate_commitment,
    sum_commitments,
)
from protocols.rounds import Message
from protocols.sharing import random_polynomial
from protocols.state import register_attrs, register_dataclass

__all__ = ["ProofOfKnowledge", "prove_knowledge", "verify_knowledge", "DKGSession"]


@dataclass(frozen=True)
class ProofOfKnowledge:
    """σ = (R, μ), serialised as R ‖ μ (64 bytes)."""

    commitment: Point
    response: int

    def to_bytes(self) -> bytes:
        """σ_i = R_i ‖ μ_i (Komlo–Goldberg Fig. 1): SerializeElement(R) ‖ SerializeScalar(μ), 64 bytes."""
        return SUITE.serialize_element(self.commitment) + SUITE.serialize_scalar(self.response)

    @classmethod
    def from_bytes(cls, data: bytes) -> ProofOfKnowledge:
        """Strict decoding (raises ``curves.InvalidEncoding``)."""
        if len(data) != 64:
            raise UsageError("a proof of knowledge is 64 bytes")
        return cls(SUITE.deserialize_element(data[:32]), SUITE.deserialize_scalar(data[32:]))


def _challenge(identifier: int, public: Point, commitment: Point, context: bytes) -> int:
    preimage = SUITE.serialize_identifier(identifier) + public.to_bytes() + commitment.to_bytes()
    return SUITE.HDKG(preimage + context)


def prove_knowledge(identifier: int, secret: SecretScalar, context: bytes = b"") -> ProofOfKnowledge:
    """Prove knowledge of a_i0 for C_i0 = a_i0·B, bound to ``identifier`` (and ``context``)."""
    k = SUITE.group.random_scalar()
    commitment = SUITE.group.base_mul(k)
    c = _challenge(identifier, secret.public_point(), commitment, context)
    return ProofOfKnowledge(commitment, (k + secret.value * c) % SUITE.order)


def verify_knowledge(identifier: int, public: Point, proof: ProofOfKnowledge, context: bytes = b"") -> None:
    """Raise ``ProofError`` unless R == μ·B − c·C_i0."""
    c = _challenge(identifier, public, proof.commitment, context)
    if SUITE.group.base_mul(proof.response) != proof.commitment + public * c:
        raise ProofError("proof of knowledge does not verify")


class DKGSession(DealingSession):
    """One party's side of a t-of-n DKG; ``result()`` is its KeyShare."""

    protocol = "frost/dkg"

    def __init__(self, session_id: bytes, party_id: int, parties: Iterable[int], threshold: int) -> None:
        parties = check_identifiers(parties)
        super().__init__(session_id, party_id, parties, parties, threshold)
        params = [self.protocol.encode(), session_id, threshold.to_bytes(4, "big")]
        params += [p.to_bytes(4, "big") for p in self.parties]
        self._proof_context = hashlib.sha256(b"".join(params)).digest()

    def _context(self) -> bytes:
        return self._proof_context

    def _polynomial(self) -> list[int]:
        return random_polynomial(SUITE.group, SUITE.group.random_scalar(), self.threshold - 1)

    def _round1_extras(self, commitment: Sequence[Point]) -> dict[str, Any]:
        secret = SecretScalar(SUITE.group, self._coefficients[0])
        return {"proof": prove_knowledge(self.party_id, secret, self._proof_context).to_bytes().hex()}

    def _decode_dealing(self, msg: Message) -> Dealing:
        require_keys(msg.payload, ("commitment", "proof"))
        commitment = decode_commitment(msg, self.threshold)
        try:
            proof = ProofOfKnowledge.from_bytes(get_bytes(msg.payload, "proof", 64))
        except Exception:
            raise InvalidMessage("proof: not a canonical R ‖ μ") from None
        verify_knowledge(msg.sender, commitment[0], proof, self._proof_context)
        return Dealing(commitment, b"".join(c.to_bytes() for c in commitment) + proof.to_bytes())

    def _public_outcome(self, dealings: Mapping[int, Dealing]) -> PublicOutcome:
        total = sum_commitments(d.commitment for d in dealings.values())
        return PublicOutcome(total[0], evaluate_commitment(total, self.receivers))

    def _signing_share(self, shares: Mapping[int, int]) -> int:
        return sum(shares.values()) % SUITE.order


# Parkable state (``protocols.state``).
register_attrs(DKGSession)
register_dataclass(ProofOfKnowledge)

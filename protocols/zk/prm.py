"""Π_prm: the ring-Pedersen parameters (N̂, s, t) are well formed, i.e. s ∈ ⟨t⟩ mod N̂.

CGGMP, ePrint 2021/060: revision 2024-10-21 §5.3, Fig. 13 (older revisions §6.4, Fig. 17).

Statement: (N̂, s, t).  Witness: λ with s = t^λ mod N̂ (and φ(N̂) to reduce exponents).
Proof, for i = 1..m: a_i ← Z_φ(N̂), A_i = t^a_i mod N̂; binary challenges e_i from the
transcript over (N̂, s, t, A_1..A_m); z_i = a_i + e_i·λ mod φ(N̂).
Verification: each A_i ∈ Z*_N̂, 0 ≤ z_i < N̂, and t^z_i = A_i·s^e_i mod N̂.
Soundness: m = ``M_ITERATIONS`` = 80 binary challenges give error 2^-80 (TSSHOCK c-split and
c-guess: one big challenge or few iterations are not sound here, the order of t is unknown).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from protocols import bigint
from protocols.encoding import get_list, get_nat, require_keys
from protocols.errors import InvalidMessage, ProofError
from protocols.ring_pedersen import RingPedersenParams, RingPedersenSecret
from protocols.transcript import Transcript
from protocols.zk.fields import encode_nats, get_units, require_units
from protocols.zk.params import M_ITERATIONS
from protocols.state import register_dataclass

__all__ = ["PrmProof", "prove", "verify", "M_ITERATIONS"]

_LABEL = "zk/prm/v1"


@dataclass(frozen=True)
class PrmProof:
    """A Π_prm proof (CGGMP rev. 2024-10-21 §5.3, Fig. 13): commitments A_i and responses z_i."""

    commitments: tuple[int, ...]  # A_i = t^a_i mod N̂
    responses: tuple[int, ...]  # z_i = a_i + e_i·λ mod φ(N̂)

    def to_payload(self) -> dict[str, list[str]]:
        """``{"A": [m hex], "z": [m hex]}``, minimal lowercase hex."""
        return {"A": encode_nats(self.commitments), "z": encode_nats(self.responses)}

    @classmethod
    def from_payload(cls, payload: Mapping[str, Any], params: RingPedersenParams,
                     iterations: int = M_ITERATIONS) -> PrmProof:
        """Strict decoding: exactly m units A_i and m responses z_i < N̂ (raises ``InvalidMessage``)."""
        require_keys(payload, ("A", "z"))
        n_hat = params.n_hat
        commitments = get_units(payload, "A", n_hat, iterations)
        items = get_list(payload, "z", iterations)
        responses = tuple(get_nat({"z": item}, "z", n_hat.bit_length()) for item in items)
        if any(z >= n_hat for z in responses):
            raise InvalidMessage("z must be below N̂")
        return cls(commitments, responses)


def _challenges(params: RingPedersenParams, commitments: tuple[int, ...], transcript: Transcript) -> list[int]:
    t = transcript.copy()
    t.append_bytes("proof", _LABEL.encode())
    t.append_int("N_hat", params.n_hat)
    t.append_int("s", params.s)
    t.append_int("t", params.t)
    t.append_ints("A", commitments)
    iterations = len(commitments)
    t.append_int("m", iterations)
    raw = int.from_bytes(t.challenge_bytes("e", (iterations + 7) // 8), "big")
    return [(raw >> i) & 1 for i in range(iterations)]


def prove(params: RingPedersenParams, secret: RingPedersenSecret, transcript: Transcript,
          iterations: int = M_ITERATIONS) -> PrmProof:
    """Prove that s = t^λ mod N̂ for the owner's λ."""
    phi = secret.phi
    nonces = [bigint.random_below(phi) for _ in range(iterations)]
    commitments = tuple(secret.crt.powmod(params.t, a) for a in nonces)
    challenges = _challenges(params, commitments, transcript)
    responses = tuple((a + e * secret.lam) % phi for a, e in zip(nonces, challenges))
    return PrmProof(commitments, responses)


def verify(params: RingPedersenParams, proof: PrmProof, transcript: Transcript, iterations: int = M_ITERATIONS) -> None:
    """Raise ``ProofError`` unless ``proof`` shows s ∈ ⟨t⟩ modulo N̂."""
    n_hat = params.n_hat
    require_units(proof.commitments, n_hat, "prm A", iterations)
    if len(proof.responses) != iterations or any(not 0 <= z < n_hat for z in proof.responses):
        raise ProofError("prm responses malformed")
    challenges = _challenges(params, proof.commitments, transcript)
    for a_i, z_i, e_i in zip(proof.commitments, proof.responses, challenges):
        expected = a_i * params.s % n_hat if e_i else a_i
        if bigint.powmod(params.t, z_i, n_hat) != expected:
            raise ProofError("prm proof does not verify")


# Parkable state (``protocols.state``).
register_dataclass(PrmProof)

"""Π_fac: the prover's modulus N0 = p·q has no small factor, against the verifier's (N̂, s, t).

CGGMP, ePrint 2021/060: revision 2024-10-21 §A.4, Fig. 26 (older revisions §C.5, Fig. 28, as
cited by tss-lib ``crypto/facproof`` and taurus ``pkg/zk/fac``).

Statement: N0 and the verifier's ring-Pedersen parameters (N̂, s, t).  Witness: p, q with
N0 = p·q and p, q ≤ 2^ℓ·√N0 (honest factors of equal size are about √N0).
Proof: α, β ← ±2^(ℓ+ε)·√N0; μ, ν ← ±2^ℓ·N̂; σ ← ±2^ℓ·N0·N̂; r ← ±2^(ℓ+ε)·N0·N̂;
x, y ← ±2^(ℓ+ε)·N̂. P = s^p·t^μ, Q = s^q·t^ν, A = s^α·t^x, B = s^β·t^y, T = Q^α·t^r (mod N̂),
all sent with σ. Challenge e ∈ ±2^``CHALLENGE_BITS`` over everything above. With R = s^N0·t^σ
and σ̂ = σ - ν·p: z1 = α + e·p, z2 = β + e·q, w1 = x + e·μ, w2 = y + e·ν, v = r + e·σ̂.
Verification: P, Q, A, B, T ∈ Z*_N̂; s^z1·t^w1 = A·P^e, s^z2·t^w2 = B·Q^e, Q^z1·t^v = T·R^e
(mod N̂); |z1|, |z2| ≤ 2^(ℓ+ε)·√N0 (a missing range check voids the proof).
Soundness (strong RSA on N̂, verifier-owned): the prover knows p, q with N0 = p·q and
|p|, |q| ≤ 2^(ℓ+ε)·√N0, so both factors exceed √N0 / 2^(ℓ+ε) ≈ 2^256 for |N0| = 2048 and
ℓ + ε = 768: this refuses BitForge's small-factor moduli (CVE-2023-33241). It must be proven
to each verifier separately (Kudelski KS-SBCF-F-02), as it is bound to the verifier's N̂.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from protocols import bigint
from protocols.encoding import encode_int, encode_nat, require_keys
from protocols.errors import ProofError, UsageError
from protocols.ring_pedersen import RingPedersenParams
from protocols.transcript import Transcript
from protocols.zk.fields import get_signed, get_unit, require_paillier_blum_candidate, require_units
from protocols.zk.params import CHALLENGE_BITS, ELL, EPSILON
from protocols.state import register_dataclass

__all__ = ["FacProof", "prove", "verify"]

_LABEL = "zk/fac/v1"
_COMMITMENTS = ("P", "Q", "A", "B", "T")
_RESPONSES = ("sigma", "z1", "z2", "w1", "w2", "v")


@dataclass(frozen=True)
class FacProof:
    """A Π_fac proof (CGGMP rev. 2024-10-21 §A.4, Fig. 26): P, Q, A, B, T, σ and the responses."""

    P: int  # s^p·t^μ
    Q: int  # s^q·t^ν
    A: int  # s^α·t^x
    B: int  # s^β·t^y
    T: int  # Q^α·t^r
    sigma: int  # σ, the randomness of R = s^N0·t^σ
    z1: int
    z2: int
    w1: int
    w2: int
    v: int

    def to_payload(self) -> dict[str, str]:
        """P, Q, A, B, T as minimal hex; sigma, z1, z2, w1, w2, v as signed hex (``-`` prefix)."""
        out = {name: encode_nat(getattr(self, name)) for name in _COMMITMENTS}
        out.update({name: encode_int(getattr(self, name)) for name in _RESPONSES})
        return out

    @classmethod
    def from_payload(cls, payload: Mapping[str, Any], n0: int, params: RingPedersenParams) -> FacProof:
        """Strict decoding: commitments in Z*_N̂, responses of bounded size (``InvalidMessage``)."""
        require_keys(payload, _COMMITMENTS + _RESPONSES)
        commitments = {name: get_unit(payload, name, params.n_hat) for name in _COMMITMENTS}
        bits = _response_bits(n0, params)
        responses = {name: get_signed(payload, name, bits) for name in _RESPONSES}
        return cls(**commitments, **responses)


def _response_bits(n0: int, params: RingPedersenParams) -> int:
    """A bit bound above every honest response (the largest is v ≈ 2^(ℓ+ε)·N0·N̂)."""
    return ELL + EPSILON + CHALLENGE_BITS + n0.bit_length() + params.n_hat.bit_length() + 8


def _z_bound(n0: int) -> int:
    return bigint.isqrt(n0) << (ELL + EPSILON)


def _challenge(n0: int, params: RingPedersenParams, proof_head: tuple[int, ...], transcript: Transcript) -> int:
    t = transcript.copy()
    t.append_bytes("proof", _LABEL.encode())
    t.append_int("N0", n0)
    t.append_ints("ring_pedersen", (params.n_hat, params.s, params.t))
    t.append_ints("P,Q,A,B,T,sigma", proof_head)
    return t.challenge_signed("e", CHALLENGE_BITS)


def prove(n0: int, p: int, q: int, params: RingPedersenParams, transcript: Transcript) -> FacProof:
    """Prove that ``n0`` = p·q has no factor below about √N0 / 2^(ℓ+ε)."""
    if p * q != n0:
        raise UsageError("p·q must equal N0")
    n_hat, t = params.n_hat, params.t
    sqrt_n0 = bigint.isqrt(n0)
    alpha, beta = (bigint.random_signed(sqrt_n0 << (ELL + EPSILON)) for _ in range(2))
    mu, nu = (bigint.random_signed(n_hat << ELL) for _ in range(2))
    sigma = bigint.random_signed((n0 * n_hat) << ELL)
    r = bigint.random_signed((n0 * n_hat) << (ELL + EPSILON))
    x, y = (bigint.random_signed(n_hat << (ELL + EPSILON)) for _ in range(2))
    big_q = params.commit(q, nu)
    head = (
        params.commit(p, mu),
        big_q,
        params.commit(alpha, x),
        params.commit(beta, y),
        bigint.powmod(big_q, alpha, n_hat) * bigint.powmod(t, r, n_hat) % n_hat,
        sigma,
    )
    e = _challenge(n0, params, head, transcript)
    sigma_hat = sigma - nu * p
    return FacProof(*head, alpha + e * p, beta + e * q, x + e * mu, y + e * nu, r + e * sigma_hat)


def verify(n0: int, params: RingPedersenParams, proof: FacProof, transcript: Transcript) -> None:
    """Raise ``ProofError`` unless ``proof`` shows ``n0`` has no small factor."""
    require_paillier_blum_candidate(n0)
    n_hat = params.n_hat
    require_units([getattr(proof, name) for name in _COMMITMENTS], n_hat, "fac commitment", len(_COMMITMENTS))
    bound = _z_bound(n0)
    if abs(proof.z1) > bound or abs(proof.z2) > bound:
        raise ProofError("fac proof: z1 or z2 out of range")
    head = (proof.P, proof.Q, proof.A, proof.B, proof.T, proof.sigma)
    e = _challenge(n0, params, head, transcript)
    big_r = params.commit(n0, proof.sigma)
    checks = (
        (params.commit(proof.z1, proof.w1), proof.A * bigint.powmod(proof.P, e, n_hat)),
        (params.commit(proof.z2, proof.w2), proof.B * bigint.powmod(proof.Q, e, n_hat)),
        (
            bigint.powmod(proof.Q, proof.z1, n_hat) * bigint.powmod(params.t, proof.v, n_hat),
            proof.T * bigint.powmod(big_r, e, n_hat),
        ),
    )
    for left, right in checks:
        if left % n_hat != right % n_hat:
            raise ProofError("fac proof does not verify")


# Parkable state (``protocols.state``).
register_dataclass(FacProof)

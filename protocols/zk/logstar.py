"""Π_log*: a Paillier ciphertext C encrypts the discrete log of X = x·B, with |x| ≤ 2^ℓ.

CGGMP, ePrint 2021/060: older revisions §C.2, Fig. 25 (as cited by taurus ``pkg/zk/logstar``
and tss-lib); the 2024-10-21 revision replaces it with Π_elog (Fig. 23), not used here.

Statement: the prover's Paillier key N0, C ∈ Z*_N0², a group, its base B and X; the verifier's
ring-Pedersen parameters (N̂, s, t).  Witness: x ∈ ±2^ℓ and ρ ∈ Z*_N0 with
C = (1 + N0)^x·ρ^N0 mod N0² and X = x·B.
Proof: α ← ±2^(ℓ+ε), μ ← ±2^ℓ·N̂, r ← Z*_N0, γ ← ±2^(ℓ+ε)·N̂; S = s^x·t^μ, A = Enc(α; r),
Y = α·B, D = s^α·t^γ. Challenge e ∈ ±2^``CHALLENGE_BITS`` over the statement and (S, A, Y, D).
z1 = α + e·x, z2 = r·ρ^e mod N0, z3 = γ + e·μ.
Verification: S, D ∈ Z*_N̂, A a valid ciphertext, z2 ∈ Z*_N0, Y not the identity;
Enc(z1; z2) = A·C^e mod N0², z1·B = Y + e·X, s^z1·t^z3 = D·S^e mod N̂, |z1| ≤ 2^(ℓ+ε)
(taurus ee1a9cd: the range check is what makes this a range proof).
Soundness: the prover knows x with |x| ≤ 2^(ℓ+ε) (not 2^ℓ: the slack is the price of
zero knowledge), error about 2^-256 per proof, under strong RSA on the verifier's N̂.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from curves import Group, Point
from protocols import bigint, paillier
from protocols.encoding import encode_int, encode_nat, get_point, require_keys
from protocols.errors import InvalidMessage, ProofError, UsageError
from protocols.paillier import PaillierPublicKey
from protocols.ring_pedersen import RingPedersenParams
from protocols.transcript import Transcript
from protocols.zk.fields import get_signed, get_unit, is_unit, require_unit
from protocols.zk.params import CHALLENGE_BITS, ELL, EPSILON
from protocols.state import register_dataclass

__all__ = ["LogStarProof", "prove", "verify"]

_LABEL = "zk/logstar/v1"
_Z_BOUND = 1 << (ELL + EPSILON)


@dataclass(frozen=True)
class LogStarProof:
    """A Π_log* proof (CGGMP older revisions §C.2, Fig. 25): S, A, Y, D and the responses z1, z2, z3."""

    S: int  # s^x·t^μ mod N̂
    A: int  # Enc(α; r) under N0
    Y: Point  # α·B
    D: int  # s^α·t^γ mod N̂
    z1: int  # α + e·x
    z2: int  # r·ρ^e mod N0
    z3: int  # γ + e·μ

    def to_payload(self) -> dict[str, str]:
        """S, A, D, z2 as minimal hex; Y as the point encoding; z1, z3 as signed hex."""
        return {
            "S": encode_nat(self.S),
            "A": encode_nat(self.A),
            "Y": self.Y.to_bytes().hex(),
            "D": encode_nat(self.D),
            "z1": encode_int(self.z1),
            "z2": encode_nat(self.z2),
            "z3": encode_int(self.z3),
        }

    @classmethod
    def from_payload(
        cls, payload: Mapping[str, Any], pk: PaillierPublicKey, params: RingPedersenParams, group: Group
    ) -> LogStarProof:
        """Strict decoding against the prover's key, the verifier's parameters and the group."""
        require_keys(payload, ("S", "A", "Y", "D", "z1", "z2", "z3"))
        n_hat = params.n_hat
        z1 = get_signed(payload, "z1", ELL + EPSILON + 1)
        if abs(z1) > _Z_BOUND:
            raise InvalidMessage("z1 out of range")
        return cls(
            S=get_unit(payload, "S", n_hat),
            A=paillier.decode_ciphertext(payload, "A", pk),
            Y=get_point(payload, "Y", group),
            D=get_unit(payload, "D", n_hat),
            z1=z1,
            z2=get_unit(payload, "z2", pk.n),
            z3=get_signed(payload, "z3", ELL + EPSILON + CHALLENGE_BITS + n_hat.bit_length() + 8),
        )


def _challenge(
    pk: PaillierPublicKey,
    params: RingPedersenParams,
    c: int,
    x_point: Point,
    base: Point,
    commitments: tuple[int, int, Point, int],
    transcript: Transcript,
) -> int:
    t = transcript.copy()
    t.append_bytes("proof", _LABEL.encode())
    t.append_int("N0", pk.n)
    t.append_ints("ring_pedersen", (params.n_hat, params.s, params.t))
    t.append_int("C", c)
    t.append_bytes("group", base.group.name.encode())
    t.append_bytes("B", base.to_bytes())
    t.append_bytes("X", x_point.to_bytes())
    S, A, Y, D = commitments
    t.append_ints("S,A,D", (S, A, D))
    t.append_bytes("Y", Y.to_bytes())
    return t.challenge_signed("e", CHALLENGE_BITS)


def prove(
    pk: PaillierPublicKey,
    params: RingPedersenParams,
    c: int,
    x_point: Point,
    x: int,
    rho: int,
    transcript: Transcript,
    base: Point | None = None,
) -> LogStarProof:
    """Prove that ``c`` = Enc(x; rho) under ``pk`` and ``x_point`` = x·B (B = generator by default)."""
    base = base if base is not None else x_point.group.generator()
    if abs(x) > 1 << ELL or not is_unit(rho, pk.n):
        raise UsageError("log* witness out of range")
    n_hat = params.n_hat
    alpha = bigint.random_signed(_Z_BOUND)
    mu = bigint.random_signed(n_hat << ELL)
    gamma = bigint.random_signed(n_hat << (ELL + EPSILON))
    a_ct, r = paillier.encrypt(pk, alpha)
    commitments = (params.commit(x, mu), a_ct, base * alpha, params.commit(alpha, gamma))
    e = _challenge(pk, params, c, x_point, base, commitments, transcript)
    z2 = r * bigint.powmod(rho, e, pk.n) % pk.n
    return LogStarProof(*commitments, z1=alpha + e * x, z2=z2, z3=gamma + e * mu)


def verify(
    pk: PaillierPublicKey,
    params: RingPedersenParams,
    c: int,
    x_point: Point,
    proof: LogStarProof,
    transcript: Transcript,
    base: Point | None = None,
) -> None:
    """Raise ``ProofError`` unless ``proof`` shows ``c`` encrypts the discrete log of ``x_point``."""
    base = base if base is not None else x_point.group.generator()
    _check_shapes(pk, params, c, x_point, proof)
    commitments = (proof.S, proof.A, proof.Y, proof.D)
    e = _challenge(pk, params, c, x_point, base, commitments, transcript)
    n2, n_hat = pk.n_squared, params.n_hat
    encrypted, _ = paillier.encrypt(pk, proof.z1, proof.z2)
    if encrypted != proof.A * bigint.powmod(c, e, n2) % n2:
        raise ProofError("log* proof: Enc(z1; z2) != A·C^e")
    if base * proof.z1 != proof.Y + x_point * e:
        raise ProofError("log* proof: z1·B != Y + e·X")
    if params.commit(proof.z1, proof.z3) != proof.D * bigint.powmod(proof.S, e, n_hat) % n_hat:
        raise ProofError("log* proof: s^z1·t^z3 != D·S^e")


def _check_shapes(
    pk: PaillierPublicKey, params: RingPedersenParams, c: int, x_point: Point, proof: LogStarProof
) -> None:
    try:
        paillier.validate_ciphertext(pk, c)
        paillier.validate_ciphertext(pk, proof.A)
    except InvalidMessage as exc:
        raise ProofError(f"log* {exc}") from None
    require_unit(proof.S, params.n_hat, "log* S")
    require_unit(proof.D, params.n_hat, "log* D")
    require_unit(proof.z2, pk.n, "log* z2")
    if not isinstance(proof.Y, Point) or proof.Y.group is not x_point.group or proof.Y.is_identity:
        raise ProofError("log* Y must be a non-identity point of the group")
    if not isinstance(proof.z1, int) or abs(proof.z1) > _Z_BOUND:
        raise ProofError("log* z1 out of range")


# Parkable state (``protocols.state``).
register_dataclass(LogStarProof)

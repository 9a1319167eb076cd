"""Π_mod: N is a Paillier-Blum modulus, N = p·q with p ≡ q ≡ 3 (mod 4) and gcd(N, φ(N)) = 1.

CGGMP, ePrint 2021/060: revision 2024-10-21 Fig. 12 (older revisions Fig. 16, as cited by
tss-lib ``crypto/modproof``).

Statement: N.  Witness: the primes p, q.
Proof: w ∈ Z*_N with Jacobi(w | N) = -1; for i = 1..m a challenge y_i ∈ Z*_N squeezed from the
transcript over (N, w) with its own label (taurus PR #111: one challenge reused for every round
is unsound); z_i = y_i^(N^-1 mod φ(N)) mod N; a_i, b_i ∈ {0, 1} and x_i with
x_i^4 = (-1)^a_i·w^b_i·y_i mod N (exactly one (a_i, b_i) makes that value a fourth power).
Verification: N of accepted size, odd and not prime; w ∈ Z*_N (tss-lib PR #323) with
Jacobi(w | N) = -1; every x_i, z_i ∈ [1, N); z_i^N = y_i and x_i^4 = (-1)^a_i·w^b_i·y_i mod N.
Soundness: m = ``M_ITERATIONS`` = 80 iterations, error 2^-80. z_i^N = y_i for random y_i shows
gcd(N, φ(N)) = 1 (square-free); the fourth roots show N has two prime factors ≡ 3 (mod 4)
(no w with Jacobi -1 exists for N = p², and for three or more primes half the y_i have no root).
Small prime factors are *not* excluded: that is Π_fac's job.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from protocols import bigint
from protocols.encoding import encode_nat, get_list, require_keys
from protocols.errors import InvalidMessage, ProofError, UsageError
from protocols.transcript import Transcript
from protocols.zk.fields import encode_nats, get_unit, get_units, require_paillier_blum_candidate, require_unit, require_units
from protocols.zk.params import M_ITERATIONS
from protocols.state import register_dataclass

__all__ = ["ModProof", "prove", "verify", "M_ITERATIONS"]

_LABEL = "zk/mod/v1"
_MAX_BITS = 4096


@dataclass(frozen=True)
class ModProof:
    """A Π_mod proof (CGGMP rev. 2024-10-21 Fig. 12): w and, per iteration, x_i, a_i, b_i, z_i."""

    w: int  # Jacobi(w | N) = -1
    x: tuple[int, ...]  # fourth roots of (-1)^a_i·w^b_i·y_i
    a: tuple[int, ...]  # bits
    b: tuple[int, ...]  # bits
    z: tuple[int, ...]  # N-th roots of y_i

    def to_payload(self) -> dict[str, Any]:
        """``{"w": hex, "x": [m hex], "a": [m ints 0/1], "b": [m ints 0/1], "z": [m hex]}``."""
        return {
            "w": encode_nat(self.w),
            "x": encode_nats(self.x),
            "a": list(self.a),
            "b": list(self.b),
            "z": encode_nats(self.z),
        }

    @classmethod
    def from_payload(cls, payload: Mapping[str, Any], n: int, iterations: int = M_ITERATIONS) -> ModProof:
        """Strict decoding against the claimed modulus ``n``, exactly ``iterations`` entries
        (the security level's m; raises ``InvalidMessage``)."""
        require_keys(payload, ("w", "x", "a", "b", "z"))
        if not isinstance(n, int) or n.bit_length() > _MAX_BITS or n < 3:
            raise InvalidMessage("modulus out of range")
        return cls(
            get_unit(payload, "w", n),
            get_units(payload, "x", n, iterations),
            _get_bits(payload, "a", iterations),
            _get_bits(payload, "b", iterations),
            get_units(payload, "z", n, iterations),
        )


def _get_bits(payload: Mapping[str, Any], key: str, iterations: int) -> tuple[int, ...]:
    items = get_list(payload, key, iterations)
    if any(type(item) is not int or item not in (0, 1) for item in items):
        raise InvalidMessage(f"{key} must be a list of 0/1 integers")
    return tuple(items)


def _challenges(n: int, w: int, transcript: Transcript, iterations: int) -> list[int]:
    t = transcript.copy()
    t.append_bytes("proof", _LABEL.encode())
    t.append_int("N", n)
    t.append_int("w", w)
    t.append_int("m", iterations)
    return [t.challenge_int(f"y/{i}", n) for i in range(iterations)]


def _sign_twist(n: int, w: int, y: int, a: int, b: int) -> int:
    """(-1)^a·w^b·y mod N."""
    value = y * w % n if b else y
    return (n - value) % n if a else value


def _fourth_root(n: int, p: int, q: int, crt: bigint.CrtModulus, w: int, y: int) -> tuple[int, int, int]:
    """(x, a, b) with x^4 = (-1)^a·w^b·y mod N: for a Blum prime p and a square u mod p,
    u^(((p+1)/4)^2) is a fourth root (u^((p+1)/4) is the square root that is itself a square)."""
    for a in (0, 1):
        for b in (0, 1):
            u = _sign_twist(n, w, y, a, b)
            if bigint.jacobi(u, p) == 1 and bigint.jacobi(u, q) == 1:
                x_p = bigint.powmod(u, ((p + 1) // 4) ** 2 % (p - 1), p)
                x_q = bigint.powmod(u, ((q + 1) // 4) ** 2 % (q - 1), q)
                return crt.combine(x_p, x_q), a, b
    raise UsageError("N is not a Paillier-Blum modulus")


def prove(n: int, p: int, q: int, transcript: Transcript, iterations: int = M_ITERATIONS) -> ModProof:
    """Prove that ``n`` = p·q is a Paillier-Blum modulus (raises ``UsageError`` if it is not)."""
    if p * q != n or p == q or p % 4 != 3 or q % 4 != 3:
        raise UsageError("p, q must be distinct Blum primes with N = p·q")
    crt = bigint.CrtModulus(p, q, p - 1, q - 1)
    n_inverse = bigint.invert(n, (p - 1) * (q - 1))
    w = bigint.random_unit(n)
    while bigint.jacobi(w, n) != -1:
        w = bigint.random_unit(n)
    xs, as_, bs, zs = [], [], [], []
    for y in _challenges(n, w, transcript, iterations):
        if bigint.gcd(y, n) != 1:
            raise UsageError("challenge shares a factor with N")
        x, a, b = _fourth_root(n, p, q, crt, w, y)
        xs.append(x)
        as_.append(a)
        bs.append(b)
        zs.append(crt.powmod(y, n_inverse))
    return ModProof(w, tuple(xs), tuple(as_), tuple(bs), tuple(zs))


def verify(n: int, proof: ModProof, transcript: Transcript, iterations: int = M_ITERATIONS) -> None:
    """Raise ``ProofError`` unless ``proof`` shows ``n`` is a Paillier-Blum modulus, with exactly
    ``iterations`` repetitions (never fewer: TSSHOCK c-guess)."""
    require_paillier_blum_candidate(n)
    require_unit(proof.w, n, "mod w")
    if bigint.jacobi(proof.w, n) != -1:
        raise ProofError("mod w must have Jacobi symbol -1")
    require_units(proof.x, n, "mod x", iterations)
    require_units(proof.z, n, "mod z", iterations)
    if any(len(bits) != iterations or set(bits) - {0, 1} for bits in (proof.a, proof.b)):
        raise ProofError("mod a, b must be m bits")
    for i, y in enumerate(_challenges(n, proof.w, transcript, iterations)):
        if bigint.gcd(y, n) != 1:
            raise ProofError("mod challenge shares a factor with N")
        if bigint.powmod(proof.z[i], n, n) != y:
            raise ProofError("mod proof: z_i^N != y_i")
        if bigint.powmod(proof.x[i], 4, n) != _sign_twist(n, proof.w, y, proof.a[i], proof.b[i]):
            raise ProofError("mod proof: x_i^4 != (-1)^a w^b y_i")


# Parkable state (``protocols.state``).
register_dataclass(ModProof)

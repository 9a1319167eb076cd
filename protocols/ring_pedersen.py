"""Ring-Pedersen parameters (N̂, s, t): the verifier's long-lived setup for the CGGMP proofs.

CGGMP (ePrint 2021/060), revision 2024-10-21 §5.3 (Π_prm, Fig. 13; older revisions §6.4,
Fig. 17): N̂ = p·q is a product of two safe primes, t = r² mod N̂ for a random unit r (so t
generates the quadratic residues with overwhelming probability), λ ∈ Z_φ(N̂) and s = t^λ mod N̂.
A commitment to an integer x with randomness μ is s^x·t^μ mod N̂, binding under the strong RSA
assumption as long as the committer does not know the factorisation of N̂, hence: the **verifier**
of Π_fac and Π_log* owns these parameters (CGGMP, ePrint 2021/060; ZenGo's prover-made N̂ is the
pitfall). The owner proves s ∈ ⟨t⟩ with Π_prm (``protocols.zk.prm``).

Validation of parameters received from a peer: N̂ odd with ``MIN_MODULUS_BITS`` ≤ |N̂| ≤
``MAX_MODULUS_BITS``, with no prime factor below ``primes.SIEVE_LIMIT`` (a product of two safe
primes never has one; TSSHOCK's malicious N̂ with a small factor is refused before any proof is
computed against it, one gcd with the primorial); s and t in Z*_N̂ and none of 0, 1, -1
(TSSHOCK's degenerate parameters).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from protocols import bigint, primes
from protocols.encoding import encode_nat, get_nat, require_keys
from protocols.errors import InvalidMessage, UsageError
from protocols.paillier import MAX_MODULUS_BITS, MIN_MODULUS_BITS, check_modulus_size
from protocols.state import register_dataclass

__all__ = ["RingPedersenParams", "RingPedersenSecret", "generate_ring_pedersen", "ring_pedersen_from_primes"]

_SECRET_VERSION = 1


@lru_cache(maxsize=1)
def _small_primorial() -> int:
    """The product of the odd primes below ``primes.SIEVE_LIMIT`` (N̂ is odd by then)."""
    return math.prod(primes.small_primes())


@dataclass(frozen=True)
class RingPedersenParams:
    """The public ring-Pedersen parameters (N̂, s, t); construction validates them."""

    n_hat: int
    s: int
    t: int

    def __post_init__(self) -> None:
        check_modulus_size(self.n_hat, "ring-Pedersen modulus")
        if bigint.gcd(self.n_hat, _small_primorial()) != 1:
            raise InvalidMessage("ring-Pedersen modulus has a small prime factor")
        for name in ("s", "t"):
            value = getattr(self, name)
            if not isinstance(value, int) or not 1 < value < self.n_hat - 1:
                raise InvalidMessage(f"ring-Pedersen {name} must be in Z_N̂ and not 0, 1 or -1")
            if bigint.gcd(value, self.n_hat) != 1:
                raise InvalidMessage(f"ring-Pedersen {name} must be a unit modulo N̂")
        if self.s == self.t:
            raise InvalidMessage("ring-Pedersen s and t must differ")

    def commit(self, x: int, mu: int) -> int:
        """s^x·t^μ mod N̂ for integers x and μ of any sign."""
        n_hat = self.n_hat
        return bigint.powmod(self.s, x, n_hat) * bigint.powmod(self.t, mu, n_hat) % n_hat

    def to_payload(self) -> dict[str, str]:
        """``{"n": N̂, "s": s, "t": t}``, each minimal lowercase hex."""
        return {"n": encode_nat(self.n_hat), "s": encode_nat(self.s), "t": encode_nat(self.t)}

    @classmethod
    def from_payload(cls, payload: Mapping[str, Any]) -> RingPedersenParams:
        """Strict decoding and validation (raises ``InvalidMessage``)."""
        require_keys(payload, ("n", "s", "t"))
        n_hat = get_nat(payload, "n", MAX_MODULUS_BITS)
        return cls(n_hat, get_nat(payload, "s", MAX_MODULUS_BITS), get_nat(payload, "t", MAX_MODULUS_BITS))


@dataclass(frozen=True, repr=False, eq=False)
class RingPedersenSecret:
    """The owner's trapdoor: safe primes p, q of N̂ and λ with s = t^λ. ``repr`` shows nothing."""

    p: int
    q: int
    lam: int
    params: RingPedersenParams
    crt: bigint.CrtModulus = field(init=False)

    def __post_init__(self) -> None:
        if self.p * self.q != self.params.n_hat or self.p == self.q:
            raise UsageError("ring-Pedersen secret does not match the parameters")
        object.__setattr__(self, "crt", bigint.CrtModulus(self.p, self.q, self.p - 1, self.q - 1))

    def __repr__(self) -> str:
        return f"RingPedersenSecret(<secret>, {self.params.n_hat.bit_length()}-bit modulus)"

    @property
    def phi(self) -> int:
        """φ(N̂) = (p - 1)(q - 1) = 4·p'·q'."""
        return (self.p - 1) * (self.q - 1)

    def to_bytes(self) -> bytes:
        """Version byte, then p, q, λ, s, t as length-prefixed big-endian integers."""
        return bigint.pack_nats(_SECRET_VERSION, [self.p, self.q, self.lam, self.params.s, self.params.t])

    @classmethod
    def from_bytes(cls, data: bytes) -> RingPedersenSecret:
        """Strict decoding of :meth:`to_bytes` (raises ``InvalidMessage``)."""
        p, q, lam, s, t = bigint.unpack_nats(data, _SECRET_VERSION, 5, "ring-Pedersen secret")
        params = RingPedersenParams(p * q, s, t)
        if bigint.powmod(t, lam, params.n_hat) != s:
            raise InvalidMessage("ring-Pedersen secret: s is not t^λ")
        return cls(p, q, lam, params)


def ring_pedersen_from_primes(p: int, q: int) -> tuple[RingPedersenParams, RingPedersenSecret]:
    """Fresh (s, t, λ) over N̂ = p·q for safe primes p ≠ q (checked by the caller)."""
    if p == q or p % 4 != 3 or q % 4 != 3:
        raise UsageError("ring-Pedersen primes must be distinct safe primes")
    n_hat = p * q
    crt = bigint.CrtModulus(p, q, p - 1, q - 1)
    phi = (p - 1) * (q - 1)
    while True:
        t = crt.powmod(bigint.random_unit(n_hat), 2)
        lam = bigint.random_below(phi)
        s = crt.powmod(t, lam)
        try:
            params = RingPedersenParams(n_hat, s, t)
        except InvalidMessage:  # s or t degenerate: negligible, draw again
            continue
        return params, RingPedersenSecret(p, q, lam, params)


def generate_ring_pedersen(
    bits: int = MIN_MODULUS_BITS, progress: Callable[[str], None] | None = None
) -> tuple[RingPedersenParams, RingPedersenSecret]:
    """Generate parameters over two fresh ``bits/2``-bit safe primes (slow: off the hot path).

    ``progress`` (optional) is told when each prime is found.
    """
    if bits % 2 or not MIN_MODULUS_BITS <= bits <= MAX_MODULUS_BITS:
        raise UsageError(f"ring-Pedersen modulus size must be even, {MIN_MODULUS_BITS} to {MAX_MODULUS_BITS}")
    report = progress or (lambda note: None)
    p = primes.safe_prime(bits // 2)
    report("first safe prime found")
    q = primes.safe_prime(bits // 2)
    while q == p:
        q = primes.safe_prime(bits // 2)
    report("second safe prime found")
    return ring_pedersen_from_primes(p, q)


# Parkable state (``protocols.state``).
register_dataclass(RingPedersenParams)
register_dataclass(RingPedersenSecret)

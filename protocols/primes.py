"""Prime generation: Blum primes for Paillier keys, safe primes for ring-Pedersen parameters.

- :func:`blum_prime` returns p ≡ 3 (mod 4) of exactly ``bits`` bits with the top two bits set,
  so the product of two of them has exactly ``2·bits`` bits (CGGMP's Paillier-Blum moduli).
- :func:`safe_prime` returns p = 2p' + 1 with p' prime, p of exactly ``bits`` bits, top two bits
  set (CGGMP's ring-Pedersen modulus N̂ = p·q is a product of two safe primes).

Both search a window of candidates after a random start, and sieve the whole window against the
odd primes below ``SIEVE_LIMIT`` with slice assignments before any exponentiation: for safe
primes the sieve strikes every p' where p' or 2p'+1 has a small factor, which removes about 98%
of the candidates that survive sieving p' alone. Survivors get a base-2 Fermat test of p' and of
p (cheap, rejects almost every composite), then the full probable-prime test of both.

Randomness comes only from :mod:`protocols.randomness` (through :mod:`protocols.bigint`).
"""

from __future__ import annotations

from collections.abc import Iterator
from functools import lru_cache

from protocols import bigint
from protocols.errors import UsageError

__all__ = ["SIEVE_LIMIT", "blum_prime", "safe_prime", "small_primes"]

SIEVE_LIMIT = 1 << 16
# Candidates per sieved window; a fresh random start is drawn when a window is exhausted.
_WINDOW = 1 << 14
_MIN_BITS = 16


@lru_cache(maxsize=1)
def small_primes() -> tuple[int, ...]:
    """The odd primes below ``SIEVE_LIMIT`` (Eratosthenes)."""
    flags = bytearray([1]) * SIEVE_LIMIT
    flags[0:2] = b"\x00\x00"
    for i in range(2, int(SIEVE_LIMIT**0.5) + 1):
        if flags[i]:
            flags[i * i :: i] = bytes(len(range(i * i, SIEVE_LIMIT, i)))
    return tuple(i for i in range(3, SIEVE_LIMIT) if flags[i])


def _random_start(bits: int, step: int, residue: int) -> int:
    """A random ``bits``-bit integer with the top two bits set and ≡ residue (mod step)."""
    top = 0b11 << (bits - 2)
    start = top | bigint.random_bits(bits - 2)
    return start - (start % step) + residue


def _strike(sieve: bytearray, start: int, step: int, prime: int, root: int) -> None:
    """Mark every window index j with start + step·j ≡ root (mod prime)."""
    first = ((root - start) * pow(step, -1, prime)) % prime
    if first < len(sieve):
        sieve[first::prime] = bytes(len(range(first, len(sieve), prime)))


def _survivors(start: int, step: int, roots: tuple[int, ...]) -> Iterator[int]:
    """Window candidates start + step·j with no small factor in c - r for each r in ``roots``.

    With roots (0,) a candidate c survives when c has no small factor; with roots (0, (ℓ-1)/2)
    per prime ℓ, also 2c + 1 has none (2c + 1 ≡ 0 ⇔ c ≡ (ℓ-1)/2 mod ℓ).
    """
    sieve = bytearray([1]) * _WINDOW
    for prime in small_primes():
        if prime >= start:
            break
        for root in roots:
            _strike(sieve, start, step, prime, root * ((prime - 1) // 2))
    for j in range(_WINDOW):
        if sieve[j]:
            yield start + step * j


def _check_bits(bits: int) -> None:
    if not isinstance(bits, int) or bits < _MIN_BITS:
        raise UsageError(f"prime size must be at least {_MIN_BITS} bits")


def blum_prime(bits: int) -> int:
    """A uniform-ish random prime p ≡ 3 (mod 4) of exactly ``bits`` bits, top two bits set."""
    _check_bits(bits)
    while True:
        start = _random_start(bits, 4, 3)
        for candidate in _survivors(start, 4, (0,)):
            if candidate.bit_length() != bits:
                break
            if bigint.powmod(2, candidate - 1, candidate) == 1 and bigint.is_probable_prime(candidate):
                return candidate


def safe_prime(bits: int) -> int:
    """A random safe prime p = 2p' + 1 (p' prime) of exactly ``bits`` bits, top two bits set."""
    _check_bits(bits)
    while True:
        # p' odd and ≡ 2 (mod 3) is forced by the sieve; step 2 keeps p' odd.
        start = _random_start(bits - 1, 2, 1)
        for half in _survivors(start, 2, (0, 1)):
            if half.bit_length() != bits - 1:
                break
            if _is_safe_prime_pair(half):
                return 2 * half + 1


def _is_safe_prime_pair(half: int) -> bool:
    """Whether p' = ``half`` and p = 2p' + 1 are both prime; cheap Fermat tests first."""
    p = 2 * half + 1
    if bigint.powmod(2, half - 1, half) != 1 or bigint.powmod(2, p - 1, p) != 1:
        return False
    return bigint.is_probable_prime(half) and bigint.is_probable_prime(p)

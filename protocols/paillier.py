"""Paillier encryption with g = N + 1 over a Paillier-Blum modulus (Paillier 1999; CGGMP 2021).

Keys: N = p·q with p ≡ q ≡ 3 (mod 4), two primes of ``PRIME_BITS`` bits whose top two bits are
set, so N has exactly ``2·PRIME_BITS`` bits. Encryption of m ∈ Z_N with nonce r ∈ Z*_N:

    Enc(m; r) = (1 + N)^m · r^N = (1 + m·N) · r^N  (mod N²)

Decryption uses the Chinese remainder theorem over p² and q²: m_p = L_p(c^(p-1) mod p²)·h_p
mod p with L_p(u) = (u - 1)/p and h_p = (-q)^(-1) mod p (since L_p((1+N)^(p-1)) = -q mod p),
likewise for q, then m = CRT(m_p, m_q).

Homomorphic operations: ``add`` (Enc(a)·Enc(b) = Enc(a + b)), ``add_plain`` and ``mul``
(Enc(a)^k = Enc(k·a), negative k through the inverse).

Policy (docs/threat-model.md: BitForge, Alpha-Rays, "Parameters"): a modulus is accepted only with
``MIN_MODULUS_BITS`` ≤ |N| ≤ ``MAX_MODULUS_BITS`` (the lower bound refuses the short moduli of
Alpha-Rays, the upper bound refuses moduli that would make a verifier exponentiate for minutes)
and N odd. Ciphertexts from peers pass ``validate_ciphertext``: 0 < c < N² and gcd(c, N) = 1
(BitForge / BitGo "zero proof": a ciphertext sharing a factor with N is not an encryption).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from protocols import bigint, primes
from protocols.encoding import encode_nat, get_nat, require_keys
from protocols.errors import InvalidMessage, UsageError
from protocols.state import register_dataclass

__all__ = [
    "MIN_MODULUS_BITS",
    "MAX_MODULUS_BITS",
    "PRIME_BITS",
    "PaillierPublicKey",
    "PaillierSecretKey",
    "check_modulus_size",
    "keygen",
    "encrypt",
    "add",
    "add_plain",
    "mul",
    "decrypt",
    "decrypt_signed",
    "validate_ciphertext",
    "validate_ciphertexts",
    "decode_ciphertext",
    "encode_ciphertext",
]

MIN_MODULUS_BITS = 2048  # about 112-bit security (the default level, protocols.zk.params)
MAX_MODULUS_BITS = 4096  # bounds the verifier's work on a peer's modulus (DoS)
PRIME_BITS = 1024

_SECRET_KEY_VERSION = 1


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def check_modulus_size(n: int, what: str = "Paillier modulus") -> None:
    """Raise ``InvalidMessage`` unless ``n`` is an odd integer of an accepted size."""
    if not _is_int(n) or not MIN_MODULUS_BITS <= n.bit_length() <= MAX_MODULUS_BITS:
        raise InvalidMessage(f"{what} must have {MIN_MODULUS_BITS} to {MAX_MODULUS_BITS} bits")
    if n % 2 == 0:
        raise InvalidMessage(f"{what} must be odd")


@dataclass(frozen=True)
class PaillierPublicKey:
    """A Paillier public key: the modulus ``n`` (and ``n_squared``, cached)."""

    n: int
    n_squared: int = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        check_modulus_size(self.n)
        object.__setattr__(self, "n_squared", self.n * self.n)

    def to_payload(self) -> dict[str, str]:
        """``{"n": minimal lowercase hex}``."""
        return {"n": encode_nat(self.n)}

    @classmethod
    def from_payload(cls, payload: Mapping[str, Any]) -> PaillierPublicKey:
        """Strict decoding (raises ``InvalidMessage``): exactly ``n``, minimal hex, size bounds."""
        require_keys(payload, ("n",))
        return cls(get_nat(payload, "n", MAX_MODULUS_BITS))


@dataclass(frozen=True, repr=False, eq=False)
class PaillierSecretKey:
    """A Paillier secret key: the Blum primes ``p`` and ``q`` with precomputed CRT values.

    The ``repr`` shows no secret; serialise only through :meth:`to_bytes` / :meth:`from_bytes`.
    """

    p: int
    q: int
    public_key: PaillierPublicKey = field(init=False)

    def __post_init__(self) -> None:
        p, q = self.p, self.q
        if not (_is_int(p) and _is_int(q)) or p == q or p % 4 != 3 or q % 4 != 3:
            raise UsageError("Paillier primes must be distinct and ≡ 3 (mod 4)")
        object.__setattr__(self, "public_key", PaillierPublicKey(p * q))
        object.__setattr__(self, "_mod_n", bigint.CrtModulus(p, q, p - 1, q - 1))
        psq, qsq = p * p, q * q
        object.__setattr__(self, "_mod_n2", bigint.CrtModulus(psq, qsq, p * (p - 1), q * (q - 1)))
        object.__setattr__(self, "_hp", bigint.invert(-q % p, p))
        object.__setattr__(self, "_hq", bigint.invert(-p % q, q))

    def __repr__(self) -> str:
        return f"PaillierSecretKey(<secret>, {self.public_key.n.bit_length()}-bit modulus)"

    @property
    def n(self) -> int:
        """The modulus N = p·q."""
        return self.public_key.n

    @property
    def phi(self) -> int:
        """φ(N) = (p - 1)(q - 1)."""
        return (self.p - 1) * (self.q - 1)

    @property
    def crt_n(self) -> bigint.CrtModulus:
        """Z_N as Z_p × Z_q, for exponentiations by the key owner (units only)."""
        return self._mod_n  # type: ignore[attr-defined,no-any-return]

    @property
    def crt_n_squared(self) -> bigint.CrtModulus:
        """Z_N² as Z_p² × Z_q², for exponentiations by the key owner (units only)."""
        return self._mod_n2  # type: ignore[attr-defined,no-any-return]

    def plaintext(self, c: int) -> int:
        """Dec(c) in [0, N) for a unit c modulo N² (:func:`decrypt` validates c first).

        By CRT (Paillier 1999, §6): modulo p, m_p = L_p(c^(p-1) mod p²)·h_p, likewise modulo q.
        Each half is a homomorphism from Z*_p² onto Z_p whose kernel is the (p-1)-th roots of
        unity (the elements of order dividing p - 1), so Dec(a·b) = Dec(a) + Dec(b) (mod N) for
        all units a, b, and Dec((1 + N)^m·y^N) = m.
        """
        m_p = self._half(c, self.p, self._mod_n2.m1, self._hp)  # type: ignore[attr-defined]
        m_q = self._half(c, self.q, self._mod_n2.m2, self._hq)  # type: ignore[attr-defined]
        return self.crt_n.combine(m_p, m_q)

    @staticmethod
    def _half(c: int, prime: int, prime_squared: int, h: int) -> int:
        """L_p(c^(p-1) mod p²)·h_p mod p: the backend's integers throughout (``bigint.mpz``: with
        gmpy2 the divisions by p² and p cost a tenth of Python's), an ``int`` back. The secret
        exponent p - 1 on a ciphertext the other party may have chosen: a constant-time
        exponentiation (``bigint.powmod_secret_exponent``)."""
        x = bigint.mpz(bigint.powmod_secret_exponent(c, prime - 1, prime_squared))
        return int((x - 1) // prime * h % prime)

    def to_bytes(self) -> bytes:
        """Version byte, then p and q each as a 2-byte length and big-endian bytes."""
        return bigint.pack_nats(_SECRET_KEY_VERSION, [self.p, self.q])

    @classmethod
    def from_bytes(cls, data: bytes) -> PaillierSecretKey:
        """Strict decoding of :meth:`to_bytes`; checks both primes (raises ``InvalidMessage``)."""
        p, q = bigint.unpack_nats(data, _SECRET_KEY_VERSION, 2, "Paillier secret key")
        if not (bigint.is_probable_prime(p) and bigint.is_probable_prime(q)):
            raise InvalidMessage("Paillier secret key: factors are not prime")
        try:
            return cls(p, q)
        except UsageError:
            raise InvalidMessage("Paillier secret key: factors are not distinct Blum primes") from None

    def encrypt(self, m: int, nonce: int | None = None) -> tuple[int, int]:
        """As :func:`encrypt`, several times faster: r^N by :meth:`nth_power`."""
        pk = self.public_key
        r = _check_nonce(pk, nonce)
        return bigint.mulmod(_nude(pk, m), self.nth_power(r), pk.n_squared), r

    def nth_power(self, u: int) -> int:
        """u^N mod N² for a unit u, by CRT. Modulo p²: u^N = (u^q)^p, and v^p mod p² depends only
        on v mod p, so u^N ≡ (u^(q mod (p-1)) mod p)^p (mod p²): two short exponentiations."""
        p, q = self.p, self.q
        mod_p2 = bigint.powmod(bigint.powmod(u % p, q % (p - 1), p), p, p * p)
        mod_q2 = bigint.powmod(bigint.powmod(u % q, p % (q - 1), q), q, q * q)
        return self._mod_n2.combine(mod_p2, mod_q2)  # type: ignore[attr-defined,no-any-return]


def keygen(bits: int = 2 * PRIME_BITS) -> tuple[PaillierPublicKey, PaillierSecretKey]:
    """A fresh key pair with a ``bits``-bit Paillier-Blum modulus (two ``bits/2``-bit primes)."""
    if not _is_int(bits) or bits % 2 or not MIN_MODULUS_BITS <= bits <= MAX_MODULUS_BITS:
        raise UsageError(f"Paillier modulus size must be even, {MIN_MODULUS_BITS} to {MAX_MODULUS_BITS}")
    p = primes.blum_prime(bits // 2)
    q = primes.blum_prime(bits // 2)
    while q == p:
        q = primes.blum_prime(bits // 2)
    sk = PaillierSecretKey(p, q)
    return sk.public_key, sk


def _check_nonce(pk: PaillierPublicKey, nonce: int | None) -> int:
    if nonce is None:
        return bigint.random_unit(pk.n)
    if not _is_int(nonce) or not 0 < nonce < pk.n or bigint.gcd(nonce, pk.n) != 1:
        raise UsageError("Paillier nonce must be in Z*_N")
    return nonce


def _nude(pk: PaillierPublicKey, m: int) -> int:
    """(1 + N)^m = 1 + (m mod N)·N, already below N²."""
    if not _is_int(m):
        raise UsageError("Paillier plaintext must be an int")
    return 1 + (m % pk.n) * pk.n


def encrypt(pk: PaillierPublicKey, m: int, nonce: int | None = None) -> tuple[int, int]:
    """``(Enc(m; r), r)``: the nonce r ∈ Z*_N is fresh unless the caller supplies it.

    ``m`` is any integer, taken modulo N (a negative m encrypts N - |m|, which
    :func:`decrypt_signed` turns back into m).
    """
    r = _check_nonce(pk, nonce)
    return bigint.mulmod(_nude(pk, m), bigint.powmod(r, pk.n, pk.n_squared), pk.n_squared), r


def add(pk: PaillierPublicKey, c1: int, c2: int) -> int:
    """Enc(a)·Enc(b) = Enc(a + b) (inputs must be valid ciphertexts, see validate_ciphertext)."""
    return bigint.mulmod(c1, c2, pk.n_squared)


def add_plain(pk: PaillierPublicKey, c: int, m: int) -> int:
    """Enc(a)·(1 + N)^m = Enc(a + m), with no fresh randomness."""
    return bigint.mulmod(c, _nude(pk, m), pk.n_squared)


def mul(pk: PaillierPublicKey, c: int, k: int) -> int:
    """Enc(a)^k = Enc(k·a); a negative k uses the inverse of c modulo N²."""
    if not _is_int(k):
        raise UsageError("Paillier scalar must be an int")
    return bigint.powmod(c, k, pk.n_squared)


def decrypt(sk: PaillierSecretKey, c: int) -> int:
    """The plaintext in [0, N) of a valid ciphertext (raises ``InvalidMessage`` otherwise)."""
    return sk.plaintext(validate_ciphertext(sk.public_key, c))


def decrypt_signed(sk: PaillierSecretKey, c: int) -> int:
    """The plaintext as a signed value in (-N/2, N/2] (cb-mpc #124: s' must be read signed)."""
    m = decrypt(sk, c)
    return m - sk.n if m > sk.n // 2 else m


def validate_ciphertext(pk: PaillierPublicKey, c: int) -> int:
    """Return ``c`` if 0 < c < N² and gcd(c, N) = 1; raise ``InvalidMessage`` otherwise."""
    validate_ciphertexts(pk, {"Paillier ciphertext": c})
    return c


def validate_ciphertexts(
    pk: PaillierPublicKey, ciphertexts: Mapping[str, object], units: Mapping[str, object] | None = None
) -> None:
    """Raise ``InvalidMessage`` naming the first bad value unless every one of ``ciphertexts`` is
    a valid ciphertext under ``pk`` (0 < c < N², gcd(c, N) = 1, as :func:`validate_ciphertext`)
    and every one of ``units`` (nonces, a proof's z_enc) is in Z*_N (0 < u < N, gcd(u, N) = 1).

    The verdict of one check per value, with one gcd for all of them (``bigint.first_non_unit``):
    ranges first, in order (ciphertexts, then units), then the units modulo N."""
    n = pk.n
    named = [(name, value, pk.n_squared) for name, value in ciphertexts.items()]
    named += [(name, value, n) for name, value in (units or {}).items()]
    for name, value, bound in named:
        if not _is_int(value) or not 0 < value < bound:  # type: ignore[operator]
            raise InvalidMessage(f"{name} out of range")
    bad = bigint.first_non_unit([value for _, value, _ in named], n)  # type: ignore[misc]
    if bad is not None:
        raise InvalidMessage(f"{named[bad][0]} not invertible modulo N")


def encode_ciphertext(c: int) -> str:
    """A ciphertext as minimal lowercase hex (for payloads)."""
    return encode_nat(c)


def decode_ciphertext(payload: Mapping[str, Any], key: str, pk: PaillierPublicKey) -> int:
    """Strictly decode and validate the ciphertext ``payload[key]`` under ``pk``."""
    return validate_ciphertext(pk, get_nat(payload, key, 2 * pk.n.bit_length()))


# Parkable state (``protocols.state``).
register_dataclass(PaillierPublicKey)
register_dataclass(PaillierSecretKey)

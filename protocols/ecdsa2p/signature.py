"""ECDSA signatures on secp256k1: verification, low-s normalisation, recovery id, encodings.

``Signature`` carries ``r``, ``s`` (always low-s: s ≤ q/2, as Bitcoin and Ethereum require) and
``recid`` (0..3): bit 0 is the parity of R.y after normalisation, bit 1 is set when R.x ≥ q
(ZenGo's ``compute_with_recid`` misses that case).
"""

from __future__ import annotations

from dataclasses import dataclass

from curves import InvalidEncoding, Point, secp256k1
from curves.secp256k1 import P as FIELD_P
from protocols.errors import InvalidMessage, UsageError
from protocols.state import register_dataclass

__all__ = ["Signature", "verify_signature", "recover_public_key", "digest_to_int"]

Q = secp256k1.order
HALF_Q = Q // 2


def digest_to_int(digest: bytes) -> int:
    """The message representative m of a 32-byte digest (SEC1 4.1.3 step 5: leftmost 256 bits)."""
    if not isinstance(digest, (bytes, bytearray)) or len(digest) != 32:
        raise UsageError("the digest must be exactly 32 bytes")
    return int.from_bytes(digest, "big")


def _der_int(value: int) -> bytes:
    body = value.to_bytes((value.bit_length() + 8) // 8, "big")  # room for a sign bit
    return b"\x02" + bytes([len(body)]) + body


@dataclass(frozen=True)
class Signature:
    """A low-s ECDSA signature with its recovery id."""

    r: int
    s: int
    recid: int

    def __post_init__(self) -> None:
        if not (0 < self.r < Q and 0 < self.s <= HALF_Q and 0 <= self.recid <= 3):
            raise InvalidMessage("signature values out of range (r, s in [1, q), low-s, recid 0..3)")

    @classmethod
    def from_nonce_point(cls, r_point: Point, s: int) -> Signature:
        """Normalise (R, s) to low-s and compute the recovery id."""
        x, y = secp256k1.affine(r_point)
        r = x % Q
        odd = y & 1
        if s > HALF_Q:
            s, odd = Q - s, odd ^ 1  # negating s flips which of ±R the signature recovers to
        return cls(r, s, odd | (2 if x >= Q else 0))

    def to_bytes(self) -> bytes:
        """64-byte r ‖ s (big-endian)."""
        return self.r.to_bytes(32, "big") + self.s.to_bytes(32, "big")

    @classmethod
    def from_bytes(cls, data: bytes, recid: int = 0) -> Signature:
        """Parse the 64-byte r ‖ s (big-endian each); the recovery id is given apart."""
        if len(data) != 64:
            raise InvalidMessage("signature must be 64 bytes")
        return cls(int.from_bytes(data[:32], "big"), int.from_bytes(data[32:], "big"), recid)

    def to_der(self) -> bytes:
        """ASN.1 DER: SEQUENCE { INTEGER r, INTEGER s }."""
        body = _der_int(self.r) + _der_int(self.s)
        return b"\x30" + bytes([len(body)]) + body

    @property
    def v(self) -> int:
        """Ethereum-style v = 27 + recid (for recid 0/1)."""
        return 27 + self.recid


def verify_signature(public_key: Point, digest: bytes, signature: Signature) -> bool:
    """Standard ECDSA verification (SEC1 4.1.4); rejects r, s outside [1, q) and R = ∞."""
    return verified_nonce_point(public_key, digest, signature) is not None


def verified_nonce_point(public_key: Point, digest: bytes, signature: Signature) -> tuple[int, int] | None:
    """The affine (x, y) of R' = s⁻¹·(e·G + r·Q) when (r, s) verifies (SEC1 4.1.4: x mod q = r),
    else None. R' is the point the signature recovers to: its recovery id is
    ``y & 1 | (2 if x >= q else 0)`` (SEC1 4.1.6), so one verification also checks a recid."""
    if public_key.group is not secp256k1 or public_key.is_identity:
        return None
    r, s = signature.r, signature.s
    if not (0 < r < Q and 0 < s < Q):
        return None
    w = pow(s, -1, Q)
    point = secp256k1.base_mul(digest_to_int(digest) * w) + public_key * (r * w)
    if point.is_identity:
        return None
    x, y = secp256k1.affine(point)
    return (x, y) if x % Q == r else None


def recover_public_key(digest: bytes, signature: Signature) -> Point:
    """The public key that ``signature`` verifies under (SEC1 4.1.6), using ``recid``."""
    x = signature.r + (Q if signature.recid & 2 else 0)
    if x >= FIELD_P:
        raise InvalidMessage("recovery id names an x beyond the field")
    prefix = b"\x03" if signature.recid & 1 else b"\x02"
    try:
        r_point = secp256k1.decode_point(prefix + x.to_bytes(32, "big"))
    except InvalidEncoding:
        raise InvalidMessage("r is not the x-coordinate of a curve point") from None
    r_inv = pow(signature.r, -1, Q)
    e = digest_to_int(digest)
    public = (r_point * signature.s - secp256k1.base_mul(e)) * r_inv
    if public.is_identity:  # s·R = e·G: the signature verifies under no public key
        raise InvalidMessage("the signature recovers to the identity")
    return public


# Parkable state (``protocols.state``).
register_dataclass(Signature)

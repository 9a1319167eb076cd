"""Public (non-hardened) derivation on ed25519, as written in docs/hd.md.

SLIP-10 defines only hardened ed25519 derivation, so there is no standard public one; this
engine's rule follows BIP32's ``CKDpub`` with the ed25519 encodings. For an index 0 <= i < 2^31:

    I = HMAC-SHA512(key = c, data = A ‖ ser32(i))     A: the 32-byte point encoding (RFC 8032)
    t = int(I[0:32], big-endian) mod L                 ser32: 4 bytes big-endian
    child key A + t·B, child chain code I[32:64]

An identity child is invalid (as in BIP32: use the next index): ``InvalidChild``. The extended
public key is the lowercase hex of A ‖ c (128 characters). docs/hd.md has test vectors.
"""

from __future__ import annotations

import hashlib
import hmac

from curves import CurveError, Point, ed25519
from protocols.errors import UsageError
from protocols.hd.bip32 import InvalidChild, derive_along
from protocols.hd.paths import HARDENED

__all__ = ["ckd_pub", "derive_public", "serialize_extended", "parse_extended"]


def ckd_pub(parent: Point, chain_code: bytes, index: int) -> tuple[Point, bytes, int]:
    """One level: (child key, child chain code, the tweak t)."""
    if parent.group is not ed25519 or len(chain_code) != 32 or not 0 <= index < HARDENED:
        raise UsageError("ed25519 derivation takes an ed25519 point, a 32-byte chain code and a non-hardened index")
    digest = hmac.new(chain_code, parent.to_bytes() + index.to_bytes(4, "big"), hashlib.sha512).digest()
    tweak = int.from_bytes(digest[:32], "big") % ed25519.order
    child = parent + ed25519.base_mul(tweak)
    if child.is_identity:
        raise InvalidChild(f"ed25519 child {index} is the identity: use the next index")
    return child, digest[32:], tweak


def derive_public(parent: Point, chain_code: bytes, indices: tuple[int, ...]) -> tuple[Point, bytes, int]:
    """``ckd_pub`` along ``indices``: (child key, child chain code, sum of the tweaks mod L)."""
    return derive_along(ckd_pub, parent, chain_code, indices)


def serialize_extended(key: Point, chain_code: bytes) -> str:
    """The extended public key: lowercase hex of A ‖ c (128 characters)."""
    if key.group is not ed25519 or key.is_identity or len(chain_code) != 32:
        raise UsageError("an ed25519 extended key holds a point and a 32-byte chain code")
    return (key.to_bytes() + chain_code).hex()


def parse_extended(text: str) -> tuple[Point, bytes]:
    """Strictly parse ``serialize_extended`` output (``UsageError`` otherwise)."""
    if not isinstance(text, str) or len(text) != 128 or text != text.lower():
        raise UsageError("an ed25519 extended key is 128 lowercase hex characters")
    try:
        data = bytes.fromhex(text)
        point = ed25519.decode_point(data[:32])
    except (ValueError, CurveError):
        raise UsageError("an ed25519 extended key is 128 lowercase hex characters") from None
    if point.is_identity:  # serialize_extended never writes it: no account key is the identity
        raise UsageError("an ed25519 extended key never holds the identity point")
    return point, data[32:]

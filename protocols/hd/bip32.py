"""BIP32 public derivation on secp256k1: ``CKDpub`` and the extended public key serialisation.

BIP32 (https://github.com/bitcoin/bips/blob/master/bip-0032.mediawiki), "Public parent key →
public child key": for a non-hardened index i, I = HMAC-SHA512(Key = c_par, Data = serP(K_par) ‖
ser32(i)); K_i = point(parse256(I_L)) + K_par; c_i = I_R. If parse256(I_L) >= n or K_i is the
point at infinity the child is invalid (BIP32: proceed with the next index): ``InvalidChild``.
"Serialization format": version ‖ depth ‖ parent fingerprint ‖ child number ‖ chain code ‖ serP(K),
Base58Check-encoded. The tests check ``CKDpub`` against BIP32's test vectors 1–3.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable

from curves import Point, secp256k1
from protocols.encoding import base58check_encode
from protocols.errors import UsageError
from protocols.hd.paths import HARDENED

__all__ = ["XPUB_VERSION", "InvalidChild", "ckd_pub", "derive_along", "derive_public", "serialize_xpub", "base58check_encode"]

XPUB_VERSION = bytes.fromhex("0488B21E")
"""Mainnet public version bytes (BIP32: ``xpub``)."""


class InvalidChild(UsageError):
    """The child at this index does not exist (BIP32: I_L >= n or the point at infinity; about
    2^-127 per index): use the next index."""


def ckd_pub(parent: Point, chain_code: bytes, index: int) -> tuple[Point, bytes, int]:
    """``CKDpub((K_par, c_par), i)`` for 0 <= i < 2^31: (K_i, c_i, the tweak parse256(I_L))."""
    if parent.group is not secp256k1 or len(chain_code) != 32 or not 0 <= index < HARDENED:
        raise UsageError("CKDpub takes a secp256k1 point, a 32-byte chain code and a non-hardened index")
    digest = hmac.new(chain_code, parent.to_bytes() + index.to_bytes(4, "big"), hashlib.sha512).digest()
    tweak = int.from_bytes(digest[:32], "big")
    if tweak >= secp256k1.order:
        raise InvalidChild(f"BIP32 child {index} is invalid (I_L >= n): use the next index")
    child = parent + secp256k1.base_mul(tweak)
    if child.is_identity:
        raise InvalidChild(f"BIP32 child {index} is the point at infinity: use the next index")
    return child, digest[32:], tweak


ChildFunction = Callable[[Point, bytes, int], tuple[Point, bytes, int]]


def derive_along(ckd: ChildFunction, parent: Point, chain_code: bytes,
                 indices: tuple[int, ...]) -> tuple[Point, bytes, int]:
    """``ckd`` along ``indices``: (child key, child chain code, sum of the tweaks mod the order)."""
    total = 0
    for index in indices:
        parent, chain_code, tweak = ckd(parent, chain_code, index)
        total = (total + tweak) % parent.group.order
    return parent, chain_code, total


def derive_public(parent: Point, chain_code: bytes, indices: tuple[int, ...]) -> tuple[Point, bytes, int]:
    """``CKDpub`` along ``indices``: (child key, child chain code, sum of the tweaks mod n)."""
    return derive_along(ckd_pub, parent, chain_code, indices)


def serialize_xpub(key: Point, chain_code: bytes, *, depth: int, child_number: int,
                   parent_fingerprint: bytes = bytes(4), version: bytes = XPUB_VERSION) -> str:
    """The BIP32 serialisation of an extended public key, Base58Check-encoded."""
    if key.group is not secp256k1 or key.is_identity or len(chain_code) != 32 or len(parent_fingerprint) != 4:
        raise UsageError("an xpub holds a secp256k1 point, a 32-byte chain code and a 4-byte fingerprint")
    if not 0 <= depth <= 255 or not 0 <= child_number < 2**32 or len(version) != 4:
        raise UsageError("xpub depth, child number or version out of range")
    payload = (version + bytes([depth]) + parent_fingerprint + child_number.to_bytes(4, "big") + chain_code
               + key.to_bytes())
    return base58check_encode(payload)

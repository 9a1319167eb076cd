"""Ed25519's prime-order subgroup (RFC 8032) on libsodium's ``crypto_core_ed25519_*`` API.

Points are held as their canonical 32-byte encodings, which is what libsodium operates on.
Decoding accepts only canonical encodings of points on the curve, of prime order L: libsodium's
``crypto_core_ed25519_is_valid_point`` rejects non-canonical bytes, small-order points and
points with a torsion component. The identity (``01 00…00``) is accepted only where the caller
allows it. Scalars are 32 bytes little-endian, below L.
"""

from __future__ import annotations

from typing import Any

from nacl import bindings as _sodium

from curves.base import Group
from curves.errors import InvalidEncoding

__all__ = ["Ed25519", "ed25519", "L"]

L: int = 2**252 + 27742317777372353535851937790883648493
_IDENTITY = b"\x01" + b"\x00" * 31
_BASE = bytes.fromhex("5866666666666666666666666666666666666666666666666666666666666666")


def _scalar_bytes(k: int) -> bytes:
    return k.to_bytes(32, "little")


class Ed25519(Group):
    name = "ed25519"
    order = L
    point_length = 32
    scalar_length = 32
    scalar_byteorder = "little"

    def _raw_generator(self) -> Any:
        return _BASE

    def _raw_identity(self) -> Any:
        return _IDENTITY

    def _raw_is_identity(self, raw: Any) -> bool:
        return raw == _IDENTITY

    def _raw_add(self, a: Any, b: Any) -> Any:
        if a == _IDENTITY:
            return b
        if b == _IDENTITY:
            return a
        return _sodium.crypto_core_ed25519_add(a, b)

    def _raw_neg(self, a: Any) -> Any:
        if a == _IDENTITY:
            return a
        # Negation flips the sign of x, i.e. bit 255 of the encoding (x != 0 off the identity).
        return a[:31] + bytes([a[31] ^ 0x80])

    def _raw_mul(self, a: Any, k: int) -> Any:
        # k is in [1, L) and a is in the prime-order subgroup, so k·a is never the identity.
        return _sodium.crypto_scalarmult_ed25519_noclamp(_scalar_bytes(k), a)

    def _raw_base_mul(self, k: int) -> Any:
        return _sodium.crypto_scalarmult_ed25519_base_noclamp(_scalar_bytes(k))

    def _raw_equal(self, a: Any, b: Any) -> bool:
        return a == b  # canonical encodings are unique

    def _raw_encode(self, raw: Any) -> bytes:
        return raw

    def _raw_decode(self, data: bytes) -> Any:
        if data == _IDENTITY:
            raise InvalidEncoding("ed25519 identity not allowed here")
        if not _sodium.crypto_core_ed25519_is_valid_point(data):
            raise InvalidEncoding("not a canonical ed25519 point of prime order")
        return data


ed25519 = Ed25519()

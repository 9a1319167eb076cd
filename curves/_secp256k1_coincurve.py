"""secp256k1 arithmetic on coincurve (libsecp256k1): the optional fast path.

The raw value is a coincurve ``PublicKey``, or ``None`` for the identity, which libsecp256k1
cannot represent: sums that reach it (``P + (-P)``) are caught and mapped here, and ``k = 0``
never reaches the backend (``Point.__mul__`` and ``Group.base_mul`` handle it). Decoding keeps
the shared strict checks (exactly 33 bytes, prefix 02/03, x < p) and lets libsecp256k1's parser
do the on-curve test. Importing this module fails with ``ImportError`` if coincurve is missing.
"""

from __future__ import annotations

from typing import Any

from coincurve import PublicKey

from curves._secp256k1_base import Secp256k1
from curves.errors import InvalidEncoding

__all__ = ["CoincurveSecp256k1", "group"]

_G = PublicKey(bytes.fromhex("0279be667ef9dcbbac55a06295ce870b07029bfcdb2dce28d959f2815b16f81798"))


def _scalar(k: int) -> bytes:
    return k.to_bytes(32, "big")


class CoincurveSecp256k1(Secp256k1):
    """secp256k1 on libsecp256k1 through coincurve's public API."""

    backend = "coincurve"

    def _raw_generator(self) -> Any:
        return _G

    def _raw_identity(self) -> Any:
        return None

    def _raw_is_identity(self, raw: Any) -> bool:
        return raw is None

    def _raw_add(self, a: Any, b: Any) -> Any:
        if a is None:
            return b
        if b is None:
            return a
        try:
            return PublicKey.combine_keys([a, b])
        except ValueError:
            # libsecp256k1 refuses a sum at infinity: here it means b = -a.
            return None

    def _raw_neg(self, a: Any) -> Any:
        if a is None:
            return None
        encoded = a.format()
        # -(x, y) = (x, p - y): same x, the other parity (y != 0 on this curve).
        return PublicKey(bytes([encoded[0] ^ 1]) + encoded[1:])

    def _raw_mul(self, a: Any, k: int) -> Any:
        # 0 < k < n and a has prime order, so k·a is never the identity.
        return a.multiply(_scalar(k))

    def _raw_base_mul(self, k: int) -> Any:
        return PublicKey.from_valid_secret(_scalar(k))

    def _raw_equal(self, a: Any, b: Any) -> bool:
        if a is None or b is None:
            return a is b
        return bool(a.format() == b.format())  # compressed encodings are unique

    def _raw_encode(self, raw: Any) -> bytes:
        if raw is None:
            raise self._identity_has_no_encoding()
        return bytes(raw.format())

    def _raw_decode_checked(self, data: bytes, x: int) -> Any:
        try:
            return PublicKey(data)
        except ValueError:
            raise InvalidEncoding("secp256k1 point not on the curve") from None

    def _raw_from_affine(self, x: int, y: int) -> Any:
        return PublicKey(b"\x04" + x.to_bytes(32, "big") + y.to_bytes(32, "big"))

    def _raw_affine(self, raw: Any) -> tuple[int, int]:
        affine: tuple[int, int] = raw.point()  # coincurve has no type information
        return affine


group = CoincurveSecp256k1()
"""The coincurve instance (``curves.secp256k1.secp256k1`` when coincurve is used)."""

"""secp256k1 (SEC 2, section 2.4.1) on python-ecdsa's Jacobian points.

Points are encoded as 33-byte compressed SEC1 (``02``/``03`` ‖ x). The identity has no encoding
on the wire here: encoding it raises, and decoding never yields it. Scalars are 32 bytes
big-endian. Decoding checks the prefix, that x < p, and that x³ + 7 is a square mod p.
"""

from __future__ import annotations

from typing import Any

from ecdsa import SECP256k1
from ecdsa.ellipticcurve import INFINITY, PointJacobi

from curves.base import Group, Point
from curves.errors import CurveError, InvalidEncoding

__all__ = ["Secp256k1", "secp256k1", "P", "N"]

_CURVE = SECP256k1.curve
P: int = int(_CURVE.p())
N: int = int(SECP256k1.order)
_B = 7
_SQRT_EXP = (P + 1) // 4  # p ≡ 3 (mod 4)
_G: PointJacobi = SECP256k1.generator  # carries python-ecdsa's precomputed table


def _lift_x(x: int, odd: bool) -> tuple[int, int] | None:
    rhs = (pow(x, 3, P) + _B) % P
    y = pow(rhs, _SQRT_EXP, P)
    if (y * y) % P != rhs:
        return None
    if (y & 1) != odd:
        y = P - y
    return x, y


class Secp256k1(Group):
    name = "secp256k1"
    order = N
    point_length = 33
    scalar_length = 32
    scalar_byteorder = "big"

    def _raw_generator(self) -> Any:
        return _G

    def _raw_identity(self) -> Any:
        return INFINITY

    def _raw_is_identity(self, raw: Any) -> bool:
        return raw == INFINITY

    def _raw_add(self, a: Any, b: Any) -> Any:
        return a + b

    def _raw_neg(self, a: Any) -> Any:
        return -a

    def _raw_mul(self, a: Any, k: int) -> Any:
        return a * k

    def _raw_base_mul(self, k: int) -> Any:
        return _G * k

    def _raw_equal(self, a: Any, b: Any) -> bool:
        return a == b

    def _raw_encode(self, raw: Any) -> bytes:
        if raw == INFINITY:
            raise CurveError("the secp256k1 identity has no encoding")
        x, y = raw.x(), raw.y()
        return bytes([2 | (y & 1)]) + int(x).to_bytes(32, "big")

    def identity_encoding(self) -> bytes:
        # No byte string decodes to the identity on secp256k1.
        return b""

    def _raw_decode(self, data: bytes) -> Any:
        prefix = data[0]
        if prefix not in (2, 3):
            raise InvalidEncoding("secp256k1 point must be compressed SEC1 (02/03 prefix)")
        x = int.from_bytes(data[1:], "big")
        if x >= P:
            raise InvalidEncoding("secp256k1 x coordinate not below p")
        lifted = _lift_x(x, prefix == 3)
        if lifted is None:
            raise InvalidEncoding("secp256k1 point not on the curve")
        return PointJacobi(_CURVE, lifted[0], lifted[1], 1, N)

    def point_from_affine(self, x: int, y: int) -> Point:
        """A point from affine coordinates, checked to be on the curve (for chain formats)."""
        if not (0 <= x < P and 0 <= y < P) or (y * y - x**3 - _B) % P != 0:
            raise InvalidEncoding("secp256k1 point not on the curve")
        return Point(self, PointJacobi(_CURVE, x, y, 1, N))

    @staticmethod
    def affine(point: Point) -> tuple[int, int]:
        """Affine (x, y) of a non-identity point."""
        if point.is_identity:
            raise CurveError("the identity has no affine coordinates")
        raw = point._raw
        return int(raw.x()), int(raw.y())


secp256k1 = Secp256k1()

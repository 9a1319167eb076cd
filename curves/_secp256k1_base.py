"""secp256k1 (SEC 2, section 2.4.1): parameters and what every backend shares.

Points are encoded as 33-byte compressed SEC1 (``02``/``03`` ‖ x). The identity has no encoding
on the wire here: encoding it raises, and decoding never yields it. Scalars are 32 bytes
big-endian. The strict decoding checks (prefix, x < p) and the affine-coordinate checks live
here once, so that both backends accept and refuse exactly the same bytes; each backend only
adds its own "on the curve" test and its arithmetic.
"""

from __future__ import annotations

from abc import abstractmethod
from typing import Any

from curves.base import Group, Point
from curves.errors import CurveError, InvalidEncoding

__all__ = ["Secp256k1", "P", "N", "B", "lift_x"]

P: int = 2**256 - 2**32 - 977
"""The field prime."""
N: int = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
"""The group order."""
B = 7
"""The curve is y² = x³ + 7."""
_SQRT_EXP = (P + 1) // 4  # p ≡ 3 (mod 4)


def lift_x(x: int, odd: bool) -> tuple[int, int] | None:
    """The point with abscissa ``x`` and y of parity ``odd``, or None if x³ + 7 is no square."""
    rhs = (pow(x, 3, P) + B) % P
    y = pow(rhs, _SQRT_EXP, P)
    if (y * y) % P != rhs:
        return None
    if (y & 1) != odd:
        y = P - y
    return x, y


class Secp256k1(Group):
    """secp256k1 behind the :class:`Group` interface; a subclass per arithmetic backend.

    All backends have the same name, parameters and encodings (byte-identical), so transcripts
    and messages do not depend on the backend. Points of two backend instances never mix.
    """

    name = "secp256k1"
    order = N
    point_length = 33
    scalar_length = 32
    scalar_byteorder = "big"
    backend: str
    """Name of the arithmetic backend ("coincurve" or "python-ecdsa")."""

    # --- backend hooks beyond the Group ones --------------------------------------------------
    @abstractmethod
    def _raw_decode_checked(self, data: bytes, x: int) -> Any:
        """The point of the compressed encoding ``data`` (prefix and x < p already checked).

        Raises ``InvalidEncoding`` if x is not the abscissa of a curve point.
        """

    @abstractmethod
    def _raw_from_affine(self, x: int, y: int) -> Any:
        """The point (x, y), already checked to be on the curve."""

    @abstractmethod
    def _raw_affine(self, raw: Any) -> tuple[int, int]:
        """Affine coordinates of a non-identity point."""

    # --- shared -----------------------------------------------------------------------------
    def identity_encoding(self) -> bytes:
        # No byte string decodes to the identity on secp256k1.
        return b""

    def _raw_decode(self, data: bytes) -> Any:
        if len(data) != 33 or data[0] not in (2, 3):
            raise InvalidEncoding("secp256k1 point must be compressed SEC1 (02/03 prefix)")
        x = int.from_bytes(data[1:], "big")
        if x >= P:
            raise InvalidEncoding("secp256k1 x coordinate not below p")
        return self._raw_decode_checked(data, x)

    def point_from_affine(self, x: int, y: int) -> Point:
        """A point from affine coordinates, checked to be on the curve (for chain formats)."""
        if not (0 <= x < P and 0 <= y < P) or (y * y - x**3 - B) % P != 0:
            raise InvalidEncoding("secp256k1 point not on the curve")
        return Point(self, self._raw_from_affine(x, y))

    def affine(self, point: Point) -> tuple[int, int]:
        """Affine (x, y) of a non-identity point of this group."""
        if not isinstance(point, Point) or point.group is not self:
            raise CurveError("points of different groups")
        if point.is_identity:
            raise CurveError("the identity has no affine coordinates")
        return self._raw_affine(point._raw)

    def _identity_has_no_encoding(self) -> CurveError:
        return CurveError("the secp256k1 identity has no encoding")

    def __repr__(self) -> str:
        return f"<group {self.name} ({self.backend})>"

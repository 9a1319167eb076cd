"""secp256k1 arithmetic on python-ecdsa's Jacobian points (pure Python, always available)."""

from __future__ import annotations

from typing import Any

from ecdsa import SECP256k1
from ecdsa.ellipticcurve import INFINITY, PointJacobi

from curves._secp256k1_base import N, P, Secp256k1, lift_x
from curves.errors import InvalidEncoding

__all__ = ["PythonEcdsaSecp256k1", "group"]

_CURVE = SECP256k1.curve
_G: PointJacobi = SECP256k1.generator  # carries python-ecdsa's precomputed table
if int(_CURVE.p()) != P or int(SECP256k1.order) != N:
    raise ImportError("python-ecdsa's secp256k1 parameters differ from SEC 2")


class PythonEcdsaSecp256k1(Secp256k1):
    """secp256k1 on python-ecdsa: the raw value is a ``PointJacobi`` (or ``INFINITY``)."""

    backend = "python-ecdsa"

    def _raw_generator(self) -> Any:
        return _G

    def _raw_identity(self) -> Any:
        return INFINITY

    def _raw_is_identity(self, raw: Any) -> bool:
        return bool(raw == INFINITY)

    def _raw_add(self, a: Any, b: Any) -> Any:
        return a + b

    def _raw_neg(self, a: Any) -> Any:
        # python-ecdsa's INFINITY cannot be negated (it has no curve).
        return INFINITY if a == INFINITY else -a

    def _raw_mul(self, a: Any, k: int) -> Any:
        return a * k

    def _raw_base_mul(self, k: int) -> Any:
        return _G * k

    def _raw_equal(self, a: Any, b: Any) -> bool:
        return bool(a == b)

    def _raw_encode(self, raw: Any) -> bytes:
        if raw == INFINITY:
            raise self._identity_has_no_encoding()
        x, y = self._raw_affine(raw)
        return bytes([2 | (y & 1)]) + x.to_bytes(32, "big")

    def _raw_decode_checked(self, data: bytes, x: int) -> Any:
        lifted = lift_x(x, data[0] == 3)
        if lifted is None:
            raise InvalidEncoding("secp256k1 point not on the curve")
        return PointJacobi(_CURVE, lifted[0], lifted[1], 1, N)

    def _raw_from_affine(self, x: int, y: int) -> Any:
        return PointJacobi(_CURVE, x, y, 1, N)

    def _raw_affine(self, raw: Any) -> tuple[int, int]:
        # Reduce: PointJacobi.__neg__ leaves y negative when z = 1 (the generator, decoded
        # points), and x()/y() return such coordinates unreduced.
        scaled = raw.scale()
        return int(scaled.x()) % P, int(scaled.y()) % P


group = PythonEcdsaSecp256k1()
"""The python-ecdsa instance (``curves.secp256k1.secp256k1`` when coincurve is not used)."""

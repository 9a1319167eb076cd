"""NIST P-256 (secp256r1, FIPS 186-4 D.1.2.3) in pure Python, behind the :class:`Group` interface.

Points are encoded as 33-byte compressed SEC1 (``02``/``03`` ‖ x, SEC 1 v2 section 2.3.3); the
identity has no encoding here (encoding it raises, no byte string decodes to it). Scalars are 32
bytes big-endian. Decoding is the partial public-key validation of NIST SP 800-56A rev. 3,
5.6.2.3.4, which is the full validation for a cofactor-1 curve: exact length, a ``02``/``03``
prefix, x < p, x the abscissa of a curve point (so the point is on the curve, not the identity,
and in the group of prime order n).

Arithmetic, and why it is not the textbook Jacobian one
-------------------------------------------------------
Points are held in homogeneous projective coordinates (X : Y : Z), the identity as (0 : 1 : 0),
and added and doubled with the *complete* formulas of Renes, Costello and Batina ("Complete
addition formulas for prime order elliptic curves", EUROCRYPT 2016, Algorithms 4 and 6 for
a = -3). Complete formulas have no exceptional case: the same straight-line code adds P + Q,
P + P, P + (-P) and P + O. Jacobian formulas are faster by a few multiplications, but they are
wrong for those cases, so a Jacobian ladder must branch on them, and in a ladder over a secret
scalar the branch depends on the secret. Here nothing does:

- scalar multiplication is a fixed 4-bit window over all 256 bits of the scalar: 64 rounds of
  four doublings and one addition, whatever the scalar (no early exit on leading zeros, no skipped
  addition for a zero digit, since adding the identity is just another complete addition);
- the table entry is selected by scanning all 16 entries with arithmetic masks, not by indexing
  with the secret digit;
- conversions to affine coordinates invert with Fermat's little theorem (fixed public exponent).

CPython's integers are themselves not constant time (their length varies with the value), so this
is constant-time *minded*: no algorithmic secret-dependent branch or early exit, the best pure
Python allows. The field backend (gmpy2 or ``int``) is chosen in :mod:`curves._p256_field`;
:func:`use_backend` switches it.
"""

from __future__ import annotations

from typing import Any

from curves import _p256_field as _field
from curves.base import Group, Point
from curves.errors import CurveError, InvalidEncoding

__all__ = [
    "P256",
    "p256",
    "P",
    "N",
    "B",
    "GX",
    "GY",
    "scalar_inverse",
    "use_backend",
    "using_backend",
    "backend",
    "available_backends",
]

P: int = _field.P_INT
"""The field prime."""
N: int = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551
"""The group order n (the cofactor is 1)."""
B: int = _field.B_INT
"""The curve is y^2 = x^3 - 3x + B."""
GX: int = 0x6B17D1F2E12C4247F8BCE6E563A440F277037D812DEB33A0F4A13945D898C296
GY: int = 0x4FE342E2FE1A7F9B8EE7EB4A7C0F9E162BCE33576B315ECECBB6406837BF51F5

_WINDOW = 4
_SCALAR_BITS = 256
_IDENTITY: tuple[Any, Any, Any] = (0, 1, 0)

use_backend = _field.use_backend
using_backend = _field.using_backend
backend = _field.backend
available_backends = _field.available_backends

Raw = tuple[Any, Any, Any]
"""(X, Y, Z) homogeneous projective coordinates, each reduced to [0, p)."""


def _add(p1: Raw, p2: Raw) -> Raw:
    """P1 + P2, complete (RCB 2016, Algorithm 4, a = -3): valid for every pair of inputs."""
    p, b = _field.P, _field.B
    x1, y1, z1 = p1
    x2, y2, z2 = p2
    t0 = x1 * x2 % p
    t1 = y1 * y2 % p
    t2 = z1 * z2 % p
    t3 = (x1 + y1) * (x2 + y2) % p
    t3 = t3 - t0 - t1
    t4 = (y1 + z1) * (y2 + z2) % p
    t4 = t4 - t1 - t2
    x3 = (x1 + z1) * (x2 + z2) % p
    y3 = x3 - t0 - t2
    z3 = b * t2 % p
    x3 = y3 - z3
    x3 = 3 * x3
    z3 = t1 - x3
    x3 = t1 + x3
    y3 = b * y3 % p
    t2 = 3 * t2
    y3 = 3 * (y3 - t2 - t0)
    t0 = 3 * t0 - t2
    t1 = t4 * y3 % p
    t2 = t0 * y3 % p
    y3 = (x3 * z3 + t2) % p
    x3 = (t3 * x3 - t1) % p
    z3 = (t4 * z3 + t3 * t0) % p
    return x3, y3, z3


def _double(pt: Raw) -> Raw:
    """2P, complete (RCB 2016, Algorithm 6, a = -3): also right for the identity."""
    p, b = _field.P, _field.B
    x, y, z = pt
    t0 = x * x % p
    t1 = y * y % p
    t2 = z * z % p
    t3 = 2 * (x * y % p)
    z3 = 2 * (x * z % p)
    y3 = b * t2 % p - z3
    x3 = 3 * y3
    y3 = (t1 + x3) % p
    x3 = t1 - x3
    y3 = x3 * y3 % p
    x3 = x3 * t3 % p
    t2 = 3 * t2
    z3 = 3 * (b * z3 % p - t2 - t0)
    t0 = 3 * t0 - t2
    y3 = (y3 + t0 * z3) % p
    t0 = 2 * (y * z % p)
    x3 = (x3 - t0 * z3) % p
    z3 = 4 * t0 * t1 % p
    return x3, y3, z3


def _neg(pt: Raw) -> Raw:
    x, y, z = pt
    return x, (-y) % _field.P, z


def _select(table: list[Raw], index: int) -> Raw:
    """``table[index]`` for a secret ``index`` in [0, 16), reading every entry (masked scan)."""
    x = y = z = 0
    for j, (tx, ty, tz) in enumerate(table):
        mask = ((j ^ index) - 1) >> 8  # -1 exactly when j == index (0 <= j ^ index < 16)
        x |= tx & mask
        y |= ty & mask
        z |= tz & mask
    return x, y, z


def _window_table(pt: Raw) -> list[Raw]:
    """[0·P, 1·P, ..., 15·P] for the fixed 4-bit window."""
    table = [_IDENTITY, pt]
    for _ in range(2, 1 << _WINDOW):
        table.append(_add(table[-1], pt))
    return table


def _ladder(table: list[Raw], k: int) -> Raw:
    """k·P from P's window table: 64 rounds of 4 doublings and one addition, for any k < 2^256."""
    acc = _IDENTITY
    for shift in range(_SCALAR_BITS - _WINDOW, -1, -_WINDOW):
        acc = _double(_double(_double(_double(acc))))
        acc = _add(acc, _select(table, (k >> shift) & 0xF))
    return acc


def _to_affine(pt: Raw) -> tuple[int, int]:
    """Affine (x, y) of a non-identity point."""
    x, y, z = pt
    z_inv = _field.inv0(z)
    return int(x * z_inv % _field.P), int(y * z_inv % _field.P)


def scalar_inverse(k: int) -> int:
    """1/k mod n for a (possibly secret) non-zero scalar: Fermat's k^(n-2), no secret branch."""
    if not 0 < k < N:
        raise CurveError("only a non-zero scalar below the order has an inverse")
    return int(_field.powmod(_field.element(k), N - 2, _field.element(N)))


def _lift_x(x: int, odd: int) -> int | None:
    """The y with y^2 = x^3 - 3x + b and y ≡ odd (mod 2), or None if there is none."""
    rhs = (x * x * x - 3 * x + B) % P
    y = int(_field.sqrt_candidate(_field.element(rhs)))
    if y * y % P != rhs:
        return None
    return P - y if (y & 1) != odd else y


class P256(Group):
    """The P-256 group on the complete projective formulas above (one instance: :data:`p256`)."""

    name = "P-256"
    order = N
    point_length = 33
    scalar_length = 32
    scalar_byteorder = "big"

    def __init__(self) -> None:
        self._generator_table: list[Raw] | None = None

    # --- Group hooks --------------------------------------------------------------------------
    def _raw_generator(self) -> Any:
        return (_field.element(GX), _field.element(GY), _field.element(1))

    def _raw_identity(self) -> Any:
        return _IDENTITY

    def _raw_is_identity(self, raw: Any) -> bool:
        return bool(raw[2] % _field.P == 0)

    def _raw_add(self, a: Any, b: Any) -> Any:
        return _add(a, b)

    def _raw_neg(self, a: Any) -> Any:
        return _neg(a)

    def _raw_mul(self, a: Any, k: int) -> Any:
        return _ladder(_window_table(a), k)

    def _raw_base_mul(self, k: int) -> Any:
        if self._generator_table is None:  # public data, computed once
            self._generator_table = _window_table(self._raw_generator())
        return _ladder(self._generator_table, k)

    def _raw_equal(self, a: Any, b: Any) -> bool:
        p = _field.P
        (x1, y1, z1), (x2, y2, z2) = a, b
        return bool((x1 * z2 - x2 * z1) % p == 0 and (y1 * z2 - y2 * z1) % p == 0)

    def _raw_encode(self, raw: Any) -> bytes:
        if self._raw_is_identity(raw):
            raise CurveError("the P-256 identity has no encoding")
        x, y = _to_affine(raw)
        return bytes([2 | (y & 1)]) + x.to_bytes(32, "big")

    def _raw_decode(self, data: bytes) -> Any:
        if len(data) != 33 or data[0] not in (2, 3):
            raise InvalidEncoding("P-256 point must be compressed SEC1 (02/03 prefix)")
        x = int.from_bytes(data[1:], "big")
        if x >= P:
            raise InvalidEncoding("P-256 x coordinate not below p")
        y = _lift_x(x, data[0] & 1)
        if y is None:
            raise InvalidEncoding("P-256 point not on the curve")
        return (_field.element(x), _field.element(y), _field.element(1))

    # --- beyond the Group interface -------------------------------------------------------------
    def identity_encoding(self) -> bytes:
        # No byte string decodes to the identity on P-256 (compressed SEC1 cannot express it).
        return b""

    def point_from_affine(self, x: int, y: int) -> Point:
        """A point from affine coordinates, checked to be on the curve (for test vectors)."""
        if not (0 <= x < P and 0 <= y < P) or (y * y - (x * x * x - 3 * x + B)) % P != 0:
            raise InvalidEncoding("P-256 point not on the curve")
        return Point(self, (_field.element(x), _field.element(y), _field.element(1)))

    def affine(self, point: Point) -> tuple[int, int]:
        """Affine (x, y) of a non-identity point of this group."""
        if not isinstance(point, Point) or point.group is not self:
            raise CurveError("points of different groups")
        if point.is_identity:
            raise CurveError("the identity has no affine coordinates")
        return _to_affine(point._raw)

    def __repr__(self) -> str:
        return f"<group {self.name} ({backend()})>"


p256 = P256()
"""THE P-256 group of the library."""

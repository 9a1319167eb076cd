"""Hashing to P-256: the suite ``P256_XMD:SHA-256_SSWU_RO_`` of RFC 9380 (section 8.2).

``hash_to_curve(msg, DST)`` = ``hash_to_field`` (two elements, expand_message_xmd with SHA-256,
L = 48) → the simplified SWU map of each (section 6.6.2, with A = -3, B = b, Z = -10) → their
sum (P-256 has cofactor 1, so ``clear_cofactor`` is the identity map).

The map is the straight-line version of RFC 9380 Appendix F.2 with ``sqrt_ratio`` for
q ≡ 3 (mod 4) (Appendix F.2.1.2): no branch on the input (the OPRF hashes passwords, which must
not show through timing), conditional moves done arithmetically, one fixed-exponent
exponentiation per map. Its output stays projective, (x_num : y·x_den : x_den), so step 25's
division costs no inversion.
"""

from __future__ import annotations

import hashlib
from typing import Any

from curves import _p256_field as _field
from curves.base import Point
from curves.hash_to_field import hash_to_field
from curves.p256 import P, Raw, p256

__all__ = ["SUITE_ID", "SECURITY_LENGTH", "map_to_curve", "hash_to_curve", "hash_to_field_p256"]

SUITE_ID = "P256_XMD:SHA-256_SSWU_RO_"
SECURITY_LENGTH = 48
"""L = ceil((ceil(log2(p)) + k) / 8) with k = 128 (RFC 9380, section 8.2)."""

_A = P - 3
_Z = P - 10
"""Z = -10 (RFC 9380, section 8.2)."""
_C1 = (P - 3) // 4
_C2 = pow(10, (P + 1) // 4, P)
"""sqrt(-Z) (RFC 9380, Appendix F.2.1.2); -Z = 10 is a square since Z is not and p ≡ 3 mod 4."""


def _cmov(a: Any, b: Any, c: int) -> Any:
    """CMOV(a, b, c) of RFC 9380, section 4: b if c == 1 else a, without a branch (c in {0, 1})."""
    return (a + (b - a) * c) % _field.P


def _sgn0(x: Any) -> int:
    """sgn0 for m = 1 (RFC 9380, section 4.1): the parity of the reduced value."""
    return int(x % _field.P) & 1


def _sqrt_ratio_3mod4(u: Any, v: Any) -> tuple[int, Any]:
    """``sqrt_ratio(u, v)`` for q ≡ 3 mod 4 (RFC 9380, Appendix F.2.1.2): (is_square, root)."""
    p = _field.P
    tv1 = v * v % p
    tv2 = u * v % p
    tv1 = tv1 * tv2 % p
    y1 = _field.powmod(tv1, _C1, p)
    y1 = y1 * tv2 % p
    y2 = y1 * _C2 % p
    tv3 = y1 * y1 % p * v % p
    is_qr = int(tv3 == u % p)
    return is_qr, _cmov(y2, y1, is_qr)


def _map_to_curve_raw(u: Any) -> Raw:
    """``map_to_curve_simple_swu(u)`` (RFC 9380, section 6.6.2 / Appendix F.2), projective output."""
    p, b = _field.P, _field.B
    tv1 = _Z * (u * u % p) % p
    tv2 = (tv1 * tv1 + tv1) % p
    tv3 = b * (tv2 + 1) % p
    tv4 = _A * _cmov(_Z, -tv2, int(tv2 != 0)) % p
    tv6 = tv4 * tv4 % p
    tv2 = (tv3 * tv3 + _A * tv6) % p * tv3 % p
    tv6 = tv6 * tv4 % p
    tv2 = (tv2 + b * tv6) % p
    x = tv1 * tv3 % p
    is_gx1_square, y1 = _sqrt_ratio_3mod4(tv2, tv6)
    y = tv1 * u % p * y1 % p
    x = _cmov(x, tv3, is_gx1_square)
    y = _cmov(y, y1, is_gx1_square)
    y = _cmov(-y, y, int(_sgn0(u) == _sgn0(y)))
    return x, y * tv4 % p, tv4  # (x / tv4, y) as (x : y·tv4 : tv4)


def map_to_curve(u: int) -> Point:
    """The simplified SWU image of the field element ``u`` (0 <= u < p)."""
    if not 0 <= u < P:
        raise ValueError("field element out of range")
    return Point(p256, _map_to_curve_raw(_field.element(u)))


def hash_to_field_p256(msg: bytes, count: int, dst: bytes) -> list[int]:
    """``hash_to_field(msg, count)`` into GF(p) with this suite's parameters (section 8.2)."""
    return hash_to_field(msg, count, dst, P, SECURITY_LENGTH, hashlib.sha256)


def hash_to_curve(msg: bytes, dst: bytes) -> Point:
    """``hash_to_curve(msg)`` of RFC 9380, section 3, suite ``P256_XMD:SHA-256_SSWU_RO_``.

    The result may in principle be the identity (Q1 = -Q0, probability about 2^-256); callers
    that must refuse it (RFC 9497 ``Blind``) check ``is_identity``.
    """
    u0, u1 = hash_to_field_p256(msg, 2, dst)
    return map_to_curve(u0) + map_to_curve(u1)

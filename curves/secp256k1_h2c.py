"""Hashing to secp256k1: the suite ``secp256k1_XMD:SHA-256_SSWU_RO_`` of RFC 9380 (section 8.7).

``hash_to_curve(msg, DST)`` = ``hash_to_field`` (two elements of GF(p), expand_message_xmd with
SHA-256, L = 48) → the simplified SWU map onto the 3-isogenous curve
E': y² = x³ + A'·x + B' (section 6.6.3, Z = -11) → the 3-isogeny map to secp256k1 (Appendix E.1)
→ the sum of the two points (cofactor 1: ``clear_cofactor`` is the identity map).

This is the plain, branching form of the map (section 6.6.2): the inputs hashed here are public
(HD account paths, ``protocols.hd``), so no secret can show through timing. The tests check the
suite against the RFC's vectors (Appendix J.8.1).
"""

from __future__ import annotations

import hashlib

from curves.base import Point
from curves.errors import CurveError
from curves.hash_to_field import hash_to_field
from curves.secp256k1 import secp256k1

__all__ = ["SUITE_ID", "SECURITY_LENGTH", "P", "map_to_curve", "hash_to_curve", "hash_to_field_secp256k1"]

SUITE_ID = "secp256k1_XMD:SHA-256_SSWU_RO_"
SECURITY_LENGTH = 48
"""L = ceil((ceil(log2(p)) + k) / 8) with k = 128 (RFC 9380, section 8.7)."""

P = 2**256 - 2**32 - 977
"""The base field of secp256k1."""

# E': y^2 = x^3 + A'x + B', 3-isogenous to secp256k1 (RFC 9380, section 8.7).
_A = 0x3F8731ABDD661ADCA08A5558F0F5D272E953D363CB6F0E5D405447C01A444533
_B = 1771
_Z = P - 11

# The 3-isogeny map E' -> secp256k1 (RFC 9380, Appendix E.1), constants k_(i,j) lowest degree first.
_X_NUM = (
    0x8E38E38E38E38E38E38E38E38E38E38E38E38E38E38E38E38E38E38DAAAAA8C7,
    0x07D3D4C80BC321D5B9F315CEA7FD44C5D595D2FC0BF63B92DFFF1044F17C6581,
    0x534C328D23F234E6E2A413DECA25CAECE4506144037C40314ECBD0B53D9DD262,
    0x8E38E38E38E38E38E38E38E38E38E38E38E38E38E38E38E38E38E38DAAAAA88C,
)
_X_DEN = (
    0xD35771193D94918A9CA34CCBB7B640DD86CD409542F8487D9FE6B745781EB49B,
    0xEDADC6F64383DC1DF7C4B2D51B54225406D36B641F5E41BBC52A56612A8C6D14,
    1,
)
_Y_NUM = (
    0x4BDA12F684BDA12F684BDA12F684BDA12F684BDA12F684BDA12F684B8E38E23C,
    0xC75E0C32D5CB7C0FA9D0A54B12A0A6D5647AB046D686DA6FDFFC90FC201D71A3,
    0x29A6194691F91A73715209EF6512E576722830A201BE2018A765E85A9ECEE931,
    0x2F684BDA12F684BDA12F684BDA12F684BDA12F684BDA12F684BDA12F38E38D84,
)
_Y_DEN = (
    0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEFFFFF93B,
    0x7A06534BB8BDB49FD5E9E6632722C2989467C1BFC8E8D978DFB425D2685C2573,
    0x6484AA716545CA2CF3A70C3FA8FE337E0A3D21162F0D6299A7BF8192BFD2A76F,
    1,
)


def _inv0(x: int) -> int:
    """inv0 of RFC 9380, section 4: the inverse, and 0 for 0."""
    return pow(x, P - 2, P)


def _is_square(x: int) -> bool:
    """Euler's criterion (0 counts as a square, RFC 9380 section 4)."""
    return pow(x, (P - 1) // 2, P) in (0, 1)


def _sqrt(x: int) -> int:
    """A square root for p ≡ 3 (mod 4): x^((p+1)/4)."""
    return pow(x, (P + 1) // 4, P)


def _sgn0(x: int) -> int:
    return x % 2


def _poly(coefficients: tuple[int, ...], x: int) -> int:
    """Horner's rule over GF(p), coefficients lowest degree first."""
    result = 0
    for coefficient in reversed(coefficients):
        result = (result * x + coefficient) % P
    return result


def _sswu(u: int) -> tuple[int, int]:
    """``map_to_curve_simple_swu(u)`` onto E' (RFC 9380, section 6.6.2)."""
    zu2 = _Z * u * u % P
    tv1 = _inv0((zu2 * zu2 + zu2) % P)
    x1 = (P - _B) * _inv0(_A) % P * (1 + tv1) % P
    if tv1 == 0:
        x1 = _B * _inv0(_Z * _A % P) % P
    gx1 = (pow(x1, 3, P) + _A * x1 + _B) % P
    if _is_square(gx1):
        x, y = x1, _sqrt(gx1)
    else:
        x = zu2 * x1 % P
        y = _sqrt((pow(x, 3, P) + _A * x + _B) % P)
    if _sgn0(u) != _sgn0(y):
        y = P - y
    return x, y % P


def _iso_map(x: int, y: int) -> tuple[int, int] | None:
    """The 3-isogeny E' -> secp256k1 (Appendix E.1); None where it maps to the identity."""
    x_den, y_den = _poly(_X_DEN, x), _poly(_Y_DEN, x)
    if x_den == 0 or y_den == 0:
        return None
    return _poly(_X_NUM, x) * _inv0(x_den) % P, y * _poly(_Y_NUM, x) % P * _inv0(y_den) % P


def _affine_point(xy: tuple[int, int] | None) -> Point:
    if xy is None:
        return secp256k1.identity()
    x, y = xy
    return secp256k1.decode_point(bytes([2 + (y & 1)]) + x.to_bytes(32, "big"))


def map_to_curve(u: int) -> Point:
    """The SSWU image of ``u`` (0 <= u < p) on E', carried to secp256k1 by the isogeny."""
    if not 0 <= u < P:
        raise CurveError("field element out of range")
    return _affine_point(_iso_map(*_sswu(u)))


def hash_to_field_secp256k1(msg: bytes, count: int, dst: bytes) -> list[int]:
    """``hash_to_field(msg, count)`` into GF(p) with this suite's parameters (section 8.7)."""
    return hash_to_field(msg, count, dst, P, SECURITY_LENGTH, hashlib.sha256)


def hash_to_curve(msg: bytes, dst: bytes) -> Point:
    """``hash_to_curve(msg)`` of RFC 9380, section 3, suite ``secp256k1_XMD:SHA-256_SSWU_RO_``.

    The result may in principle be the identity (probability about 2^-256); callers that must
    refuse it check ``is_identity``.
    """
    u0, u1 = hash_to_field_secp256k1(msg, 2, dst)
    return map_to_curve(u0) + map_to_curve(u1)

"""Hashing to edwards25519: the suite ``edwards25519_XMD:SHA-512_ELL2_RO_`` of RFC 9380 (section 8.5).

``hash_to_curve(msg, DST)`` = ``hash_to_field`` (two elements of GF(2^255 - 19),
expand_message_xmd with SHA-512, L = 48) → Elligator 2 onto curve25519 (section 6.7.1, J = 486662,
K = 1, Z = 2) → the rational map to edwards25519 (Appendix D.1) → the sum of the two points →
``clear_cofactor`` (multiplication by h = 8), which lands in the prime-order group.

This is the plain, branching form of the maps: the inputs hashed here are public (HD account
paths, ``protocols.hd``). Points are added in affine Edwards coordinates here because the two
mapped points need not lie in the prime-order subgroup (``curves.ed25519`` only admits that
subgroup); the cleared sum is then strictly decoded. Checked against RFC 9380, Appendix J.5.1.
"""

from __future__ import annotations

import hashlib

from curves.base import Point
from curves.ed25519 import ed25519
from curves.errors import CurveError
from curves.hash_to_field import hash_to_field

__all__ = ["SUITE_ID", "SECURITY_LENGTH", "P", "map_to_curve", "hash_to_curve", "hash_to_field_ed25519"]

SUITE_ID = "edwards25519_XMD:SHA-512_ELL2_RO_"
SECURITY_LENGTH = 48
"""L = ceil((ceil(log2(p)) + k) / 8) with k = 128 (RFC 9380, section 8.5)."""

P = 2**255 - 19
_J = 486662
_Z = 2
_D = (-121665 * pow(121666, P - 2, P)) % P  # edwards25519: -x^2 + y^2 = 1 + d·x^2·y^2
_SQRT_M1 = pow(2, (P - 1) // 4, P)


def _inv0(x: int) -> int:
    return pow(x, P - 2, P)


def _is_square(x: int) -> bool:
    return pow(x, (P - 1) // 2, P) in (0, 1)


def _sqrt(x: int) -> int:
    """A square root of a square ``x`` for p ≡ 5 (mod 8) (Atkin's variant, RFC 8032 §5.1.3)."""
    root = pow(x, (P + 3) // 8, P)
    if root * root % P != x % P:
        root = root * _SQRT_M1 % P
    if root * root % P != x % P:
        raise CurveError("not a square")
    return root


def _sgn0(x: int) -> int:
    return x % 2


def _with_sign(y: int, sign: int) -> int:
    return y if _sgn0(y) == sign else (P - y) % P


def _sqrt_m486664() -> int:
    """c1 = sqrt(-486664) with sgn0(c1) = 0 (RFC 9380, Appendix D.1)."""
    return _with_sign(_sqrt(P - 486664), 0)


_C1 = _sqrt_m486664()


def _elligator2(u: int) -> tuple[int, int]:
    """``map_to_curve_elligator2(u)`` onto curve25519 (RFC 9380, section 6.7.1), K = 1."""
    x1 = (P - _J) * _inv0((1 + _Z * u * u) % P) % P
    if x1 == 0:
        x1 = P - _J
    gx1 = (pow(x1, 3, P) + _J * x1 * x1 + x1) % P
    if _is_square(gx1):
        return x1, _with_sign(_sqrt(gx1), 1)
    x2 = (P - x1 - _J) % P
    gx2 = (pow(x2, 3, P) + _J * x2 * x2 + x2) % P
    return x2, _with_sign(_sqrt(gx2), 0)


def _to_edwards(s: int, t: int) -> tuple[int, int]:
    """The rational map curve25519 -> edwards25519 (RFC 9380, Appendix D.1; RFC 7748 §4.1):
    v = c1·s/t, w = (s - 1)/(s + 1), with the exceptional cases sent to the identity (0, 1)."""
    den_v, den_w = t % P, (s + 1) % P
    if den_v == 0 or den_w == 0:
        return 0, 1
    return _C1 * s % P * _inv0(den_v) % P, (s - 1) * _inv0(den_w) % P


def _add(a: tuple[int, int], b: tuple[int, int]) -> tuple[int, int]:
    """Affine addition on edwards25519 (complete: the denominators never vanish)."""
    (x1, y1), (x2, y2) = a, b
    k = _D * x1 * x2 * y1 * y2 % P
    return ((x1 * y2 + y1 * x2) * _inv0(1 + k) % P, (y1 * y2 + x1 * x2) * _inv0((1 - k) % P) % P)


def _encode(xy: tuple[int, int]) -> bytes:
    """RFC 8032 §5.1.2: y little-endian with the parity of x in the top bit."""
    x, y = xy
    return (y | (x & 1) << 255).to_bytes(32, "little")


def _clear_cofactor(xy: tuple[int, int]) -> Point:
    for _ in range(3):
        xy = _add(xy, xy)
    if xy == (0, 1):
        return ed25519.identity()
    return ed25519.decode_point(_encode(xy))


def _map(u: int) -> tuple[int, int]:
    if not 0 <= u < P:
        raise CurveError("field element out of range")
    return _to_edwards(*_elligator2(u))


def map_to_curve(u: int) -> Point:
    """The Elligator 2 image of ``u`` on edwards25519 with its cofactor cleared (the NU map)."""
    return _clear_cofactor(_map(u))


def hash_to_field_ed25519(msg: bytes, count: int, dst: bytes) -> list[int]:
    """``hash_to_field(msg, count)`` into GF(p) with this suite's parameters (section 8.5)."""
    return hash_to_field(msg, count, dst, P, SECURITY_LENGTH, hashlib.sha512)


def hash_to_curve(msg: bytes, dst: bytes) -> Point:
    """``hash_to_curve(msg)`` of RFC 9380, section 3, suite ``edwards25519_XMD:SHA-512_ELL2_RO_``:
    a point of the prime-order group (the identity only with probability about 2^-252)."""
    u0, u1 = hash_to_field_ed25519(msg, 2, dst)
    return _clear_cofactor(_add(_map(u0), _map(u1)))

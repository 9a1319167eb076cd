"""Ed25519's prime-order subgroup (RFC 8032) on libsodium's ``crypto_core_ed25519_*`` API.

Points are held as their canonical 32-byte encodings, which is what libsodium operates on.
Decoding accepts only canonical encodings of points on the curve, of prime order L: libsodium's
``crypto_core_ed25519_is_valid_point`` rejects non-canonical bytes, small-order points and
points with a torsion component. The identity (``01 00…00``) is accepted only where the caller
allows it. Scalars are 32 bytes little-endian, below L.

libsodium is called directly through PyNaCl's cffi handle (``nacl._sodium``), not through the
``nacl.bindings`` wrappers: those re-check argument types and lengths and build their output
buffers on every call, about a microsecond per operation, and this module already guarantees
what they check (every raw value is a 32-byte ``bytes`` from a decoding or from libsodium, every
scalar is in [1, L) and encoded here). Each call still checks libsodium's return code and
raises what the wrapper would (``nacl.exceptions.RuntimeError``); decoding raises
``InvalidEncoding``. Output buffers are allocated per call (``ffi.new``, ~0.1 µs): no buffer is
shared, so the group is safe to use from several threads.

:meth:`Ed25519.decode_point_mul` decodes a point and multiplies it in one libsodium call
(``crypto_scalarmult_ed25519_noclamp`` makes the same checks on its input as
``crypto_core_ed25519_is_valid_point``): for a peer's point that is multiplied right away, the
subgroup check then runs once instead of twice.

:meth:`Ed25519.check_encoding` and :meth:`Ed25519.add_encoded` work on encodings, for a caller
that defers a peer point's subgroup check to a later check that implies it (and makes it only
when that later check fails): ``check_encoding`` makes the checks of decoding that need no curve
arithmetic (length, canonical form, not the identity), ``add_encoded`` adds two encodings of
curve points. The one such caller and its argument: ``protocols.frost.round_trip``.
"""

from __future__ import annotations

import operator
from typing import Any

from nacl._sodium import ffi, lib
from nacl.bindings import has_crypto_core_ed25519, has_crypto_scalarmult_ed25519
from nacl.exceptions import RuntimeError as SodiumError
from nacl.exceptions import TypeError as SodiumTypeError
from nacl.exceptions import UnavailableError

from curves.base import Group, Point
from curves.errors import InvalidEncoding

__all__ = ["Ed25519", "ed25519", "L"]

L: int = 2**252 + 27742317777372353535851937790883648493
_P_FIELD = 2**255 - 19
_Y_BITS = 2**255 - 1  # an encoding is y (255 bits, little-endian) and the sign of x in bit 255
_IDENTITY = b"\x01" + b"\x00" * 31
_BASE = bytes.fromhex("5866666666666666666666666666666666666666666666666666666666666666")
_POINT = ffi.typeof("unsigned char[32]")
_NOT_IN_GROUP = "not a canonical ed25519 point of prime order"


class _Unavailable:
    """Stands in for ``lib`` when PyNaCl was built on a minimal libsodium (no point arithmetic)."""

    def __getattr__(self, name: str) -> Any:
        raise UnavailableError("this libsodium build has no ed25519 point arithmetic")


_lib: Any = lib if has_crypto_core_ed25519 and has_crypto_scalarmult_ed25519 else _Unavailable()


def _failed(operation: str) -> SodiumError:
    return SodiumError(f"libsodium {operation} failed")


def _bad_raw() -> SodiumTypeError:
    # cffi passes a shorter ``bytes`` through as a pointer and libsodium reads 32 bytes from it:
    # a raw value of another length (only a hand-built ``Point`` can hold one) must stop here.
    return SodiumTypeError("an ed25519 point must be a 32-byte bytes object")


def _sum(a: bytes, b: bytes) -> bytes | None:
    """libsodium's P + Q on two 32-byte encodings, or None when it refuses one (off the curve)."""
    out = ffi.new(_POINT)
    if _lib.crypto_core_ed25519_add(out, a, b) != 0:
        return None
    return ffi.buffer(out)[:]  # type: ignore[no-any-return]


class Ed25519(Group):
    """The prime-order subgroup of edwards25519 (RFC 8032 §5.1) on libsodium; use :data:`ed25519`.

    Points are 32-byte canonical encodings; scalars are 32 bytes little-endian below ``L``.
    """

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
        return bool(raw == _IDENTITY)

    def _raw_add(self, a: Any, b: Any) -> Any:
        if a == _IDENTITY:
            return b
        if b == _IDENTITY:
            return a
        if len(a) != 32 or len(b) != 32:
            raise _bad_raw()
        total = _sum(a, b)
        if total is None:
            raise _failed("point addition")
        return total

    def _raw_neg(self, a: Any) -> Any:
        if a == _IDENTITY:
            return a
        # Negation flips the sign of x, i.e. bit 255 of the encoding (x != 0 off the identity).
        return a[:31] + bytes([a[31] ^ 0x80])

    def _raw_mul(self, a: Any, k: int) -> Any:
        # k is in [1, L) and a is in the prime-order subgroup, so k·a is never the identity and
        # libsodium (which rejects a zero product and re-checks a) cannot fail.
        if len(a) != 32:
            raise _bad_raw()
        out = ffi.new(_POINT)
        if _lib.crypto_scalarmult_ed25519_noclamp(out, k.to_bytes(32, "little"), a) != 0:
            raise _failed("scalar multiplication")
        return ffi.buffer(out)[:]

    def _raw_base_mul(self, k: int) -> Any:
        out = ffi.new(_POINT)
        if _lib.crypto_scalarmult_ed25519_base_noclamp(out, k.to_bytes(32, "little")) != 0:
            raise _failed("base-point multiplication")
        return ffi.buffer(out)[:]

    def _raw_equal(self, a: Any, b: Any) -> bool:
        return bool(a == b)  # canonical encodings are unique

    def _raw_encode(self, raw: Any) -> bytes:
        return bytes(raw)

    def _raw_decode(self, data: bytes) -> Any:
        # libsodium reads exactly 32 bytes: never hand it anything else.
        if type(data) is not bytes or len(data) != 32:
            raise InvalidEncoding("ed25519 point must be 32 bytes")
        if data == _IDENTITY:
            raise InvalidEncoding("ed25519 identity not allowed here")
        if _lib.crypto_core_ed25519_is_valid_point(data) != 1:
            raise InvalidEncoding(_NOT_IN_GROUP)
        return data

    def check_encoding(self, data: bytes) -> None:
        """The checks of ``decode_point`` that need no curve arithmetic, else ``InvalidEncoding``:
        32 bytes, canonical (y < p whatever the sign bit: libsodium's ``ge25519_is_canonical``)
        and not the identity (y = 1 with either sign bit; libsodium counts both as small order).

        What is left of decoding (on the curve, in the prime-order subgroup) is
        ``crypto_core_ed25519_is_valid_point``'s; ``add_encoded`` refuses a point off the curve.
        """
        if type(data) is not bytes or len(data) != 32:
            raise InvalidEncoding("ed25519 point must be 32 bytes")
        y = int.from_bytes(data, "little") & _Y_BITS
        if y >= _P_FIELD:
            raise InvalidEncoding(_NOT_IN_GROUP)
        if y == 1:
            raise InvalidEncoding("ed25519 identity not allowed here")

    def add_encoded(self, a: bytes, b: bytes) -> bytes:
        """The canonical encoding of P + Q, for encodings of points P and Q of the curve.

        libsodium (``crypto_core_ed25519_add``) decodes both and refuses, as ``InvalidEncoding``,
        a point off the curve; it does not check the canonical form or the subgroup: pass a
        decoded point's encoding, or bytes ``check_encoding`` passed whose subgroup check the
        caller makes later (before anything computed from the sum leaves it).
        """
        if type(a) is not bytes or type(b) is not bytes or len(a) != 32 or len(b) != 32:
            raise InvalidEncoding("ed25519 point must be 32 bytes")
        total = _sum(a, b)
        if total is None:
            raise InvalidEncoding("not a point of the ed25519 curve")
        return total

    def decode_point_mul(self, data: bytes, k: int) -> tuple[Point, Point]:
        """``(P, k·P)`` for ``P = decode_point(data)``: the same strict decoding, one check.

        ``crypto_scalarmult_ed25519_noclamp`` refuses its input point unless it is canonical,
        not of small order (which includes the identity), on the curve and in the prime-order
        subgroup (``ge25519_is_on_main_subgroup``): the checks of
        ``crypto_core_ed25519_is_valid_point``, whose extra on-curve test is implied by a
        successful decompression. Besides a bad point it fails only for a zero scalar or an
        identity product, and for k in [1, L) and P of order L, k·P is never the identity:
        so the call fails exactly when decoding would. For k ≡ 0 the point is decoded on its
        own, and the product is the identity.
        """
        if not isinstance(data, (bytes, bytearray)) or len(data) != 32:
            raise InvalidEncoding("ed25519 point must be 32 bytes")
        data = bytes(data)
        k = operator.index(k) % L
        if k == 0:
            return self.decode_point(data), self.identity()
        out = ffi.new(_POINT)
        if _lib.crypto_scalarmult_ed25519_noclamp(out, k.to_bytes(32, "little"), data) != 0:
            if data == _IDENTITY:
                raise InvalidEncoding("ed25519 identity not allowed here")
            raise InvalidEncoding(_NOT_IN_GROUP)
        return Point(self, data), Point(self, ffi.buffer(out)[:])


ed25519 = Ed25519()

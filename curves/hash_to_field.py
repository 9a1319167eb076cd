"""Hashing to a prime field (RFC 9380, section 5): ``expand_message_xmd`` and ``hash_to_field``.

These are the generic, curve-independent halves of hash-to-curve; :mod:`curves.p256` builds
``hash_to_curve`` for the suite ``P256_XMD:SHA-256_SSWU_RO_`` on top of them, and
:mod:`protocols.oprf` uses :func:`hash_to_field` with the group order as modulus for its
``HashToScalar``. Only Merkle-Damgård hashes are supported (``expand_message_xmd``, section
5.3.1); the XOF variant is not needed here.

Byte strings are the only inputs; every length limit of the RFC is enforced with
``ValueError`` (a programming error of the caller, never a property of peer data).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Protocol

__all__ = ["expand_message_xmd", "hash_to_field", "OVERSIZE_DST_PREFIX"]

OVERSIZE_DST_PREFIX = b"H2C-OVERSIZE-DST-"
"""RFC 9380, section 5.3.3: a DST longer than 255 bytes is replaced by H(prefix ‖ DST)."""


class _HashObject(Protocol):
    """The part of a ``hashlib`` hash object used here."""

    @property
    def digest_size(self) -> int: ...

    @property
    def block_size(self) -> int: ...

    def digest(self) -> bytes: ...


HashFactory = Callable[..., _HashObject]
"""A ``hashlib`` constructor such as ``hashlib.sha256``."""


def _i2osp(value: int, length: int) -> bytes:
    """I2OSP (RFC 8017, section 4.1): big-endian, exactly ``length`` bytes."""
    return value.to_bytes(length, "big")


def _strxor(a: bytes, b: bytes) -> bytes:
    return bytes(x ^ y for x, y in zip(a, b))


def _reduce_dst(dst: bytes, hash_factory: HashFactory) -> bytes:
    """RFC 9380, section 5.3.3: oversize DSTs are hashed down, other DSTs are used as they are."""
    if len(dst) > 255:
        return hash_factory(OVERSIZE_DST_PREFIX + dst).digest()
    return dst


def expand_message_xmd(
    msg: bytes, dst: bytes, len_in_bytes: int, hash_factory: HashFactory = hashlib.sha256
) -> bytes:
    """``expand_message_xmd(msg, DST, len_in_bytes)`` of RFC 9380, section 5.3.1.

    ``hash_factory`` is the Merkle-Damgård hash H (SHA-256 by default); its block size gives
    ``s_in_bytes`` and its digest size ``b_in_bytes``.
    """
    if not isinstance(msg, (bytes, bytearray)) or not isinstance(dst, (bytes, bytearray)):
        raise TypeError("msg and dst must be bytes")
    dst = _reduce_dst(bytes(dst), hash_factory)
    probe = hash_factory()
    b_in_bytes, s_in_bytes = probe.digest_size, probe.block_size
    ell = -(-len_in_bytes // b_in_bytes)
    if ell > 255 or len_in_bytes > 65535 or len_in_bytes <= 0:
        raise ValueError("expand_message_xmd: requested length out of range")
    dst_prime = dst + _i2osp(len(dst), 1)
    msg_prime = _i2osp(0, s_in_bytes) + bytes(msg) + _i2osp(len_in_bytes, 2) + b"\x00" + dst_prime
    b_0 = hash_factory(msg_prime).digest()
    blocks = [hash_factory(b_0 + b"\x01" + dst_prime).digest()]
    for i in range(2, ell + 1):
        blocks.append(hash_factory(_strxor(b_0, blocks[-1]) + _i2osp(i, 1) + dst_prime).digest())
    return b"".join(blocks)[:len_in_bytes]


def hash_to_field(
    msg: bytes,
    count: int,
    dst: bytes,
    modulus: int,
    security_length: int,
    hash_factory: HashFactory = hashlib.sha256,
) -> list[int]:
    """``hash_to_field(msg, count)`` of RFC 9380, section 5.2, for a prime field (m = 1).

    ``security_length`` is the parameter L = ceil((ceil(log2(p)) + k) / 8); each of the
    ``count`` elements is OS2IP of L uniform bytes reduced modulo ``modulus``.
    """
    if count <= 0 or security_length <= 0:
        raise ValueError("hash_to_field: count and L must be positive")
    uniform = expand_message_xmd(msg, dst, count * security_length, hash_factory)
    return [
        int.from_bytes(uniform[i * security_length : (i + 1) * security_length], "big") % modulus
        for i in range(count)
    ]

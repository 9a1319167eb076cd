"""One interface for a prime-order group, with thin per-curve implementations.

A :class:`Group` knows its order, its generator, how to encode and strictly decode points and
scalars, and how to sample and hash to scalars. A :class:`Point` is an immutable element of the
prime-order group; the arithmetic (``P + Q``, ``-P``, ``k * P``) dispatches to its group.
Scalars are plain ``int`` values reduced modulo ``group.order``; secret scalars are wrapped in
:class:`SecretScalar`, whose ``repr`` never shows the value.

Decoding is the one place where bytes from outside become group elements, so every check lives
there: exact length, canonical form, on the curve, in the prime-order subgroup, and the identity
only where the caller allows it.
"""

from __future__ import annotations

import hashlib
import hmac
import operator
from abc import ABC, abstractmethod
from typing import Any

from curves import randomness
from curves.errors import CurveError, InvalidEncoding

__all__ = ["Group", "Point", "SecretScalar"]


class Group(ABC):
    """A prime-order group: the parameters and the operations on its internal representation."""

    name: str
    order: int
    point_length: int
    scalar_length: int
    scalar_byteorder: str

    # --- operations on the backend representation, implemented per curve -------------------
    @abstractmethod
    def _raw_generator(self) -> Any: ...

    @abstractmethod
    def _raw_identity(self) -> Any: ...

    @abstractmethod
    def _raw_is_identity(self, raw: Any) -> bool: ...

    @abstractmethod
    def _raw_add(self, a: Any, b: Any) -> Any: ...

    @abstractmethod
    def _raw_neg(self, a: Any) -> Any: ...

    @abstractmethod
    def _raw_mul(self, a: Any, k: int) -> Any: ...

    @abstractmethod
    def _raw_base_mul(self, k: int) -> Any: ...

    @abstractmethod
    def _raw_equal(self, a: Any, b: Any) -> bool: ...

    @abstractmethod
    def _raw_encode(self, raw: Any) -> bytes: ...

    @abstractmethod
    def _raw_decode(self, data: bytes) -> Any:
        """Decode a non-identity point, or raise ``InvalidEncoding``."""

    # --- public interface ---------------------------------------------------------------------
    def generator(self) -> Point:
        """The standard base point."""
        return Point(self, self._raw_generator())

    def identity(self) -> Point:
        """The neutral element."""
        return Point(self, self._raw_identity())

    def base_mul(self, k: int) -> Point:
        """``k * G`` (faster than ``k * generator()`` where the backend has base-point tables)."""
        k %= self.order
        if k == 0:
            return self.identity()
        return Point(self, self._raw_base_mul(k))

    def decode_point(self, data: bytes, *, allow_identity: bool = False) -> Point:
        """Strictly decode a canonical point encoding of exactly ``point_length`` bytes."""
        if not isinstance(data, (bytes, bytearray)) or len(data) != self.point_length:
            raise InvalidEncoding(f"{self.name} point must be {self.point_length} bytes")
        if type(data) is not bytes:
            data = bytes(data)
        if allow_identity and hmac.compare_digest(data, self.identity_encoding()):
            return self.identity()
        return Point(self, self._raw_decode(data))

    def identity_encoding(self) -> bytes:
        """The bytes that stand for the identity where a protocol allows it."""
        return self._raw_encode(self._raw_identity())

    def encode_scalar(self, k: int) -> bytes:
        """Fixed-length encoding of a scalar in [0, order)."""
        if not 0 <= k < self.order:
            raise CurveError("scalar out of range")
        return k.to_bytes(self.scalar_length, self.scalar_byteorder)  # type: ignore[arg-type]

    def decode_scalar(self, data: bytes, *, nonzero: bool = False) -> int:
        """Strictly decode a scalar: exact length and value below the order (no reduction)."""
        if not isinstance(data, (bytes, bytearray)) or len(data) != self.scalar_length:
            raise InvalidEncoding(f"{self.name} scalar must be {self.scalar_length} bytes")
        k = int.from_bytes(data, self.scalar_byteorder)  # type: ignore[arg-type]
        if k >= self.order:
            raise InvalidEncoding(f"{self.name} scalar not below the group order")
        if nonzero and k == 0:
            raise InvalidEncoding(f"{self.name} scalar must be non-zero")
        return k

    def random_scalar(self) -> int:
        """A uniform non-zero scalar (``curves.randomness``: the OS CSPRNG, or the keyed stream of
        a ``derived`` scope)."""
        return randomness.randbelow(self.order - 1) + 1

    def hash_to_scalar(self, tag: bytes, *parts: bytes) -> int:
        """SHA-512 over the length-prefixed tag and parts, reduced mod the order (bias < 2^-250)."""
        h = hashlib.sha512()
        for item in (tag, *parts):
            h.update(len(item).to_bytes(8, "big"))
            h.update(item)
        return int.from_bytes(h.digest(), "big") % self.order

    def __repr__(self) -> str:
        return f"<group {self.name}>"


class Point:
    """An immutable element of a prime-order group."""

    __slots__ = ("group", "_raw", "_encoded")

    def __init__(self, group: Group, raw: Any) -> None:
        self.group = group
        self._raw = raw
        self._encoded: bytes | None = None

    @property
    def is_identity(self) -> bool:
        """Whether this is the neutral element (which has no wire encoding on secp256k1 and P-256)."""
        return self.group._raw_is_identity(self._raw)

    def to_bytes(self) -> bytes:
        """Canonical encoding (33-byte compressed SEC1 on secp256k1, 32 bytes on ed25519)."""
        if self._encoded is None:
            self._encoded = self.group._raw_encode(self._raw)
        return self._encoded

    def _same_group(self, other: Point) -> None:
        if not isinstance(other, Point) or other.group is not self.group:
            raise CurveError("points of different groups")

    def __add__(self, other: Point) -> Point:
        if not isinstance(other, Point) or other.group is not self.group:  # _same_group, inlined
            raise CurveError("points of different groups")
        return Point(self.group, self.group._raw_add(self._raw, other._raw))

    def __sub__(self, other: Point) -> Point:
        self._same_group(other)
        return Point(self.group, self.group._raw_add(self._raw, self.group._raw_neg(other._raw)))

    def __neg__(self) -> Point:
        return Point(self.group, self.group._raw_neg(self._raw))

    def __mul__(self, k: int) -> Point:
        try:
            k = operator.index(k) % self.group.order
        except TypeError:
            return NotImplemented
        if k == 0 or self.is_identity:
            return self.group.identity()
        return Point(self.group, self.group._raw_mul(self._raw, k))

    __rmul__ = __mul__

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Point) or other.group is not self.group:
            return NotImplemented
        return self.group._raw_equal(self._raw, other._raw)

    def __hash__(self) -> int:
        return hash((self.group.name, self.to_bytes()))

    def __repr__(self) -> str:
        return f"Point({self.group.name}, {self.to_bytes().hex()})"


class SecretScalar:
    """A secret scalar of a group: never shown by ``repr``/``str``, compared in constant time."""

    __slots__ = ("group", "_value")
    group: Group
    _value: int

    def __init__(self, group: Group, value: int) -> None:
        if not isinstance(value, int) or not 0 <= value < group.order:
            raise CurveError("secret scalar out of range")
        object.__setattr__(self, "group", group)
        object.__setattr__(self, "_value", value)

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError("SecretScalar is immutable")

    @classmethod
    def random(cls, group: Group) -> SecretScalar:
        """A uniform non-zero secret scalar of ``group`` (``Group.random_scalar``)."""
        return cls(group, group.random_scalar())

    @property
    def value(self) -> int:
        """The secret value; use only inside protocol arithmetic."""
        return self._value

    def public_point(self) -> Point:
        """``value·G``: the public point of this secret."""
        return self.group.base_mul(self._value)

    def to_bytes(self) -> bytes:
        """Explicit serialisation of the secret (the only way out of this type)."""
        return self.group.encode_scalar(self._value)

    @classmethod
    def from_bytes(cls, group: Group, data: bytes) -> SecretScalar:
        """Strictly decode a secret scalar (``Group.decode_scalar``); raises ``InvalidEncoding``."""
        try:
            return cls(group, group.decode_scalar(data))
        except InvalidEncoding:
            raise InvalidEncoding("invalid secret scalar encoding") from None

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, SecretScalar) or other.group is not self.group:
            return NotImplemented
        return hmac.compare_digest(self.to_bytes(), other.to_bytes())

    def __hash__(self) -> int:
        raise TypeError("SecretScalar is not hashable")

    def __repr__(self) -> str:
        return f"SecretScalar({self.group.name}, <redacted>)"

    __str__ = __repr__

    def __reduce__(self) -> Any:
        raise TypeError("SecretScalar is serialised only through to_bytes()")

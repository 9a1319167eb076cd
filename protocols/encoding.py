"""Strict decoding of payload fields into typed values.

Every value a peer sends passes through one of these helpers before any arithmetic touches it;
each raises ``InvalidMessage`` (never a bare ``ValueError``) on anything but the canonical form:
lowercase hex of the exact length, canonical points of the prime-order group (no identity unless
allowed), scalars below the group order, non-negative integers without leading zero bytes.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from curves import Group, InvalidEncoding, Point
from protocols.errors import InvalidMessage
from protocols.rounds import parse_hex

__all__ = [
    "base58_encode",
    "base58check_encode",
    "require_keys",
    "get_bytes",
    "get_point",
    "get_points",
    "get_scalar",
    "get_nat",
    "get_int",
    "get_list",
    "encode_nat",
    "encode_int",
    "encode_points",
]


def require_keys(payload: Mapping[str, Any], keys: Iterable[str]) -> None:
    """Reject payloads with missing or unknown fields."""
    expected = set(keys)
    if not isinstance(payload, Mapping) or set(payload) != expected:
        raise InvalidMessage("payload must have exactly the fields " + ",".join(sorted(expected)))


def get_bytes(payload: Mapping[str, Any], key: str, length: int | None = None) -> bytes:
    """Lowercase hex bytes, optionally of an exact length."""
    value = parse_hex(payload.get(key), key)
    if length is not None and len(value) != length:
        raise InvalidMessage(f"{key} must be {length} bytes")
    return value


def _point(group: Group, data: Any, name: str, allow_identity: bool) -> Point:
    raw = parse_hex(data, name)
    try:
        return group.decode_point(raw, allow_identity=allow_identity)
    except InvalidEncoding as exc:
        raise InvalidMessage(f"{name}: {exc}") from None


def get_point(payload: Mapping[str, Any], key: str, group: Group, *, allow_identity: bool = False) -> Point:
    """A canonical point of the prime-order group; the identity only if allowed."""
    return _point(group, payload.get(key), key, allow_identity)


def get_list(payload: Mapping[str, Any], key: str, length: int | None = None) -> Sequence[Any]:
    """``payload[key]`` as a list (of exactly ``length`` items if given); raises ``InvalidMessage``."""
    value = payload.get(key)
    if not isinstance(value, (list, tuple)):
        raise InvalidMessage(f"{key} must be a list")
    if length is not None and len(value) != length:
        raise InvalidMessage(f"{key} must have {length} items")
    return value


def get_points(
    payload: Mapping[str, Any], key: str, group: Group, length: int, *, allow_identity: bool = False
) -> list[Point]:
    """A list of exactly ``length`` canonical points."""
    items = get_list(payload, key, length)
    return [_point(group, item, f"{key}[{i}]", allow_identity) for i, item in enumerate(items)]


def get_scalar(payload: Mapping[str, Any], key: str, group: Group, *, nonzero: bool = False) -> int:
    """A scalar in its fixed-length encoding, below the group order."""
    raw = get_bytes(payload, key, group.scalar_length)
    try:
        return group.decode_scalar(raw, nonzero=nonzero)
    except InvalidEncoding as exc:
        raise InvalidMessage(f"{key}: {exc}") from None


def encode_nat(value: int) -> str:
    """A non-negative integer as minimal lowercase hex (``"00"`` for zero)."""
    if value < 0:
        raise InvalidMessage("negative value where a natural number is required")
    return value.to_bytes(max(1, (value.bit_length() + 7) // 8), "big").hex()


def _nat(data: Any, name: str, max_bits: int) -> int:
    raw = parse_hex(data, name)
    if not raw or (len(raw) > 1 and raw[0] == 0):
        raise InvalidMessage(f"{name} is not a minimal encoding")
    value = int.from_bytes(raw, "big")
    if value.bit_length() > max_bits:
        raise InvalidMessage(f"{name} is too large")
    return value


def get_nat(payload: Mapping[str, Any], key: str, max_bits: int) -> int:
    """A non-negative integer of at most ``max_bits`` bits, in minimal hex."""
    return _nat(payload.get(key), key, max_bits)


def encode_int(value: int) -> str:
    """A signed integer: ``"-"`` followed by the minimal hex of the magnitude when negative."""
    return ("-" if value < 0 else "") + encode_nat(abs(value))


def get_int(payload: Mapping[str, Any], key: str, max_bits: int) -> int:
    """A signed integer of magnitude below ``2^max_bits`` (encoded by ``encode_int``)."""
    data = payload.get(key)
    if isinstance(data, str) and data.startswith("-"):
        value = _nat(data[1:], key, max_bits)
        if value == 0:
            raise InvalidMessage(f"{key}: negative zero")
        return -value
    return _nat(data, key, max_bits)


def encode_points(points: Iterable[Point]) -> list[str]:
    """Points as hex strings of their canonical encodings (a payload list)."""
    return [p.to_bytes().hex() for p in points]


# --- Base58 and Base58Check (Bitcoin's alphabet; BIP32 serialisation, Bitcoin and Tron addresses) --
_B58_ALPHABET = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"


def base58_encode(data: bytes) -> str:
    """Bitcoin-alphabet base58; each leading zero byte becomes a leading ``1``."""
    number = int.from_bytes(data, "big")
    digits = []
    while number:
        number, rem = divmod(number, 58)
        digits.append(_B58_ALPHABET[rem])
    zeros = len(data) - len(data.lstrip(b"\0"))
    return "1" * zeros + "".join(reversed(digits))


def base58check_encode(payload: bytes) -> str:
    """Base58Check: base58 of payload ‖ the first 4 bytes of SHA-256(SHA-256(payload))."""
    checksum = hashlib.sha256(hashlib.sha256(payload).digest()).digest()[:4]
    return base58_encode(payload + checksum)

"""Helpers shared by the adapters: importing a chain library, strict field decoding.

Every helper raises ``InputInvalid`` naming the field; none coerces (a ``bool`` is not an integer,
a float or a numeric string is not an amount), so a request means exactly one thing.
"""

from __future__ import annotations

import importlib
from collections.abc import Collection, Mapping
from types import ModuleType
from typing import Any

from mpc.errors import ChainLibraryMissing, InputInvalid

__all__ = ["import_library", "require_mapping", "require_fields", "require_int", "require_hex_bytes"]


def import_library(module: str, *, distribution: str, extra: str) -> ModuleType:
    """Import a chain library, or raise ``ChainLibraryMissing`` naming the extra to install."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise ChainLibraryMissing(
            f"{distribution} is not installed (needed by mpc.chains.{extra}); install portal-mpc[{extra}]"
        ) from exc


def require_mapping(value: Any, name: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping) or not all(isinstance(key, str) for key in value):
        raise InputInvalid(f"{name} must be a mapping with string keys")
    return value


def require_fields(value: Mapping[str, Any], name: str, required: Collection[str], optional: Collection[str] = ()) -> None:
    """Refuse missing and unknown fields: an unknown field is a request we do not understand."""
    missing = sorted(set(required) - set(value))
    if missing:
        raise InputInvalid(f"{name} is missing {', '.join(missing)}")
    unknown = sorted(set(value) - set(required) - set(optional))
    if unknown:
        raise InputInvalid(f"{name} has unknown fields {', '.join(unknown)}")


def require_int(value: Any, name: str, *, minimum: int = 0, maximum: int | None = None) -> int:
    """A Python ``int`` (not ``bool``) in [minimum, maximum]."""
    if not isinstance(value, int) or isinstance(value, bool):
        raise InputInvalid(f"{name} must be an integer, not {type(value).__name__}")
    if value < minimum or (maximum is not None and value > maximum):
        bound = f"[{minimum}, {maximum}]" if maximum is not None else f">= {minimum}"
        raise InputInvalid(f"{name} must be in {bound}")
    return value


def require_hex_bytes(value: Any, name: str, *, length: int | None = None, prefix: bool = False) -> bytes:
    """Bytes from an even-length hex string (``0x``-prefixed when ``prefix``), or bytes as they are."""
    if isinstance(value, (bytes, bytearray)):
        data = bytes(value)
    elif isinstance(value, str):
        text = value
        if prefix:
            if not text.startswith("0x"):
                raise InputInvalid(f"{name} must be a 0x-prefixed hex string")
            text = text[2:]
        if len(text) % 2 or any(c not in "0123456789abcdefABCDEF" for c in text):
            raise InputInvalid(f"{name} must be an even-length hex string")
        data = bytes.fromhex(text)
    else:
        raise InputInvalid(f"{name} must be bytes or a hex string")
    if length is not None and len(data) != length:
        raise InputInvalid(f"{name} must be {length} bytes")
    return data

"""HD paths: ``m/44'/60'/0'/0/5`` parsed into the hardened account path and the public part.

A path is ``m`` followed by at most ``MAX_DEPTH`` levels ``/i`` with 0 <= i < 2^31; ``'`` or ``h``
after an index marks it hardened (index + 2^31, as in BIP32). All hardened indices come first:
they form the *account path*, derived jointly (``protocols.hd.vrf``); the indices after it are
derived publicly (``protocols.hd.bip32`` on secp256k1, ``protocols.hd.ed25519_derivation`` on
ed25519). A hardened index after a non-hardened one cannot be derived by either side alone and is
refused, like any malformed path, with ``InvalidPath``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cached_property, lru_cache

from protocols.errors import UsageError

__all__ = ["HARDENED", "MAX_DEPTH", "InvalidPath", "HDPath", "parse_path", "format_indices"]

HARDENED = 0x80000000
MAX_DEPTH = 10
_MAX_TEXT = 2 + MAX_DEPTH * 12
_LEVEL = re.compile(r"^(0|[1-9][0-9]{0,9})(['h]?)$")


class InvalidPath(UsageError):
    """A derivation path that is malformed, too deep, or has a hardened index below the account."""


@dataclass(frozen=True)
class HDPath:
    """A parsed path: ``account`` (the hardened indices, each with the hardened bit set) and
    ``children`` (the non-hardened indices below the account)."""

    account: tuple[int, ...]
    children: tuple[int, ...]

    @cached_property
    def account_path(self) -> str:
        """The canonical text of the account path, e.g. ``m/44'/60'/0'`` (``'`` for hardened)."""
        return format_indices(self.account)

    @cached_property
    def _text(self) -> str:
        return format_indices(self.account + self.children)

    def __str__(self) -> str:
        """The canonical text of the whole path, e.g. ``m/44'/60'/0'/0/5``."""
        return self._text


def format_indices(indices: tuple[int, ...]) -> str:
    """The canonical text of a list of BIP32 indices (hardened ones written ``i'``)."""
    parts = ["m"] + [f"{i - HARDENED}'" if i >= HARDENED else str(i) for i in indices]
    return "/".join(parts)


def _level(text: str) -> int:
    match = _LEVEL.match(text)
    if match is None:
        raise InvalidPath("each level of a path is an index below 2^31, optionally followed by ' or h")
    index = int(match.group(1))
    if index >= HARDENED:
        raise InvalidPath("a path index must be below 2^31 (the hardened bit is written ' or h)")
    return index + HARDENED if match.group(2) else index


def parse_path(path: object) -> HDPath:
    """Parse ``path`` strictly (``InvalidPath`` for anything but ``m[/i[']...]``, at most
    ``MAX_DEPTH`` levels, hardened levels first)."""
    if not isinstance(path, str) or not path.isascii() or len(path) > _MAX_TEXT:
        raise InvalidPath("a path is a short ASCII string such as m/44'/60'/0'/0/5")
    return _parse_text(str.__str__(path))  # a plain str: a subclass could hash or compare otherwise


@lru_cache(maxsize=1024)
def _parse_text(path: str) -> HDPath:
    """``parse_path`` of a short ASCII string, cached (a pure function: signing at a path parses
    it on both sides every time); a refused path raises and is not cached."""
    parts = path.split("/")
    if parts[0] != "m":
        raise InvalidPath("a path starts with m")
    indices = tuple(_level(part) for part in parts[1:])
    if len(indices) > MAX_DEPTH:
        raise InvalidPath(f"a path has at most {MAX_DEPTH} levels")
    split = next((n for n, i in enumerate(indices) if i < HARDENED), len(indices))
    account, children = indices[:split], indices[split:]
    if any(i >= HARDENED for i in children):
        raise InvalidPath("a hardened index after a non-hardened one cannot be derived: hardened levels come first")
    return HDPath(account, children)

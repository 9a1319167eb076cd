"""The account of a hardened path: its curve point, its tweak and chain code, its public key.

The account path (the hardened prefix of an HD path, ``protocols.hd.paths``) is hashed to a point
P with the curve's RFC 9380 suite under the domain tag ``ACCOUNT_DST_PREFIX`` ‖ suite id. With the
joint derivation key k (``protocols.hd.keys``), Z = k·P (``protocols.hd.vrf``) gives

    δ = SHA-512(len-prefixed "portal-mpc/hd/account-tweak/v1", curve, account path, Z) mod q
    c = SHA-512(len-prefixed "portal-mpc/hd/account-chain-code/v1", curve, account path, Z)[0:32]

and the account key Q + δ·G for the wallet's root key Q. Below the account the derivation is
public (BIP32 ``CKDpub`` on secp256k1, docs/hd.md's rule on ed25519); the whole path's tweak is δ
plus the children's tweaks, which the custodian adds to its share when it signs.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field

from curves import Group, Point, group_by_name
from curves import ed25519_h2c, secp256k1_h2c
from protocols.encoding import get_bytes, get_point, get_scalar, require_keys
from protocols.errors import InvalidMessage, UsageError
from protocols.hd.bip32 import derive_public as bip32_derive_public
from protocols.hd.bip32 import serialize_xpub
from protocols.hd.ed25519_derivation import derive_public as ed25519_derive_public
from protocols.hd.ed25519_derivation import serialize_extended
from protocols.hd.paths import parse_path
from protocols.rounds import parse_strict_json

__all__ = ["ACCOUNT_DST_PREFIX", "account_point", "account_tweak", "AccountKey", "CURVE_NAMES"]

ACCOUNT_DST_PREFIX = b"portal-mpc-hd-v1-with-"
CURVE_NAMES = ("secp256k1", "ed25519")
_TWEAK_TAG = b"portal-mpc/hd/account-tweak/v1"
_CHAIN_TAG = b"portal-mpc/hd/account-chain-code/v1"


def _group(curve: str) -> Group:
    if curve not in CURVE_NAMES:
        raise UsageError(f"HD derivation runs on {' and '.join(CURVE_NAMES)}, not {curve!r}")
    return group_by_name(curve)


def canonical_account(account_path: str) -> str:
    """The canonical text of an account path (hardened levels only; ``UsageError`` otherwise)."""
    parsed = parse_path(account_path)
    if parsed.children:
        raise UsageError("an account path has hardened levels only")
    return parsed.account_path


def account_point(curve: str, account_path: str) -> Point:
    """P = hash_to_curve(account path) with the curve's RFC 9380 suite and this engine's DST."""
    _group(curve)
    path = canonical_account(account_path).encode()
    if curve == "secp256k1":
        point = secp256k1_h2c.hash_to_curve(path, ACCOUNT_DST_PREFIX + secp256k1_h2c.SUITE_ID.encode())
    else:
        point = ed25519_h2c.hash_to_curve(path, ACCOUNT_DST_PREFIX + ed25519_h2c.SUITE_ID.encode())
    if point.is_identity:  # probability about 2^-252: no account at this path
        raise UsageError("this account path hashes to the identity")
    return point


def _hash(tag: bytes, *parts: bytes) -> bytes:
    h = hashlib.sha512()
    for item in (tag, *parts):
        h.update(len(item).to_bytes(8, "big") + item)
    return h.digest()


def account_tweak(curve: str, account_path: str, z: Point) -> tuple[int, bytes]:
    """(δ, c) of the account from the VRF output Z = k·P (module docstring)."""
    group = _group(curve)
    parts = (curve.encode(), canonical_account(account_path).encode(), z.to_bytes())
    return int.from_bytes(_hash(_TWEAK_TAG, *parts), "big") % group.order, _hash(_CHAIN_TAG, *parts)[:32]


@dataclass(frozen=True)
class AccountKey:
    """One account: its curve, canonical account path, tweak δ (from the root key), chain code c
    and public key (root + δ·G). Public values, but they link the account to the wallet: kept by
    both parties, never published except as the extended public key."""

    curve: str
    account_path: str
    tweak: int = field(repr=False)  # known to both parties, never published
    chain_code: bytes = field(repr=False)
    public_key: Point

    @classmethod
    def from_root(cls, curve: str, account_path: str, root: Point, tweak: int, chain_code: bytes) -> AccountKey:
        """The account of ``root`` with the VRF's (δ, c)."""
        group = _group(curve)
        key = root + group.base_mul(tweak)
        if key.is_identity:
            raise UsageError("the account key is the identity")
        return cls(curve, canonical_account(account_path), tweak, chain_code, key)

    @property
    def group(self) -> Group:
        """The account's group."""
        return _group(self.curve)

    def child(self, children: tuple[int, ...]) -> tuple[Point, int]:
        """The key at ``children`` below the account and the whole tweak from the root (δ + the
        children's tweaks, mod q); ``InvalidChild`` for a child that does not exist."""
        derive = bip32_derive_public if self.curve == "secp256k1" else ed25519_derive_public
        key, _, tweak = derive(self.public_key, self.chain_code, children)
        return key, (self.tweak + tweak) % self.group.order

    def extended_public_key(self) -> str:
        """secp256k1: the BIP32 ``xpub`` (depth = hardened levels, parent fingerprint 0, child
        number = the last hardened index); ed25519: hex of A ‖ c (docs/hd.md)."""
        if self.curve == "ed25519":
            return serialize_extended(self.public_key, self.chain_code)
        account = parse_path(self.account_path).account
        return serialize_xpub(self.public_key, self.chain_code, depth=len(account),
                                    child_number=account[-1] if account else 0)

    def to_bytes(self) -> bytes:
        """Canonical JSON."""
        obj = {"kind": "hd/account", "v": 1, "curve": self.curve, "path": self.account_path,
               "tweak": self.group.encode_scalar(self.tweak).hex(), "c": self.chain_code.hex(),
               "A": self.public_key.to_bytes().hex()}
        return json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()

    @classmethod
    def from_bytes(cls, data: bytes) -> AccountKey:
        """Strictly decode ``to_bytes`` output (``InvalidMessage``)."""
        obj = parse_strict_json(data)
        require_keys(obj, ("kind", "v", "curve", "path", "tweak", "c", "A"))
        if obj["kind"] != "hd/account" or obj["v"] != 1 or obj["curve"] not in CURVE_NAMES:
            raise InvalidMessage("not a version-1 HD account")
        group = group_by_name(obj["curve"])
        try:
            path = canonical_account(obj["path"])
        except UsageError:
            raise InvalidMessage("malformed account path") from None
        return cls(obj["curve"], path, get_scalar(obj, "tweak", group), get_bytes(obj, "c", 32),
                   get_point(obj, "A", group))


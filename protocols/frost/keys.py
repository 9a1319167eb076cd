"""FROST key shares, their byte format, and the trusted dealer (RFC 9591 App. C).

A :class:`KeyShare` is what one participant keeps after key generation (DKG, dealer, refresh or
resharing): its identifier, the threshold t, the identifiers of all n participants, its secret
signing share s_i, the verifying share Y_k = s_k·B of every participant and the group public
key PK. The verifying shares are public; signers use them to check each other's signature shares.

Byte format of ``KeyShare.to_bytes()`` (version 1; all integers big-endian):

    magic "FROSTks" ‖ version 0x01 ‖ identifier u32 ‖ threshold u32 ‖ n u32
    ‖ n × (identifier u32 ‖ verifying share, 32 bytes), identifiers strictly increasing
    ‖ signing share (32 bytes, little-endian scalar) ‖ group public key (32 bytes)

``KeyShare.from_bytes`` accepts exactly this and nothing else: exact length, canonical scalar
and points (prime-order, no identity), 2 ≤ t ≤ n, own identifier listed, s_i·B equal to the
own verifying share, and all n verifying shares on one polynomial of degree exactly t−1 whose
value at 0 is PK.

The dealer (App. C.1 ``trusted_dealer_keygen`` / ``secret_share_shard``) splits a fresh or a
given secret with Shamir's scheme; App. C.2 ``vss_commit`` gives the Feldman commitment whose
evaluations are the verifying shares.
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from types import MappingProxyType

from curves import InvalidEncoding, Point, SecretScalar
from protocols.errors import InvalidMessage, UsageError, require_instance
from protocols.frost.ciphersuite import FROST_ED25519_SHA512 as SUITE
from protocols.sharing import feldman_commit, feldman_evaluate, shamir_split
from protocols.state import register_bytes

__all__ = [
    "KeyShare",
    "trusted_dealer_keygen",
    "split_secret",
    "secret_scalar_from_seed",
    "check_identifiers",
    "check_threshold",
    "MIN_THRESHOLD",
]

_MAGIC = b"FROSTks\x01"
_HEADER = struct.Struct(">III")
_ENTRY = 4 + 32
MAX_PARTICIPANTS = 1024
MIN_THRESHOLD = 2  # RFC 9591: MIN_PARTICIPANTS ≥ 2 (t = 1 would give every participant the whole key)


def check_identifiers(identifiers: Iterable[int],
                      duplicate: str = "duplicate identifier {}: every participant needs its own") -> tuple[int, ...]:
    """Sorted, distinct identifiers in [1, 2^32), at most ``MAX_PARTICIPANTS`` (else
    ``UsageError``; a repeated one named by ``duplicate``, formatted with it); a threshold over
    them is ``check_threshold``'s."""
    if isinstance(identifiers, (str, bytes)) or not isinstance(identifiers, Iterable):
        raise UsageError(f"identifiers must be a collection of integers, not {type(identifiers).__name__}")
    ids = tuple(identifiers)
    if any(not isinstance(i, int) or isinstance(i, bool) or not 1 <= i < 2**32 for i in ids):
        raise UsageError("identifiers must be integers in [1, 2^32)")
    ids = tuple(sorted(ids))
    if not ids:
        raise UsageError("identifiers must not be empty")
    if len(ids) > MAX_PARTICIPANTS:
        raise UsageError(f"at most {MAX_PARTICIPANTS} participants")
    repeated = next((a for a, b in zip(ids, ids[1:]) if a == b), None)
    if repeated is not None:
        raise UsageError(duplicate.format(repeated))
    return ids


def check_threshold(threshold: int, n: int) -> None:
    """RFC 9591 (§5, App. C.1 ``secret_share_shard``): 2 ≤ MIN_PARTICIPANTS ≤ MAX_PARTICIPANTS."""
    if not isinstance(threshold, int) or isinstance(threshold, bool):
        raise UsageError(f"the threshold must be an integer, not {type(threshold).__name__}")
    if threshold < MIN_THRESHOLD:
        raise UsageError(f"threshold t = {threshold} is refused: t must be at least {MIN_THRESHOLD} (RFC 9591), "
                         "since with t = 1 every single participant holds the whole key and nothing is shared")
    if threshold > n:
        raise UsageError(f"threshold t = {threshold} is more than the n = {n} participants: no t of them exist")


@lru_cache(maxsize=1024)
def _shifted(points: tuple[Point, ...], tweak: int) -> tuple[Point, ...]:
    """Each point plus t·B: the public half of ``KeyShare.tweaked``. Cached: a pure function of
    public values (verifying shares, group key, the HD tweak), which signing at an HD path
    computes on every signature (docs/hd.md); the secret share is added outside, never cached."""
    shift = SUITE.group.base_mul(tweak)
    return tuple(point + shift for point in points)


@dataclass(frozen=True, eq=False)
class KeyShare:
    """One participant's FROST key share (``repr`` never shows the secret)."""

    identifier: int
    threshold: int
    participants: tuple[int, ...]
    signing_share: SecretScalar = field(repr=False)
    verifying_shares: Mapping[int, Point] = field(repr=False)
    group_public_key: Point

    def __post_init__(self) -> None:
        ids = check_identifiers(self.participants)
        check_threshold(self.threshold, len(ids))
        object.__setattr__(self, "participants", ids)
        if self.identifier not in ids:
            raise UsageError("own identifier is not among the participants")
        if set(self.verifying_shares) != set(ids):
            raise UsageError("need exactly one verifying share per participant")
        if self.signing_share.group is not SUITE.group or self.group_public_key.is_identity:
            raise UsageError("key share must be on ed25519 with a non-identity public key")
        ordered = {i: self.verifying_shares[i] for i in ids}
        object.__setattr__(self, "verifying_shares", MappingProxyType(ordered))

    @property
    def public_key(self) -> bytes:
        """The 32-byte Ed25519 group public key."""
        return self.group_public_key.to_bytes()

    @property
    def verifying_share(self) -> Point:
        """This participant's own verifying share s_i·B."""
        return self.verifying_shares[self.identifier]

    def tweaked(self, tweak: int) -> KeyShare:
        """The share of the key A + t·B for a public tweak t (HD derivation, docs/hd.md): every
        participant adds t to its signing share, so the polynomial f(x) becomes f(x) + t (the
        Lagrange coefficients at 0 sum to 1): every verifying share and the group key move by
        t·B. Signatures then verify under A + t·B with any RFC 8032 verifier."""
        group = SUITE.group
        if type(tweak) is not int or not 0 <= tweak < group.order:
            raise UsageError("a tweak is an integer in [0, L)")
        *shares, key = _shifted((*self.verifying_shares.values(), self.group_public_key), tweak)
        return KeyShare(
            identifier=self.identifier,
            threshold=self.threshold,
            participants=self.participants,
            signing_share=SecretScalar(group, (self.signing_share.value + tweak) % group.order),
            verifying_shares=dict(zip(self.verifying_shares, shares)),
            group_public_key=key,
        )

    def validate(self) -> None:
        """Raise ``UsageError`` unless the shares are consistent (see the module docstring)."""
        if self.signing_share.public_point() != self.verifying_share:
            raise UsageError("signing share does not match its verifying share")
        basis = self.participants[: self.threshold]
        for k in (0,) + self.participants[self.threshold :]:
            expected = self.group_public_key if k == 0 else self.verifying_shares[k]
            if _interpolate_points(self.verifying_shares, basis, k) != expected:
                raise UsageError("verifying shares do not lie on one polynomial of degree t-1")
        if self.threshold >= 2:
            # Exact degree: t-1 known points (PK and t-2 shares) must not already determine the
            # next share, or the key could be opened by fewer than t parties.
            points = {0: self.group_public_key, **self.verifying_shares}
            lower = (0,) + self.participants[: self.threshold - 2]
            nxt = self.participants[self.threshold - 2]
            if _interpolate_points(points, lower, nxt) == points[nxt]:
                raise UsageError("the sharing has a lower degree than t-1")

    def to_bytes(self) -> bytes:
        """The version-1 byte format (contains the secret share: store it encrypted)."""
        entries = b"".join(struct.pack(">I", i) + self.verifying_shares[i].to_bytes() for i in self.participants)
        return (
            _MAGIC
            + _HEADER.pack(self.identifier, self.threshold, len(self.participants))
            + entries
            + self.signing_share.to_bytes()
            + self.group_public_key.to_bytes()
        )

    @classmethod
    def from_bytes(cls, data: bytes) -> KeyShare:
        """Strictly parse ``to_bytes()`` output; anything else raises ``InvalidMessage``."""
        if not isinstance(data, (bytes, bytearray)):
            raise InvalidMessage("key share must be bytes")
        data = bytes(data)
        head = len(_MAGIC) + _HEADER.size
        if len(data) < head or data[: len(_MAGIC)] != _MAGIC:
            raise InvalidMessage("not a version-1 FROST key share")
        identifier, threshold, n = _HEADER.unpack_from(data, len(_MAGIC))
        if not 1 <= n <= MAX_PARTICIPANTS or len(data) != head + n * _ENTRY + 64:
            raise InvalidMessage("key share has the wrong length")
        try:
            verifying_shares = {}
            for k in range(n):
                offset = head + k * _ENTRY
                (i,) = struct.unpack_from(">I", data, offset)
                verifying_shares[i] = SUITE.deserialize_element(data[offset + 4 : offset + _ENTRY])
            ids = list(verifying_shares)
            if len(ids) != n or ids != sorted(ids):
                raise InvalidMessage("participants must be strictly increasing")
            tail = head + n * _ENTRY
            share = cls(
                identifier=identifier,
                threshold=threshold,
                participants=tuple(ids),
                signing_share=SecretScalar.from_bytes(SUITE.group, data[tail : tail + 32]),
                verifying_shares=verifying_shares,
                group_public_key=SUITE.deserialize_element(data[tail + 32 :]),
            )
            share.validate()
        except (InvalidEncoding, UsageError) as exc:
            raise InvalidMessage(f"invalid key share: {exc}") from None
        return share


def _interpolate_points(points: Mapping[int, Point], basis: tuple[int, ...], x: int) -> Point:
    """Σ_i ℓ_i(x)·P_i: the degree-(|basis|−1) interpolation of ``points`` evaluated at x."""
    q = SUITE.order
    total = SUITE.group.identity()
    for i in basis:
        numerator = denominator = 1
        for j in basis:
            if j != i:
                numerator = numerator * (x - j) % q
                denominator = denominator * (i - j) % q
        total = total + points[i] * (numerator * pow(denominator, -1, q) % q)
    return total


def split_secret(
    secret: SecretScalar, threshold: int, identifiers: Iterable[int]
) -> list[KeyShare]:
    """App. C.1 with a given secret: Shamir-split ``secret`` into one KeyShare per identifier."""
    require_instance(secret, SecretScalar, "split_secret takes the secret to share")
    ids = check_identifiers(identifiers)
    check_threshold(threshold, len(ids))
    if secret.group is not SUITE.group or secret.value == 0:
        raise UsageError("secret must be a non-zero ed25519 scalar")
    shares, coefficients = shamir_split(SUITE.group, secret.value, threshold, ids)
    vss_commitment = feldman_commit(SUITE.group, coefficients)  # App. C.2 vss_commit
    verifying_shares = {i: feldman_evaluate(vss_commitment, i) for i in ids}
    return [
        KeyShare(i, threshold, ids, SecretScalar(SUITE.group, shares[i]), verifying_shares, vss_commitment[0])
        for i in ids
    ]


def trusted_dealer_keygen(threshold: int, n: int) -> list[KeyShare]:
    """App. C: a dealer picks a fresh secret and splits it t-of-n (2 ≤ t ≤ n) among identifiers 1..n."""
    if not isinstance(n, int) or isinstance(n, bool) or n < 1:
        raise UsageError("n must be a positive integer")
    return split_secret(SecretScalar.random(SUITE.group), threshold, range(1, n + 1))


def secret_scalar_from_seed(seed: bytes) -> SecretScalar:
    """The signing scalar of an RFC 8032 private key (32-byte seed), to import an existing key.

    RFC 8032 §5.1.5: s = clamp(SHA-512(seed)[0:32]); s mod L gives the same public key, and
    FROST signatures made with its shares verify under that key.
    """
    if not isinstance(seed, (bytes, bytearray)) or len(seed) != 32:
        raise UsageError("an Ed25519 seed is 32 bytes")
    h = bytearray(hashlib.sha512(bytes(seed)).digest()[:32])
    h[0] &= 248
    h[31] &= 127
    h[31] |= 64
    return SecretScalar(SUITE.group, int.from_bytes(h, "little") % SUITE.order)


# Parkable state (``protocols.state``).
register_bytes(KeyShare)

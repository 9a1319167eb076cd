"""Refresh (same t, same identifiers) and resharing to a new (t', n') and party set.

Both run the three rounds of ``dealing.DealingSession`` (round 1 commitments, round 2 p2p
shares with the view hash, round 3 confirmation); payloads are {"commitment": [...]},
{"share", "view"} and {"confirmation"}. The group public key never changes.

Refresh (ZF ``keys/refresh.rs``). Every participant i deals a polynomial g_i with g_i(0) = 0,
so C_i0 is the identity, which receivers check (it is the one place the identity is allowed)::

    s'_j = s_j + Σ_i g_i(j),   Y'_k = Y_k + Σ_i Σ_m k^m·C_im,   PK unchanged.

A refresh among a subset (≥ t) of the participants gives shares to that subset only.

Resharing (Wong–Wang VSR; ZF 9ceac975 ``keys/resharing.rs``). A set D of at least t old holders
each deals its share with a polynomial h_i of degree t'−1, h_i(0) = s_i, to the new receivers::

    s'_j = Σ_{i∈D} λ_i·h_i(j),  λ_i the Lagrange coefficients at 0 over D;
    Y'_k = Σ_i λ_i·Σ_m k^m·C_im.

Receivers check: each commitment has exactly t' points, C_i0 equals holder i's old verifying
share Y_i (so a holder cannot deal anything but its real share), and Σ λ_i·C_i0 = PK.

Old shares are useless with new ones: the new shares lie on a fresh random polynomial (refresh
adds a random polynomial vanishing at 0; resharing deals fresh ones), so a mix of old and new
shares interpolates to an unrelated value, and signing sessions reject a mix because the
verifying shares differ. Refresh does not undo a past compromise of t old shares (ZF book,
"Refreshing Shares"): holders must delete their old shares.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from curves import Point
from protocols.encoding import require_keys
from protocols.errors import ProofError, ProtocolAbort, UsageError, require_instance
from protocols.frost.ciphersuite import FROST_ED25519_SHA512 as SUITE
from protocols.frost.dealing import (
    Dealing,
    DealingSession,
    PublicOutcome,
    decode_commitment,
    evaluate_commitment,
    sum_commitments,
)
from protocols.frost.helpers import derive_interpolating_value
from protocols.frost.keys import KeyShare, check_identifiers
from protocols.rounds import Message
from protocols.sharing import random_polynomial
from protocols.state import register_attrs

__all__ = ["RefreshSession", "ReshareSession"]


def _encode_context(*items: bytes) -> bytes:
    return b"".join(len(item).to_bytes(4, "big") + item for item in items)


def _ids(identifiers: Iterable[int]) -> bytes:
    return b"".join(i.to_bytes(4, "big") for i in identifiers)


class RefreshSession(DealingSession):
    """Refresh one participant's KeyShare among ``parties`` (≥ t participants of the key)."""

    protocol = "frost/refresh"

    def __init__(self, session_id: bytes, key_share: KeyShare, parties: Iterable[int]) -> None:
        require_instance(key_share, KeyShare, "a FROST RefreshSession takes this participant's key share")
        parties = check_identifiers(parties)
        if not set(parties) <= set(key_share.participants):
            raise UsageError("refresh parties must be participants of the key")
        super().__init__(session_id, key_share.identifier, parties, parties, key_share.threshold)
        self.key_share = key_share

    def _context(self) -> bytes:
        shares = b"".join(self.key_share.verifying_shares[i].to_bytes() for i in self.receivers)
        return _encode_context(
            self.key_share.public_key, self.threshold.to_bytes(4, "big"), _ids(self.receivers), shares
        )

    def _polynomial(self) -> list[int]:
        return [0] + random_polynomial(SUITE.group, 0, self.threshold - 1)[1:]

    def _decode_dealing(self, msg: Message) -> Dealing:
        require_keys(msg.payload, ("commitment",))
        commitment = decode_commitment(msg, self.threshold, identity_first=True)
        return Dealing(commitment, b"".join(c.to_bytes() for c in commitment))

    def _public_outcome(self, dealings: Mapping[int, Dealing]) -> PublicOutcome:
        delta = sum_commitments(d.commitment for d in dealings.values())
        deltas = evaluate_commitment(delta, self.receivers)
        verifying = {k: self.key_share.verifying_shares[k] + deltas[k] for k in self.receivers}
        return PublicOutcome(self.key_share.group_public_key, verifying)

    def _signing_share(self, shares: Mapping[int, int]) -> int:
        return (self.key_share.signing_share.value + sum(shares.values())) % SUITE.order

    def _forget_old_share(self) -> None:
        self.key_share = None  # type: ignore[assignment]


class ReshareSession(DealingSession):
    """One party of a resharing: an old holder (dealer), a new receiver, or both.

    Dealers pass their ``key_share``; receivers that hold no old share pass the public
    ``group_public_key`` and the dealers' ``old_verifying_shares`` instead. A party that is
    both uses the same id in both roles; otherwise ids of dealers and receivers must differ.
    """

    protocol = "frost/reshare"

    def __init__(
        self,
        session_id: bytes,
        party_id: int,
        *,
        dealers: Iterable[int],
        receivers: Iterable[int],
        new_threshold: int,
        key_share: KeyShare | None = None,
        group_public_key: Point | None = None,
        old_verifying_shares: Mapping[int, Point] | None = None,
    ) -> None:
        super().__init__(session_id, party_id, dealers, receivers, new_threshold)
        if key_share is not None:
            require_instance(key_share, KeyShare, "a FROST ReshareSession takes this dealer's key share")
            if key_share.identifier != party_id:
                raise UsageError(f"key_share is participant {key_share.identifier}'s, not party {party_id}'s")
            if len(self.dealers) < key_share.threshold or not set(self.dealers) <= set(key_share.participants):
                raise UsageError("need at least t old holders of this key as dealers")
            group_public_key, old_verifying_shares = key_share.group_public_key, key_share.verifying_shares
        elif self.is_dealer:
            raise UsageError("a dealer must pass its key_share")
        if group_public_key is None or old_verifying_shares is None:
            raise UsageError("receivers need the group public key and the old verifying shares")
        require_instance(group_public_key, Point, "a FROST ReshareSession takes the group public key")
        if not isinstance(old_verifying_shares, Mapping) or not set(self.dealers) <= set(old_verifying_shares) \
                or not all(isinstance(old_verifying_shares[i], Point) for i in self.dealers):
            raise UsageError("need the old verifying share of every dealer: a mapping of identifier to Point")
        self.key_share = key_share
        self.group_public_key = group_public_key
        self.old_verifying_shares = {i: old_verifying_shares[i] for i in self.dealers}
        self._lambdas = {i: derive_interpolating_value(self.dealers, i) for i in self.dealers}

    def _context(self) -> bytes:
        shares = b"".join(self.old_verifying_shares[i].to_bytes() for i in self.dealers)
        return _encode_context(
            self.group_public_key.to_bytes(), self.threshold.to_bytes(4, "big"),
            _ids(self.dealers), _ids(self.receivers), shares,
        )

    def _polynomial(self) -> list[int]:
        if self.key_share is None:
            raise UsageError("only an old holder deals")
        return random_polynomial(SUITE.group, self.key_share.signing_share.value, self.threshold - 1)

    def _decode_dealing(self, msg: Message) -> Dealing:
        require_keys(msg.payload, ("commitment",))
        commitment = decode_commitment(msg, self.threshold)
        if commitment[0] != self.old_verifying_shares[msg.sender]:
            raise ProofError("dealt constant is not the dealer's old verifying share")
        return Dealing(commitment, b"".join(c.to_bytes() for c in commitment))

    def _public_outcome(self, dealings: Mapping[int, Dealing]) -> PublicOutcome:
        combined = sum_commitments(
            (dealings[i].commitment for i in self.dealers), (self._lambdas[i] for i in self.dealers)
        )
        if combined[0] != self.group_public_key:
            raise ProtocolAbort("old verifying shares do not interpolate to the group public key")
        return PublicOutcome(self.group_public_key, evaluate_commitment(combined, self.receivers))

    def _signing_share(self, shares: Mapping[int, int]) -> int:
        return sum(self._lambdas[i] * s for i, s in shares.items()) % SUITE.order

    def _forget_old_share(self) -> None:
        self.key_share = None


# Parkable state (``protocols.state``).
register_attrs(RefreshSession)
register_attrs(ReshareSession)

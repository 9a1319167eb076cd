"""The three rounds shared by the DKG, refresh and resharing: several dealers run Feldman VSS.

Round 1  dealer i -> all        Feldman commitment C_i = [a_i0·B, …, a_i(t-1)·B] (+ extras)
Round 2  dealer i -> receiver j the share f_i(j) and i's view hash of round 1          (p2p)
Round 3  receiver j -> all      confirmation: hash of (round-1 view, group key, verifying shares)
Output   receivers: a KeyShare; dealers that receive nothing: None.

Payloads (hex): round 1 {"commitment": [t points], …extras}; round 2 {"share": scalar,
"view": 32 bytes}; round 3 {"confirmation": 32 bytes}.

Checks, in this order: commitment length exactly t (a longer one would silently raise the
threshold, Trail of Bits 2024), canonical prime-order points, the subclass's check of the
commitment (proof of knowledge, constant term); round 2: the sender saw the same round-1
broadcasts as we did (``broadcast``), then f_i(j)·B = Σ_k j^k·C_ik (App. C.2 vss_verify);
round 3: every receiver computed the same public outcome, so no party outputs a key the
others do not have (the "complaint" step: a party whose check failed aborts and never
confirms, and the others then wait instead of using a key that is not everywhere).
A failed check aborts naming the dealer or receiver at fault.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from curves import Point, SecretScalar
from protocols.encoding import encode_points, get_bytes, get_list, get_point, get_scalar, require_keys
from protocols.errors import ProofError, ProtocolAbort, UsageError
from protocols.frost.broadcast import VIEW_HASH_LENGTH, inconsistency_culprit, view_hash
from protocols.frost.ciphersuite import FROST_ED25519_SHA512 as SUITE
from protocols.frost.keys import KeyShare, check_identifiers, check_threshold
from protocols.rounds import Message, Session
from protocols.sharing import evaluate_polynomial, feldman_commit, feldman_evaluate, feldman_verify
from protocols.state import register_dataclass

__all__ = ["Dealing", "DealingSession", "PublicOutcome", "sum_commitments", "evaluate_commitment", "decode_commitment"]


@dataclass(frozen=True)
class Dealing:
    """A dealer's decoded round-1 broadcast: its commitment and the exact bytes it sent."""

    commitment: tuple[Point, ...]
    encoded: bytes


@dataclass(frozen=True)
class PublicOutcome:
    """What every party can compute from the commitments alone."""

    group_public_key: Point
    verifying_shares: dict[int, Point]


def sum_commitments(commitments: Iterable[Sequence[Point]], weights: Iterable[int] | None = None) -> list[Point]:
    """Coefficient-wise Σ w_i·C_i (w_i = 1 by default): the commitment to Σ w_i·f_i."""
    commitments = list(commitments)
    weights = [1] * len(commitments) if weights is None else list(weights)
    total = [SUITE.group.identity()] * len(commitments[0])
    for weight, commitment in zip(weights, commitments):
        total = [acc + (c if weight == 1 else c * weight) for acc, c in zip(total, commitment)]
    return total


class DealingSession(Session):
    """Base of the DKG, refresh and resharing sessions (see the module docstring)."""

    def __init__(
        self, session_id: bytes, party_id: int, dealers: Iterable[int], receivers: Iterable[int], threshold: int
    ) -> None:
        self.dealers = check_identifiers(dealers)
        self.receivers = check_identifiers(receivers)
        check_threshold(threshold, len(self.receivers))
        self.threshold = threshold
        super().__init__(session_id, party_id, set(self.dealers) | set(self.receivers))
        self._dealings: dict[int, Dealing] = {}
        self._coefficients: list[int] = []
        self._view = b""
        self._outcome: PublicOutcome | None = None
        self._confirmation = b""
        self._key_share: KeyShare | None = None

    # --- hooks ------------------------------------------------------------------------------
    def _polynomial(self) -> list[int]:
        """This dealer's coefficients [a_0, …, a_(t-1)]."""
        raise NotImplementedError

    def _round1_extras(self, commitment: Sequence[Point]) -> dict[str, Any]:
        """Extra round-1 fields (the DKG's proof of knowledge)."""
        return {}

    def _decode_dealing(self, msg: Message) -> Dealing:
        """Decode and check a dealer's round-1 payload (``InvalidMessage`` / ``ProofError``)."""
        raise NotImplementedError

    def _public_outcome(self, dealings: Mapping[int, Dealing]) -> PublicOutcome:
        raise NotImplementedError

    def _signing_share(self, shares: Mapping[int, int]) -> int:
        raise NotImplementedError

    def _context(self) -> bytes:
        """Public parameters every party must agree on (bound into the view hash)."""
        raise NotImplementedError

    # --- helpers ----------------------------------------------------------------------------
    @property
    def is_dealer(self) -> bool:
        """Whether this party deals a polynomial in this run."""
        return self.party_id in self.dealers

    @property
    def is_receiver(self) -> bool:
        """Whether this party gets a new share in this run."""
        return self.party_id in self.receivers

    def _wait(
        self, round: int, senders: Iterable[int], then: Callable[[dict[int, Any]], list[Message]]
    ) -> list[Message]:
        senders = [s for s in senders if s != self.party_id]
        if not senders:
            return then({})
        self._expect(round, senders)
        return []

    def _exchanged_round2(self, other: int) -> bool:
        return (other in self.dealers and self.is_receiver) or (self.is_dealer and other in self.receivers)

    # --- round 1: commitments ---------------------------------------------------------------
    def _begin(self) -> list[Message]:
        out: list[Message] = []
        if self.is_dealer:
            self._coefficients = self._polynomial()
            if len(self._coefficients) != self.threshold:
                raise UsageError("polynomial has the wrong degree")
            commitment = feldman_commit(SUITE.group, self._coefficients)
            payload = {"commitment": encode_points(commitment), **self._round1_extras(commitment)}
            out = self._broadcast(1, payload)
            self._dealings[self.party_id] = self._decode_dealing(self._message(1, payload))
        return out + self._wait(1, self.dealers, self._on_round1)

    def _decode_round1(self, msg: Message) -> Dealing:
        return self._decode_dealing(msg)

    # --- round 2: shares --------------------------------------------------------------------
    def _on_round1(self, inputs: dict[int, Dealing]) -> list[Message]:
        self._dealings.update(inputs)
        view = {i: d.encoded for i, d in self._dealings.items()}
        view[0] = self._context()
        self._view = view_hash(self.protocol, self.session_id, "round1", view)
        out: list[Message] = []
        if self.is_dealer:
            for j in self.receivers:
                if j != self.party_id:
                    share = evaluate_polynomial(SUITE.group, self._coefficients, j)
                    payload = {"share": SUITE.serialize_scalar(share).hex(), "view": self._view.hex()}
                    out.append(self._message(2, payload, recipient=j))
        senders = self.dealers if self.is_receiver else ()
        return out + self._wait(2, senders, self._on_round2)

    def _decode_round2(self, msg: Message) -> int:
        require_keys(msg.payload, ("share", "view"))
        share = get_scalar(msg.payload, "share", SUITE.group)
        view = get_bytes(msg.payload, "view", VIEW_HASH_LENGTH)
        # The share is checked against the commitment the sender sent *us* first: that check
        # names the sender for sure, the view comparison only when no third party is involved.
        feldman_verify(self._dealings[msg.sender].commitment, self.party_id, share)
        if view != self._view:
            culprit = inconsistency_culprit(self.dealers, self.party_id, msg.sender)
            raise ProtocolAbort("parties saw different round-1 commitments", culprit)
        return share

    # --- round 3: confirmation --------------------------------------------------------------
    def _on_round2(self, inputs: dict[int, int]) -> list[Message]:
        outcome = self._public_outcome(self._dealings)
        self._outcome = outcome
        points = b"".join(outcome.verifying_shares[k].to_bytes() for k in self.receivers)
        self._confirmation = view_hash(
            self.protocol, self.session_id, "confirmation",
            {0: self._view, 1: outcome.group_public_key.to_bytes(), 2: points},
        )
        out: list[Message] = []
        if self.is_receiver:
            shares = dict(inputs)
            if self.is_dealer:
                shares[self.party_id] = evaluate_polynomial(SUITE.group, self._coefficients, self.party_id)
            self._key_share = self._make_key_share(self._signing_share(shares), outcome)
            out = self._broadcast(3, {"confirmation": self._confirmation.hex()})
        self._coefficients = []
        self._forget_old_share()
        return out + self._wait(3, self.receivers, self._on_round3)

    def _forget_old_share(self) -> None:
        """Drop any old secret share once the new one is made (refresh and resharing): a parked
        or finished session must not carry it (its ``to_bytes()`` would)."""

    def _make_key_share(self, signing_share: int, outcome: PublicOutcome) -> KeyShare:
        secret = SecretScalar(SUITE.group, signing_share)
        if secret.public_point() != outcome.verifying_shares[self.party_id]:
            raise ProtocolAbort("own signing share does not match the commitments")
        return KeyShare(
            self.party_id, self.threshold, self.receivers, secret,
            outcome.verifying_shares, outcome.group_public_key,
        )

    def _decode_round3(self, msg: Message) -> None:
        require_keys(msg.payload, ("confirmation",))
        if get_bytes(msg.payload, "confirmation", VIEW_HASH_LENGTH) != self._confirmation:
            if self._exchanged_round2(msg.sender):
                culprit: int | None = msg.sender  # our round-1 views already matched
            else:
                culprit = inconsistency_culprit(self.dealers, self.party_id, msg.sender)
            raise ProtocolAbort("parties computed different keys", culprit)

    def _on_round3(self, inputs: dict[int, None]) -> list[Message]:
        self._finish(self._key_share)
        return []


def evaluate_commitment(commitment: Sequence[Point], identifiers: Iterable[int]) -> dict[int, Point]:
    """The verifying share Σ_k x^k·C_k of each identifier."""
    return {x: feldman_evaluate(commitment, x) for x in identifiers}


def decode_commitment(msg: Message, length: int, *, identity_first: bool = False) -> tuple[Point, ...]:
    """The round-1 "commitment" field: exactly ``length`` canonical prime-order points.

    With ``identity_first`` the first point must be the identity (refresh) and the others not.
    """
    commitment = get_list(msg.payload, "commitment", length)
    points = []
    for k, item in enumerate(commitment):
        allow = identity_first and k == 0
        point = get_point({"c": item}, "c", SUITE.group, allow_identity=allow)
        if allow and not point.is_identity:
            raise ProofError("refresh commitment must start with the identity")
        points.append(point)
    return tuple(points)


# Parkable state (``protocols.state``).
register_dataclass(Dealing)
register_dataclass(PublicOutcome)

"""Two-party FROST signing in one round trip, with no stored nonce on either side (RFC 9591 §5).

The initiator (the wallet's client) and the responder (the custodian) sign with a 2-of-2 key
(or any two signers of a key with threshold 2):

Message flow::

    Round 1  I -> R  H4(msg) and fresh commitments (D_I, E_I)                       (§5.1 commit)
    Round 2  R -> I  fresh commitments (D_R, E_R) and z_R over the full commitment list (§5.2 sign)
    Round 3  I -> R  the 64-byte signature, after I computed z_I (§5.2), aggregated and verified it
                     (§5.3; a bad z_R names the responder, §5.4)
    Output   both: the same Ed25519 signature, which any RFC 8032 verifier accepts

**Why the ordering is safe.** FROST lets the other signers (or the coordinator) see a signer's
commitments before choosing theirs: every binding factor ρ_i = H1(PK ‖ H4(msg) ‖ H5(list) ‖ i)
covers the whole commitment list and the message (§4.4), so R and the challenge c are fixed only
once the list is, and each signer computes its share z_i only after it holds the final list and
message (§5.2). Here the initiator's (D_I, E_I) are fixed before it sees (D_R, E_R); the responder
chooses its nonces after seeing the initiator's, which is the position RFC 9591's adversary
already has. Whatever the responder picks, it changes ρ_I and c, so the initiator's z_I is a
fresh linear combination that never repeats an earlier one.

**No nonce outlives its round.** The initiator draws (d_I, e_I) in ``start()`` and uses them in the
single ``round2.sign`` call when round 2 arrives; the responder draws (d_R, e_R) and uses them in
the same step in which it receives round 1, so the responder's state between rounds holds no
nonce at all and may be parked anywhere. A custodian draws them inside
``protocols.randomness.derived`` over the transcript that already holds the initiator's
commitments and H4(msg) (``mpc.operation``): a replayed round 1 after a database restore gets the
same (D_R, E_R, z_R) again, any other round 1 fresh nonces (docs/threat-model.md, "Rollback"). The initiator's state between round 1 and round 2 holds
its nonces and must never be written to storage (RFC 9591 §7.3): ``InitiatorSession`` is not on
the session-state allowlist, and a device that crashes mid-run starts again with fresh nonces.

H4(msg) in round 1 lets the responder refuse a run about another message before it draws or
uses any nonce, so two honest signers given different messages never blame each other.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from curves import InvalidEncoding

from protocols.encoding import get_bytes, get_point, get_scalar, require_keys
from protocols.errors import InvalidMessage, ProofError, ProtocolAbort, UsageError, require_instance
import protocols.frost.round1 as round1
import protocols.frost.round2 as round2
from protocols.frost.aggregate import aggregate_verified
from protocols.frost.ciphersuite import FROST_ED25519_SHA512 as SUITE
from protocols.frost.helpers import (
    SigningCommitments,
    SigningContext,
    binding_factors_from_encoding,
    compute_signing_context,
)
from protocols.frost.keys import KeyShare
from protocols.rounds import Message, Session
from protocols.state import register_attrs

__all__ = ["InitiatorSession", "ResponderSession", "PROTOCOL"]

PROTOCOL = "frost/round-trip-sign"
_SIGNATURE_LENGTH = 64


def _check_pair(key_share: KeyShare, peer: int, message: Any) -> tuple[int, int]:
    require_instance(key_share, KeyShare, "one-round-trip FROST signing takes this signer's key share")
    if not isinstance(message, (bytes, bytearray)):
        raise UsageError("message must be bytes")
    if key_share.threshold != 2:
        raise UsageError("one-round-trip signing is for keys with threshold 2")
    if peer == key_share.identifier or peer not in key_share.participants:
        raise UsageError("the peer must be another participant of the key")
    return tuple(sorted((key_share.identifier, peer)))  # type: ignore[return-value]


def _commitments_payload(commitments: SigningCommitments) -> dict[str, str]:
    return {"hiding": commitments.hiding.to_bytes().hex(), "binding": commitments.binding.to_bytes().hex()}


@dataclass(frozen=True)
class _Signed:
    """What one signer derives once both commitment pairs are known (§5.2)."""

    commitment_list: list[SigningCommitments]
    context: SigningContext
    share: int




class _RoundTripSession(Session):
    protocol = PROTOCOL

    def __init__(self, session_id: bytes, key_share: KeyShare, peer: int, message: bytes) -> None:
        signers = _check_pair(key_share, peer, message)
        super().__init__(session_id, key_share.identifier, signers)
        self.key_share = key_share
        self.message = bytes(message)
        self.peer = peer

    def _decode_and_sign(self, payload: Any, nonces: round1.SigningNonces, message_hash: bytes) -> _Signed:
        """Decode the peer's (D, E) and sign (§5.2) over the list {own, peer}; consumes ``nonces``
        only if the peer's commitments decode. E is decoded by the multiplication ρ·E that R
        needs anyway (``deserialize_element_mul``: the same checks, the subgroup check once); a
        bad D or E is ``InvalidMessage`` and changes nothing. ``message_hash`` is H4(msg), which
        the caller computed already."""
        hiding = get_point(payload, "hiding", SUITE.group)
        binding = get_bytes(payload, "binding", SUITE.group.point_length)
        own = nonces.commitments
        pairs = {self.party_id: (own.hiding.to_bytes(), own.binding.to_bytes()), self.peer: (hiding.to_bytes(), binding)}
        encoded = b"".join(SUITE.serialize_identifier(i) + pairs[i][0] + pairs[i][1] for i in self.parties)
        pk = self.key_share.group_public_key
        factors = binding_factors_from_encoding(pk, self.parties, self.message, encoded, message_hash=message_hash)
        try:
            binding_point, binding_term = SUITE.deserialize_element_mul(binding, factors[self.peer])
        except InvalidEncoding as exc:
            raise InvalidMessage(f"binding: {exc}") from None
        peer = SigningCommitments(self.peer, hiding, binding_point)
        commitment_list = sorted([own, peer], key=lambda c: c.identifier)
        context = compute_signing_context(pk, commitment_list, self.message, nonces.commitment_share, self.party_id,
                                          binding_factors=factors, binding_terms={self.peer: binding_term})
        share = round2.sign(self.key_share, nonces, self.message, commitment_list, context)
        return _Signed(commitment_list, context, share)


class InitiatorSession(_RoundTripSession):
    """The initiator's side (the wallet's client): its nonces live only inside this object."""

    def _begin(self) -> list[Message]:
        self._nonces = round1.commit(self.party_id, self.key_share.signing_share)
        self._message_hash = SUITE.H4(self.message)
        self._expect(2)
        payload = {"message_hash": self._message_hash.hex(), **_commitments_payload(self._nonces.commitments)}
        return [self._message(1, payload, self.peer)]

    def _decode_round2(self, msg: Message) -> tuple[_Signed, int]:
        require_keys(msg.payload, ("hiding", "binding", "sig_share"))
        peer_share = get_scalar(msg.payload, "sig_share", SUITE.group)
        return self._decode_and_sign(msg.payload, self._nonces, self._message_hash), peer_share

    def _on_round2(self, inputs: dict[int, tuple[_Signed, int]]) -> list[Message]:
        signed, peer_share = inputs[self.peer]
        signature = aggregate_verified(  # a bad z_R names the responder (§5.4)
            signed.commitment_list, self.message, self.key_share.group_public_key, self.key_share.verifying_shares,
            {self.party_id: signed.share, self.peer: peer_share}, signed.context,
        )
        self._finish(signature)
        return [self._message(3, {"signature": signature.hex()}, self.peer)]

    def __reduce__(self) -> Any:
        raise TypeError("a signing session holding nonces is never serialised")


class ResponderSession(_RoundTripSession):
    """The responder's side (the custodian): between its rounds it holds no nonce."""

    def _begin(self) -> list[Message]:
        self._expect(1)
        return []

    def _decode_round1(self, msg: Message) -> tuple[round1.SigningNonces, _Signed]:
        require_keys(msg.payload, ("message_hash", "hiding", "binding"))
        message_hash = SUITE.H4(self.message)
        if get_bytes(msg.payload, "message_hash", 64) != message_hash:
            raise InvalidMessage("the initiator asks to sign a different message")
        # Nonces drawn and used up within this step, after the initiator's commitments arrived
        # (a refused message only discards them; a custodian derives them from the transcript).
        nonces = round1.commit(self.party_id, self.key_share.signing_share)
        return nonces, self._decode_and_sign(msg.payload, nonces, message_hash)

    def _on_round1(self, inputs: dict[int, tuple[round1.SigningNonces, _Signed]]) -> list[Message]:
        nonces, signed = inputs[self.peer]
        self._group_commitment = signed.context.group_commitment.to_bytes()
        self._expect(3)
        payload = {**_commitments_payload(nonces.commitments), "sig_share": SUITE.serialize_scalar(signed.share).hex()}
        return [self._message(2, payload, self.peer)]

    def _decode_round3(self, msg: Message) -> bytes:
        require_keys(msg.payload, ("signature",))
        return get_bytes(msg.payload, "signature", _SIGNATURE_LENGTH)

    def _on_round3(self, inputs: dict[int, bytes]) -> list[Message]:
        signature = inputs[self.peer]
        if signature[:32] != self._group_commitment:
            raise ProtocolAbort("the signature is not of this run", self.peer)
        try:
            SUITE.verify_signature(self.key_share.public_key, self.message, signature)
        except ProofError:
            raise ProtocolAbort("the initiator's signature does not verify", self.peer) from None
        self._finish(signature)
        return []


# Parkable state (``protocols.state``).
# Not InitiatorSession: it holds the device's nonces between its rounds.
register_attrs(ResponderSession)

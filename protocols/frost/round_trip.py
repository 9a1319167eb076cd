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

**Every peer point is checked before anything computed from it leaves.** The responder decodes
D_I fully (§6.1 DeserializeElement: canonical, not the identity, in the prime-order subgroup)
and E_I by the multiplication ρ_I·E_I that R needs anyway (``deserialize_element_mul``: the same
checks, made by that one libsodium call) before it sends z_R. The initiator decodes E_R the same
way, but makes only the checks of D_R that need no curve arithmetic (canonical, not the
identity: ``Ed25519.check_encoding``) before it signs, and the subgroup check only when the
aggregate signature fails to verify. That is sound because z_I leaves only inside the aggregate
signature (R, z), after libsodium's cofactorless RFC 8032 verification [z]B − [c]PK == R has
passed. [z]B − [c]PK is in the prime-order subgroup (PK is); R = (d_I + ρ_I·e_I)·B + ρ_R·E_R + D_R
with the first two terms in it, so R can pass only when D_R is in the prime-order subgroup too,
and then D_R, canonical and not the identity, decodes. A D_R with a torsion component, or of
small order, makes the verification fail whatever z_R is; a D_R off the curve makes the addition
fail: both are then refused as ``InvalidMessage``, exactly as decoding would have, and since that
outcome does not depend on z_I, a refusal tells the responder nothing about it. The check is
needed on the initiator's side only for what it sends, and it sends nothing unverified; the
responder keeps checking D_I up front because z_R leaves before any signature exists.

**A refused message changes nothing.** The initiator computes z_I in ``_decode_round2`` with
``SigningNonces._signature_share``, which leaves the nonces unused, and keeps the signature only in
locals; its nonces are taken (``SigningNonces.take``) in ``_on_round2``, just before the signature
leaves. After an ``InvalidMessage`` (any bad D_R, E_R or z_R encoding) the initiator still waits
for round 2 with its nonces unused, and the honest message completes the run: that z_I is the
only one that ever leaves.

**No nonce outlives its round.** The initiator draws (d_I, e_I) in ``start()`` and uses them when
round 2 arrives; the responder draws (d_R, e_R) and uses them in the same step in which it
receives round 1, so the responder's state between rounds holds no nonce at all and may be
parked anywhere. A custodian draws them inside ``protocols.randomness.derived`` over the
transcript that already holds the initiator's commitments and H4(msg) (``mpc.operation``): a
replayed round 1 after a database restore gets the same (D_R, E_R, z_R) again, any other round 1
fresh nonces (docs/threat-model.md, "Rollback"). The initiator's state between round 1 and
round 2 holds its nonces and must never be written to storage (RFC 9591 §7.3):
``InitiatorSession`` is not on the session-state allowlist, and a device that crashes mid-run
starts again with fresh nonces.

H4(msg) in round 1 lets the responder refuse a run about another message before it draws or
uses any nonce, so two honest signers given different messages never blame each other.

The libsodium calls of one run (the fewest that keep every check; benchmarks/README.md, "FROST
sign"): on each side three fixed-base multiplications (D, E and the own term (d + ρ·e)·B), one
multiplication ρ·E of the peer's E that also decodes it, two additions for R and one RFC 8032
verification; the responder's decoding of D_I besides.
"""

from __future__ import annotations

from typing import Any, NoReturn

from curves import InvalidEncoding, ed25519

from protocols.encoding import get_bytes, get_point, get_scalar, require_keys
from protocols.errors import InvalidMessage, ProofError, ProtocolAbort, UsageError, require_instance
import protocols.frost.round1 as round1
from protocols.frost.aggregate import aggregate_verified
from protocols.frost.ciphersuite import FROST_ED25519_SHA512 as SUITE
from protocols.frost.helpers import (
    SigningCommitments,
    SigningContext,
    binding_factors_from_encoding,
    derive_interpolating_value,
)
from protocols.frost.keys import KeyShare
from protocols.rounds import Message, Session
from protocols.state import register_attrs

__all__ = ["InitiatorSession", "ResponderSession", "PROTOCOL"]

PROTOCOL = "frost/round-trip-sign"
_SIGNATURE_LENGTH = 64
_POINT_LENGTH = 32


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


class _Signed:
    """What one signer derives once both commitment pairs are known (§4.4-§5.2). ``repr`` hides
    the share z_i: an initiator's z_i that never left stays secret (its nonces sign the retry)."""

    __slots__ = ("binding_factors", "group_commitment", "challenge", "share")

    def __init__(self, binding_factors: dict[int, int], group_commitment: bytes, challenge: int, share: int) -> None:
        self.binding_factors, self.group_commitment = binding_factors, group_commitment
        self.challenge, self.share = challenge, share

    def __repr__(self) -> str:
        return "_Signed(<redacted>)"


class _RoundTripSession(Session):
    protocol = PROTOCOL

    def __init__(self, session_id: bytes, key_share: KeyShare, peer: int, message: bytes) -> None:
        signers = _check_pair(key_share, peer, message)
        super().__init__(session_id, key_share.identifier, signers)
        self.key_share = key_share
        self.message = bytes(message)
        self.peer = peer

    def _sign(self, nonces: round1.SigningNonces, peer_hiding: bytes, peer_binding: bytes,
              message_hash: bytes) -> _Signed:
        """§4.3-§5.2 over the list {own, peer}: ρ, R, c and this signer's z_i; the nonces stay unused.

        ``peer_hiding`` is D's encoding, decoded or (initiator) passed by ``check_encoding``;
        E is decoded by ρ·E. A bad E, or a D off the curve, is ``InvalidMessage``; nothing here
        changes state. ``message_hash`` is H4(msg), which the caller computed already.
        """
        own = nonces.commitments
        pairs = [own.hiding.to_bytes() + own.binding.to_bytes(), peer_hiding + peer_binding]
        if self.peer < self.party_id:
            pairs.reverse()
        first, second = self.parties
        encoded = SUITE.serialize_identifier(first) + pairs[0] + SUITE.serialize_identifier(second) + pairs[1]  # §4.3
        public_key = self.key_share.group_public_key
        factors = binding_factors_from_encoding(public_key, self.parties, self.message, encoded,
                                                message_hash=message_hash)
        try:
            _, peer_term = ed25519.decode_point_mul(peer_binding, factors[self.peer])  # §6.1, one check
        except InvalidEncoding as exc:
            raise InvalidMessage(f"binding: {exc}") from None
        own_term = nonces.commitment_share(factors[self.party_id]).to_bytes()
        try:  # §4.5: R = (D_own + ρ_own·E_own) + D_peer + ρ_peer·E_peer
            group_commitment = ed25519.add_encoded(ed25519.add_encoded(own_term, peer_hiding), peer_term.to_bytes())
        except InvalidEncoding as exc:
            raise InvalidMessage(f"hiding: {exc}") from None
        challenge = SUITE.H2(group_commitment + public_key.to_bytes() + self.message)  # §4.6
        key_term = derive_interpolating_value(self.parties, self.party_id) * self.key_share.signing_share.value
        share = nonces._signature_share(factors[self.party_id], key_term * challenge)
        return _Signed(factors, group_commitment, challenge, share)


class InitiatorSession(_RoundTripSession):
    """The initiator's side (the wallet's client): its nonces live only inside this object."""

    def _begin(self) -> list[Message]:
        self._nonces = round1.commit(self.party_id, self.key_share.signing_share)
        self._message_hash = SUITE.H4(self.message)
        self._expect(2)
        payload = {"message_hash": self._message_hash.hex(), **_commitments_payload(self._nonces.commitments)}
        return [self._message(1, payload, self.peer)]

    def _decode_round2(self, msg: Message) -> bytes:
        """The responder's (D_R, E_R, z_R) decoded, z_I made and the aggregate signature verified
        (§5.2, §5.3): the signature, or ``InvalidMessage`` / an abort naming the responder."""
        require_keys(msg.payload, ("hiding", "binding", "sig_share"))
        hiding = get_bytes(msg.payload, "hiding", _POINT_LENGTH)
        try:
            ed25519.check_encoding(hiding)  # the subgroup check waits for a failed verification
        except InvalidEncoding as exc:
            raise InvalidMessage(f"hiding: {exc}") from None
        binding = get_bytes(msg.payload, "binding", _POINT_LENGTH)
        peer_share = get_scalar(msg.payload, "sig_share", SUITE.group)
        signed = self._sign(self._nonces, hiding, binding, self._message_hash)
        signature = signed.group_commitment + SUITE.serialize_scalar(signed.share + peer_share)  # §5.3
        try:
            SUITE.verify_signature(self.key_share.public_key, self.message, signature)
            return signature
        except ProofError:
            pass  # refused below, outside this handler: no error raised here chains the ProofError,
            # whose frames hold z_I + z_R of a refused reply while the same nonces sign the retry
        del signature
        self._refuse_or_blame(hiding, binding, signed, peer_share)

    def _refuse_or_blame(self, hiding: bytes, binding: bytes, signed: _Signed, peer_share: int) -> NoReturn:
        """The aggregate failed: a D_R outside the prime-order subgroup is ``InvalidMessage`` (as
        decoding it says, module docstring); else each share is checked, naming its signer (§5.4)."""
        try:
            peer = SigningCommitments(self.peer, SUITE.deserialize_element(hiding), SUITE.deserialize_element(binding))
        except InvalidEncoding as exc:
            raise InvalidMessage(f"hiding: {exc}") from None
        commitment_list = sorted([self._nonces.commitments, peer], key=lambda c: c.identifier)
        group_commitment = SUITE.group.decode_point(signed.group_commitment, allow_identity=True)
        context = SigningContext(self.parties, signed.binding_factors, group_commitment, signed.challenge)
        shares = {self.party_id: signed.share, self.peer: peer_share}
        try:
            aggregate_verified(commitment_list, self.message, self.key_share.group_public_key,
                               self.key_share.verifying_shares, shares, context)
            raise ProtocolAbort("the aggregate signature does not verify")  # aggregate_verified raised already
        except ProtocolAbort:
            self._nonces.take()  # the run ends here: its nonces are forgotten with it (§7.3)
            raise

    def _on_round2(self, inputs: dict[int, bytes]) -> list[Message]:
        signature = inputs[self.peer]
        self._nonces.take()  # z_I leaves now, inside the verified signature: the nonces are used up
        self._finish(signature)
        return [self._message(3, {"signature": signature.hex()}, self.peer)]

    def __reduce__(self) -> Any:
        raise TypeError("a signing session holding nonces is never serialised")


class ResponderSession(_RoundTripSession):
    """The responder's side (the custodian): between its rounds it holds no nonce."""

    def _begin(self) -> list[Message]:
        self._expect(1)
        return []

    def _decode_round1(self, msg: Message) -> tuple[SigningCommitments, _Signed]:
        require_keys(msg.payload, ("message_hash", "hiding", "binding"))
        message_hash = SUITE.H4(self.message)
        if get_bytes(msg.payload, "message_hash", 64) != message_hash:
            raise InvalidMessage("the initiator asks to sign a different message")
        hiding = get_point(msg.payload, "hiding", SUITE.group).to_bytes()  # D_I decoded before z_R leaves
        binding = get_bytes(msg.payload, "binding", _POINT_LENGTH)
        # Nonces drawn and used up within this step, after the initiator's commitments arrived
        # (a refused message only discards them; a custodian derives them from the transcript).
        nonces = round1.commit(self.party_id, self.key_share.signing_share)
        signed = self._sign(nonces, hiding, binding, message_hash)
        nonces.take()
        return nonces.commitments, signed

    def _on_round1(self, inputs: dict[int, tuple[SigningCommitments, _Signed]]) -> list[Message]:
        commitments, signed = inputs[self.peer]
        self._group_commitment = signed.group_commitment
        self._expect(3)
        payload = {**_commitments_payload(commitments), "sig_share": SUITE.serialize_scalar(signed.share).hex()}
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

"""FROST signing session (RFC 9591 §5) without a coordinator: one per signer.

Message flow::

    Round 1  i -> all   SigningCommitments (D_i, E_i)                       (§5.1 commit; broadcast)
    Round 2  i -> all   sig_share z_i and the hash of i's commitment list   (§5.2 sign; broadcast)
    Output   every signer aggregates (§5.3), verifies the signature, and on failure verifies each
             share to name the culprit (§5.4); all output the same 64-byte Ed25519 signature.

Payloads (hex strings):  round 1 {"hiding": D (32 bytes), "binding": E (32 bytes),
"message_hash": H4(msg) (64 bytes)}; round 2 {"sig_share": z_i (32-byte scalar), "view":
SHA-256 view hash of the commitment list and H4(msg)}.

Every signer plays the coordinator's part itself (§7.5). The round-2 view hash makes sure all
signers used the same commitment list and message (see ``protocols.frost.broadcast``): with
different lists an honest signer's share would fail another's check and be blamed wrongly. The
message hash in round 1 catches signers given different messages before any share is made:
that is a disagreement of inputs, not proof of an attack, so it is refused as ``InvalidMessage``
(state unchanged) and blames nobody. The nonces are made
in ``start()``, stay inside the session and are consumed by the single ``round2.sign`` call; the
session is never parked (``protocols.state``), so they never reach storage.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from curves import InvalidEncoding
from protocols.encoding import get_bytes, get_point, get_scalar, require_keys
from protocols.errors import InvalidMessage, ProtocolAbort, UsageError, require_instance
import protocols.frost.round1 as round1
import protocols.frost.round2 as round2
from protocols.frost.aggregate import aggregate_verified
from protocols.frost.broadcast import VIEW_HASH_LENGTH, inconsistency_culprit, view_hash
from protocols.frost.ciphersuite import FROST_ED25519_SHA512 as SUITE
from protocols.frost.helpers import (
    SigningCommitments,
    SigningContext,
    binding_factors_from_encoding,
    compute_signing_context,
    encode_group_commitment_list,
)
from protocols.frost.keys import KeyShare, check_identifiers
from protocols.rounds import Message, Session

__all__ = ["SignSession"]

_DUPLICATE_SIGNER = "duplicate signer identifier {}: each signer signs once, with its own share"


class SignSession(Session):
    """One signer's side of a FROST signing run; ``result()`` is the 64-byte signature."""

    protocol = "frost/sign"

    def __init__(self, session_id: bytes, key_share: KeyShare, signers: Iterable[int], message: bytes) -> None:
        signers = check_identifiers(signers, _DUPLICATE_SIGNER)
        require_instance(key_share, KeyShare, "a FROST SignSession takes this signer's key share")
        if not isinstance(message, (bytes, bytearray)):
            raise UsageError("message must be bytes")
        if len(signers) < key_share.threshold:
            raise UsageError(f"need at least t = {key_share.threshold} signers, got {len(signers)}")
        if not set(signers) <= set(key_share.participants):
            raise UsageError("every signer must be a participant of the key")
        super().__init__(session_id, key_share.identifier, signers)
        self.key_share = key_share
        self.message = bytes(message)
        self._message_hash = SUITE.H4(self.message)  # round 1's payload, every peer's check, ρ, the view
        self._nonces: round1.SigningNonces | None = None
        self._commitment_list: list[SigningCommitments] = []
        self._view = b""
        self._sig_share = 0

    # Round 1: commit (§5.1).
    def _begin(self) -> list[Message]:
        self._nonces = round1.commit(self.party_id, self.key_share.signing_share)
        if not self.peers:
            return self._on_round1({})
        self._expect(1)
        own = self._nonces.commitments
        return self._broadcast(1, {"hiding": own.hiding.to_bytes().hex(), "binding": own.binding.to_bytes().hex(),
                                   "message_hash": self._message_hash.hex()})

    def _decode_round1(self, msg: Message) -> SigningCommitments | tuple[SigningCommitments, bytes, SigningContext]:
        require_keys(msg.payload, ("hiding", "binding", "message_hash"))
        if get_bytes(msg.payload, "message_hash", 64) != self._message_hash:
            raise InvalidMessage("this signer was given a different message")
        hiding = get_point(msg.payload, "hiding", SUITE.group)
        if len(self._inputs) + 1 < len(self._awaited) or self._nonces is None:
            return SigningCommitments(msg.sender, hiding, get_point(msg.payload, "binding", SUITE.group))
        # The last commitments of the round complete the list, so the binding factors are known
        # and this sender's E is decoded by the multiplication ρ·E that R needs anyway
        # (``deserialize_element_mul``: the same checks, made once instead of twice). A bad E
        # is still ``InvalidMessage`` with the state unchanged; nothing here changes state.
        binding = get_bytes(msg.payload, "binding", SUITE.group.point_length)
        known = {i: (c.hiding.to_bytes(), c.binding.to_bytes()) for i, c in self._inputs.items()}
        own = self._nonces.commitments
        known[self.party_id] = (own.hiding.to_bytes(), own.binding.to_bytes())
        known[msg.sender] = (hiding.to_bytes(), binding)
        encoded = b"".join(SUITE.serialize_identifier(i) + known[i][0] + known[i][1] for i in self.parties)
        factors = binding_factors_from_encoding(
            self.key_share.group_public_key, self.parties, self.message, encoded, message_hash=self._message_hash
        )
        try:
            binding_point, binding_term = SUITE.deserialize_element_mul(binding, factors[msg.sender])
        except InvalidEncoding as exc:
            raise InvalidMessage(f"binding: {exc}") from None
        commitments = SigningCommitments(msg.sender, hiding, binding_point)
        listed = {**self._inputs, self.party_id: own, msg.sender: commitments}
        context = compute_signing_context(
            self.key_share.group_public_key, [listed[i] for i in self.parties], self.message,
            self._nonces.commitment_share, self.party_id,
            binding_factors=factors, binding_terms={msg.sender: binding_term},
        )
        return commitments, encoded, context

    # Round 2: sign (§5.2) over the commitment list everyone must share.
    def _on_round1(
        self, inputs: Mapping[int, SigningCommitments | tuple[SigningCommitments, bytes, SigningContext]]
    ) -> list[Message]:
        if self._nonces is None:
            raise UsageError("session not started")
        commitments: dict[int, SigningCommitments] = {}
        done: tuple[bytes, SigningContext] | None = None
        for i, value in inputs.items():
            if isinstance(value, tuple):  # decoded last: the list's encoding and context come with it
                commitments[i], encoded, context = value
                done = encoded, context
            else:
                commitments[i] = value
        commitments[self.party_id] = self._nonces.commitments
        self._commitment_list = [commitments[i] for i in self.parties]
        if done is not None:
            encoded, self._context = done
        else:
            encoded = encode_group_commitment_list(self._commitment_list)
            self._context = compute_signing_context(
                self.key_share.group_public_key, self._commitment_list, self.message,
                self._nonces.commitment_share, self.party_id, encoded_list=encoded, message_hash=self._message_hash,
            )
        self._view = view_hash(self.protocol, self.session_id, "commitments", {0: encoded, 1: self._message_hash})
        self._sig_share = round2.sign(self.key_share, self._nonces, self.message, self._commitment_list, self._context)
        if not self.peers:
            return self._on_round2({})
        self._expect(2)
        return self._broadcast(2, {"sig_share": SUITE.serialize_scalar(self._sig_share).hex(), "view": self._view.hex()})

    def _decode_round2(self, msg: Message) -> int:
        require_keys(msg.payload, ("sig_share", "view"))
        sig_share = get_scalar(msg.payload, "sig_share", SUITE.group)
        if get_bytes(msg.payload, "view", VIEW_HASH_LENGTH) != self._view:
            culprit = inconsistency_culprit(self.parties, self.party_id, msg.sender)
            raise ProtocolAbort("signers saw different round-1 commitments", culprit)
        return sig_share

    # Output: aggregate and verify (§5.3), naming a bad signer (§5.4).
    def _on_round2(self, inputs: dict[int, int]) -> list[Message]:
        sig_shares = dict(inputs)
        sig_shares[self.party_id] = self._sig_share
        signature = aggregate_verified(
            self._commitment_list, self.message, self.key_share.group_public_key,
            self.key_share.verifying_shares, sig_shares, self._context,
        )
        self._finish(signature)
        return []

    def __reduce__(self) -> Any:
        raise TypeError("a FROST signing session holding nonces is never serialised")


# Not parkable (``protocols.state``): it holds this signer's nonces between its rounds, and a
# parked copy restored from a backup would sign twice with them (RFC 9591 §7.3). A service signs
# with ``protocols.frost.round_trip`` instead, whose responder holds no nonce between rounds.

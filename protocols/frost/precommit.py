"""FROST signing with nonce commitments made ahead (RFC 9591 §5.1: round one may run in advance).

Precommit (``frost/precommit``), message independent, for ``count`` signing slots at once:

Round 1  i -> all   ``count`` pairs (D_i, E_i), one per slot        (§5.1 commit, ``count`` times)
Output   every signer: one ``CommittedNonces`` per slot: its own secret (d, e) for the slot, the
         commitment list of all signers for that slot, and the slot id
         H(tag ‖ session id ‖ slot number), which both sides use to name the slot later.

Online sign (``frost/online-sign``), one round and aggregation, from one slot (``SignSession``
from its round two on; round numbers kept, so the one message is round 2):

Round 2  i -> all   sig_share z_i (§5.2 over the slot's commitment list) and the view hash of
                    that list
Output   every signer aggregates, verifies the signature, and on failure verifies each share to
         name the culprit (§5.3, §5.4); all output the same 64-byte Ed25519 signature.

The view hash makes sure all signers hold the same commitment list, i.e. sign from the same slot
(its nonces are fresh, so the list names the slot); for n > 2 the precommit broadcast went over
point-to-point channels (see ``protocols.frost.broadcast``). Signers that picked different
slots abort; both slots are used up.

**Single use.** A slot's nonces leave a ``CommittedNonces`` once, through ``take()`` (the online
session takes them in its constructor), as RFC 9591 §7.3 demands: two signatures with one nonce
pair and different binding factors reveal the signing share. Nonces exist in serialised form only
through the explicit ``CommittedNonces.to_bytes()`` (for a pool that must survive a restart);
whoever persists them must delete the stored copy before using it (``mpc.presign`` does).

Byte format of ``CommittedNonces.to_bytes()`` (version 1; integers big-endian)::

    magic "FROSTpc" 0x01 ‖ slot id (32) ‖ identifier u32 ‖ group public key (32)
    ‖ d (32, scalar) ‖ e (32, scalar) ‖ n u32 ‖ n × (identifier u32 ‖ D (32) ‖ E (32))

``from_bytes`` checks exact length, canonical scalars and prime-order points, strictly increasing
identifiers, its own identifier listed with D = d·B and E = e·B.
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Iterable, Sequence
from typing import Any

from curves import InvalidEncoding, Point, SecretScalar
from protocols.encoding import get_list, require_keys
from protocols.errors import InvalidMessage, UsageError
from protocols.frost import round1
from protocols.frost.ciphersuite import FROST_ED25519_SHA512 as SUITE
from protocols.frost.helpers import SigningCommitments
from protocols.frost.keys import KeyShare
from protocols.frost.sign import SignSession
from protocols.rounds import Message, Session, parse_hex

__all__ = ["CommittedNonces", "PrecommitSession", "OnlineSignSession", "slot_id", "MAX_SLOTS"]

MAX_SLOTS = 1024  # bounds one precommit message (2·32 bytes hex per slot)
SLOT_ID_LENGTH = 32
_MAGIC = b"FROSTpc\x01"
_HEAD = struct.Struct(">32sI32s32s32sI")
_ENTRY = struct.Struct(">I32s32s")


def slot_id(session_id: bytes, index: int) -> bytes:
    """The id of slot ``index`` of the precommit run ``session_id`` (length-prefixed SHA-256)."""
    h = hashlib.sha256()
    for item in (b"portal-mpc/frost/precommit/slot/v1", session_id, index.to_bytes(4, "big")):
        h.update(len(item).to_bytes(8, "big") + item)
    return h.digest()


class CommittedNonces:
    """One signer's nonces for one slot, with the slot's commitment list (single use)."""

    __slots__ = ("slot", "identifier", "public_key", "commitment_list", "_nonces")

    def __init__(self, slot: bytes, identifier: int, group_public_key: Point, hiding: SecretScalar,
                 binding: SecretScalar, commitment_list: Sequence[SigningCommitments]) -> None:
        ids = [c.identifier for c in commitment_list]
        own = [c for c in commitment_list if c.identifier == identifier]
        if ids != sorted(set(ids)) or len(own) != 1:
            raise UsageError("the commitment list must be sorted, without duplicates, with the own entry")
        if own[0].hiding != hiding.public_point() or own[0].binding != binding.public_point():
            raise UsageError("the own commitments do not match the nonces")
        self._set(bytes(slot), identifier, group_public_key.to_bytes(), (hiding, binding), commitment_list)

    def _set(self, slot: bytes, identifier: int, public_key: bytes, nonces: tuple[SecretScalar, SecretScalar],
             commitment_list: Sequence[SigningCommitments]) -> None:
        self.slot = slot
        self.identifier = identifier
        self.public_key = public_key  # the group public key's encoding, compared with the key share's
        self.commitment_list = tuple(commitment_list)
        self._nonces: tuple[SecretScalar, SecretScalar] | None = nonces

    @property
    def group_public_key(self) -> Point:
        return SUITE.deserialize_element(self.public_key)

    @property
    def used(self) -> bool:
        return self._nonces is None

    @property
    def signers(self) -> tuple[int, ...]:
        return tuple(c.identifier for c in self.commitment_list)

    def take(self) -> round1.SigningNonces:
        """The slot's nonces as ``SigningNonces``, once; a second call raises ``UsageError``."""
        if self._nonces is None:
            raise UsageError("these precommitted nonces were already used")
        (hiding, binding), self._nonces = self._nonces, None
        own = next(c for c in self.commitment_list if c.identifier == self.identifier)
        return round1.SigningNonces(hiding, binding, own)

    def to_bytes(self) -> bytes:
        """The version-1 byte format (holds secret nonces: store it like a key share)."""
        if self._nonces is None:
            raise UsageError("used nonces cannot be serialised")
        hiding, binding = self._nonces
        head = _HEAD.pack(self.slot, self.identifier, self.public_key, hiding.to_bytes(),
                          binding.to_bytes(), len(self.commitment_list))
        entries = b"".join(_ENTRY.pack(c.identifier, c.hiding.to_bytes(), c.binding.to_bytes())
                           for c in self.commitment_list)
        return _MAGIC + head + entries

    @classmethod
    def from_bytes(cls, data: bytes) -> CommittedNonces:
        """Strictly parse ``to_bytes()`` output; anything else raises ``InvalidMessage``."""
        if not isinstance(data, (bytes, bytearray)) or bytes(data[: len(_MAGIC)]) != _MAGIC:
            raise InvalidMessage("not version-1 precommitted FROST nonces")
        data = bytes(data)
        if len(data) < len(_MAGIC) + _HEAD.size:
            raise InvalidMessage("precommitted nonces have the wrong length")
        slot, identifier, pk, d, e, n = _HEAD.unpack_from(data, len(_MAGIC))
        if not 1 <= n <= 1024 or len(data) != len(_MAGIC) + _HEAD.size + n * _ENTRY.size:
            raise InvalidMessage("precommitted nonces have the wrong length")
        offset = len(_MAGIC) + _HEAD.size
        entries = [_ENTRY.unpack_from(data, offset + k * _ENTRY.size) for k in range(n)]
        ids = [entry[0] for entry in entries]
        if ids != sorted(set(ids)) or ids.count(identifier) != 1:
            raise InvalidMessage("invalid precommitted nonces: identifiers not strictly increasing or own one missing")
        try:
            nonces = (SecretScalar.from_bytes(SUITE.group, d), SecretScalar.from_bytes(SUITE.group, e))
            # The own commitments are recomputed from the nonces (and must match the stored ones);
            # the peers' are decoded strictly; the group public key is compared, as bytes, with
            # the key share's when the nonces are used (``OnlineSignSession``).
            own = tuple(nonce.public_point() for nonce in nonces)
            commitments = []
            for i, hiding, binding in entries:
                if i == identifier:
                    if (hiding, binding) != tuple(p.to_bytes() for p in own):
                        raise InvalidMessage("invalid precommitted nonces: own commitments do not match the nonces")
                    commitments.append(SigningCommitments(i, *own))
                else:
                    commitments.append(SigningCommitments(i, SUITE.deserialize_element(hiding),
                                                          SUITE.deserialize_element(binding)))
        except InvalidEncoding as exc:
            raise InvalidMessage(f"invalid precommitted nonces: {exc}") from None
        if any(b == 0 for b in (int.from_bytes(d, "little"), int.from_bytes(e, "little"))) or slot == bytes(32):
            raise InvalidMessage("invalid precommitted nonces: zero nonce or slot id")
        obj = cls.__new__(cls)
        obj._set(slot, identifier, pk, nonces, commitments)
        return obj

    def __reduce__(self) -> Any:
        raise TypeError("precommitted nonces are serialised only through to_bytes()")

    def __repr__(self) -> str:
        state = "used" if self._nonces is None else "unused"
        return f"CommittedNonces(slot={self.slot.hex()[:16]}…, identifier={self.identifier}, {state}, <redacted>)"


def _check_key_share(key_share: KeyShare, signers: Iterable[int]) -> tuple[int, ...]:
    if not isinstance(key_share, KeyShare):
        raise UsageError("key_share must be a KeyShare")
    ids = tuple(sorted(signers))
    if len(set(ids)) < key_share.threshold or not set(ids) <= set(key_share.participants):
        raise UsageError(f"need at least t = {key_share.threshold} signers, all participants of the key")
    if key_share.identifier not in ids:
        raise UsageError("the own identifier must be among the signers")
    return ids


class PrecommitSession(Session):
    """One signer's side of a precommit run; ``result()`` is a list of ``CommittedNonces``."""

    protocol = "frost/precommit"

    def __init__(self, session_id: bytes, key_share: KeyShare, signers: Iterable[int], count: int) -> None:
        ids = _check_key_share(key_share, signers)
        if not isinstance(count, int) or isinstance(count, bool) or not 1 <= count <= MAX_SLOTS:
            raise UsageError(f"count must be between 1 and {MAX_SLOTS}")
        super().__init__(session_id, key_share.identifier, ids)
        self.key_share = key_share
        self.count = count

    def _begin(self) -> list[Message]:
        signing_share = self.key_share.signing_share
        self._own = [round1.commit(self.party_id, signing_share).take() for _ in range(self.count)]
        if not self.peers:
            return self._on_round1({})
        self._expect(1)
        pairs = [[d.public_point().to_bytes().hex(), e.public_point().to_bytes().hex()] for d, e in self._own]
        return self._broadcast(1, {"commitments": pairs})

    def _decode_round1(self, msg: Message) -> list[SigningCommitments]:
        require_keys(msg.payload, ("commitments",))
        out = []
        for k, pair in enumerate(get_list(msg.payload, "commitments", self.count)):
            if not isinstance(pair, (list, tuple)) or len(pair) != 2:
                raise InvalidMessage(f"commitments[{k}] must be a pair")
            try:
                hiding, binding = (SUITE.deserialize_element(parse_hex(x, f"commitments[{k}]")) for x in pair)
            except InvalidEncoding as exc:
                raise InvalidMessage(f"commitments[{k}]: {exc}") from None
            out.append(SigningCommitments(msg.sender, hiding, binding))
        return out

    def _on_round1(self, inputs: dict[int, list[SigningCommitments]]) -> list[Message]:
        slots = []
        for k, (hiding, binding) in enumerate(self._own):
            own = SigningCommitments(self.party_id, hiding.public_point(), binding.public_point())
            by_id = {i: lists[k] for i, lists in inputs.items()}
            by_id[self.party_id] = own
            commitment_list = [by_id[i] for i in self.parties]
            slot = CommittedNonces.__new__(CommittedNonces)  # own commitments computed just above
            slot._set(slot_id(self.session_id, k), self.party_id, self.key_share.public_key, (hiding, binding),
                      commitment_list)
            slots.append(slot)
        self._own = []
        self._finish(slots)
        return []


class OnlineSignSession(SignSession):
    """One signer's side of signing from a precommitted slot (its nonces are taken at once).

    This is ``SignSession`` with round one already done: the session starts at its round-two
    step (§5.2 over the slot's commitment list) and shares its round-two message, view check and
    aggregation; only the protocol name differs, so messages of the two never mix.
    """

    protocol = "frost/online-sign"

    def __init__(self, session_id: bytes, key_share: KeyShare, committed: CommittedNonces, message: bytes) -> None:
        if not isinstance(committed, CommittedNonces):
            raise UsageError("committed must be CommittedNonces")
        _check_key_share(key_share, committed.signers)
        if committed.identifier != key_share.identifier or committed.public_key != key_share.public_key:
            raise UsageError("these nonces were committed for another key or signer")
        super().__init__(session_id, key_share, committed.signers, message)
        self.slot = committed.slot
        self._peer_commitments = {c.identifier: c for c in committed.commitment_list if c.identifier != self.party_id}
        self._nonces = committed.take()

    def _begin(self) -> list[Message]:
        return self._on_round1(self._peer_commitments)

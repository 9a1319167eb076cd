"""Two-party ECDSA key generation (Lindell 2017, key generation; CGGMP proofs for Paillier).

Message flow::

    Round 1  P1 -> P2  commitment to (Q1 = x1·G, Schnorr proof of x1); the fingerprints of the
                       custodian setups P1 verified before, and its own setup's fingerprint
    Round 2  P2 -> P1  Q2 = x2·G with its Schnorr proof; P2's setup (N̂, s, t) with Π_prm and Π_mod
                       (only its fingerprint if P1 listed it); whether P2 verified P1's setup before
    Round 3  P1 -> P2  opening of round 1; N, c_key = Enc(x1), Π_mod, Π_fac, Π_log*
                       (see ``encrypted_share``); P1 checked Π_prm first (cached per setup);
                       P1's own setup (N̂_c, s, t) with Π_prm and Π_mod, against which P2 will
                       prove every c3 in signing (``protocols.zk.c3``); only its fingerprint if P2
                       verified it before
    Round 4  P2 -> P1  Q = Q1 + Q2, confirming that P2 accepted and stored its share
    Output   P1KeyShare / P2KeyShare with the same joint public key Q (33-byte compressed)

A setup's proofs travel until the receiver has verified them once (about 160 KB each way); a
fingerprint is accepted only if the receiver itself offered it (``setup.receive_setup``).

Commit-then-open stops P1 from choosing Q1 after seeing Q2 (so that Q would be P1's choice);
P2 sends Q2 in the clear because P1 is already bound. Every peer value is decoded strictly and
every proof verified before use; a failure aborts naming the peer.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from curves import Point, SecretScalar
from protocols.ecdsa2p.common import CLIENT, CUSTODIAN, GROUP, TwoPartySession, point_and_proof_bytes
from protocols.ecdsa2p.encrypted_share import EncryptedShare, prove_encrypted_share, verify_encrypted_share
import protocols.ecdsa2p.setup as setups
from protocols.ecdsa2p.setup import ClientSetup, CustodianSetup, CustodianSetupPublic
from protocols.ring_pedersen import RingPedersenParams
from protocols.ecdsa2p.shares import P1KeyShare, P2KeyShare
from protocols.encoding import get_bytes, get_point, require_keys
from protocols.errors import InvalidMessage, ProtocolAbort, require_instance
from protocols.rounds import Message
from protocols.commitments import COMMITMENT_LENGTH, NONCE_LENGTH
from protocols.zk import schnorr
from protocols.state import register_attrs, register_dataclass

__all__ = ["KeygenP1", "KeygenP2"]

PROTOCOL = "ecdsa2p/keygen"


@dataclass(frozen=True)
class _Round1:
    commitment: bytes
    known_setups: tuple[bytes, ...]
    client_setup_id: bytes


@dataclass(frozen=True)
class _Round2:
    q2: Point
    setup: CustodianSetupPublic
    client_setup_known: bool


@dataclass(frozen=True)
class _Round3:
    q1: Point
    encrypted: EncryptedShare
    client_params: RingPedersenParams


class KeygenP1(TwoPartySession):
    """The client's side of keygen; ``client_setup`` is the device's setup (process default if None)."""

    protocol = PROTOCOL

    def __init__(
        self,
        session_id: bytes,
        client_setup: ClientSetup | CustodianSetupPublic | None = None,
        *,
        known: list[bytes] | None = None,
    ) -> None:
        if client_setup is not None:
            require_instance(client_setup, (CustodianSetup, CustodianSetupPublic), "KeygenP1's client_setup")
        super().__init__(session_id, CLIENT)
        setup = client_setup or setups.default_client_setup()
        # Kept as its two parts: the state codec parks a *custodian* setup by reference only.
        self._client_public, self._client_rp = setups.public_and_trapdoor(setup)
        self._level = self._client_public.level  # the client's; the custodian's setup must match it
        self._known = list(setups.known_setups() if known is None else known)
        self._x1 = SecretScalar.random(GROUP)

    def _begin(self) -> list[Message]:
        q1 = self._x1.public_point()
        proof = schnorr.prove(self._x1, self._transcript("dlog", 1, CLIENT))
        commitment, nonce = self._commit(point_and_proof_bytes(q1, proof))
        self._opening = {"Q1": q1.to_bytes().hex(), "proof": proof.to_payload(), "nonce": nonce.hex()}
        self._expect(2)
        payload = {"commitment": commitment.hex(), **setups.offer(self._known, self._client_public)}
        return [self._message(1, payload, CUSTODIAN)]

    def _decode_round2(self, msg: Message) -> _Round2:
        require_keys(msg.payload, ("Q2", "proof", "setup", "client_setup_known"))
        q2 = get_point(msg.payload, "Q2", GROUP)
        proof = schnorr.SchnorrProof.from_payload(msg.payload["proof"], GROUP)
        known = msg.payload["client_setup_known"]
        if not isinstance(known, bool):
            raise InvalidMessage("client_setup_known must be a boolean")
        schnorr.verify(q2, proof, self._transcript("dlog", 2, CUSTODIAN))
        return _Round2(q2, setups.receive_setup(msg.payload["setup"], self._known, self._level), known)

    def _on_round2(self, inputs: dict[int, Any]) -> list[Message]:
        round2: _Round2 = inputs[CUSTODIAN]
        self._q2 = round2.q2
        self._paillier, encrypted = prove_encrypted_share(
            self._x1, round2.setup.params, self._transcript("encrypted-share", 3, CLIENT), self._level
        )
        self._c_key = encrypted.c_key
        self._expect(4)
        payload = {**self._opening, **encrypted.to_payload(),
                   "client_setup": setups.setup_payload(self._client_public, round2.client_setup_known)}
        return [self._message(3, payload, CUSTODIAN)]

    def _decode_round4(self, msg: Message) -> Point:
        require_keys(msg.payload, ("Q",))
        return get_point(msg.payload, "Q", GROUP)

    def _on_round4(self, inputs: dict[int, Any]) -> list[Message]:
        public = self._x1.public_point() + self._q2
        if public.is_identity or inputs[CUSTODIAN] != public:
            raise ProtocolAbort("custodian confirmed a different public key", CUSTODIAN)
        self._finish(P1KeyShare(self._x1, public, self._q2, self._paillier, c_key=self._c_key,
                                ring_pedersen=self._client_rp, level=self._level))
        return []


class KeygenP2(TwoPartySession):
    """The custodian's side of keygen; ``setup`` is its long-lived ring-Pedersen setup.

    ``known``: the client setups this party accepts by fingerprint (default: those this process
    verified); ``KeygenP1``'s ``known`` is the same for custodian setups. Pass ``[]`` to always
    send and check the proofs in full.
    """

    protocol = PROTOCOL

    def __init__(self, session_id: bytes, setup: CustodianSetup, *, known: list[bytes] | None = None) -> None:
        require_instance(setup, CustodianSetup, "KeygenP2 takes the custodian's setup (with its trapdoor)")
        super().__init__(session_id, CUSTODIAN)
        self._setup = setup
        self._known = known

    def _begin(self) -> list[Message]:
        self._expect(1)
        return []

    def _decode_round1(self, msg: Message) -> _Round1:
        require_keys(msg.payload, ("commitment", "known_setups", "client_setup_id"))
        return _Round1(get_bytes(msg.payload, "commitment", COMMITMENT_LENGTH), *setups.decode_offer(msg.payload))

    def _on_round1(self, inputs: dict[int, Any]) -> list[Message]:
        round1: _Round1 = inputs[CLIENT]
        self._commitment = round1.commitment
        self._client_setup_id = round1.client_setup_id
        self._client_setup_known = setups.peer_verified(round1.client_setup_id, self._known)  # or None
        # x2 only now, once P1 is bound to Q1 (docs/threat-model.md, "Rollback": a replay of
        # this commitment gives the same x2, another commitment a fresh one).
        self._x2 = SecretScalar.random(GROUP)
        proof = schnorr.prove(self._x2, self._transcript("dlog", 2, CUSTODIAN))
        own = self._setup.public
        payload = {
            "Q2": self._x2.public_point().to_bytes().hex(),
            "proof": proof.to_payload(),
            "setup": setups.setup_payload(own, own.fingerprint in round1.known_setups),
            "client_setup_known": self._client_setup_known is not None,
        }
        self._expect(3)
        return [self._message(2, payload, CLIENT)]

    def _decode_round3(self, msg: Message) -> _Round3:
        payload = msg.payload
        require_keys(payload, ("Q1", "proof", "nonce", "client_setup", *EncryptedShare.payload_keys()))
        q1 = get_point(payload, "Q1", GROUP)
        proof = schnorr.SchnorrProof.from_payload(payload["proof"], GROUP)
        nonce = get_bytes(payload, "nonce", NONCE_LENGTH)
        params, level = self._setup.public.params, self._setup.public.level
        encrypted = EncryptedShare.from_payload(
            {k: payload[k] for k in EncryptedShare.payload_keys()}, params, q1, level
        )
        self._verify_opening(self._commitment, point_and_proof_bytes(q1, proof), nonce)
        schnorr.verify(q1, proof, self._transcript("dlog", 1, CLIENT))
        verify_encrypted_share(encrypted, q1, params, self._transcript("encrypted-share", 3, CLIENT), level)
        client_setup = setups.receive_client_setup(payload["client_setup"], self._client_setup_id,
                                                   self._client_setup_known, level)
        return _Round3(q1, encrypted, client_setup.params)

    def _on_round3(self, inputs: dict[int, Any]) -> list[Message]:
        round3: _Round3 = inputs[CLIENT]
        public = round3.q1 + self._x2.public_point()
        if public.is_identity:
            raise ProtocolAbort("joint public key is the identity", CLIENT)
        share = P2KeyShare(self._x2, public, round3.q1, round3.encrypted.paillier, round3.encrypted.c_key,
                           round3.client_params, self._setup.public.level)
        self._finish(share)
        return [self._message(4, {"Q": public.to_bytes().hex()}, CLIENT)]


# Parkable state (``protocols.state``).
for _session in (KeygenP1, KeygenP2):
    register_attrs(_session)
for _value in (_Round1, _Round2, _Round3):
    register_dataclass(_value)

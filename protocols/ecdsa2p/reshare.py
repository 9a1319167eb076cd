"""Two-party resharing of an ECDSA key: refresh, backup and recover (cb-mpc
``refresh()``), with the CGGMP proofs for a fresh Paillier key.

Message flow::

    Round 1  P1 -> P2  Q and Q1 of the old pair; commitment to ρ1; whether the new pair signs (and,
                       for a signing pair, the setup fingerprints P1 knows and its own, as in keygen)
    Round 2  P2 -> P1  ρ2 (and, for a signing pair, P2's setup (N̂, s, t) with Π_prm and Π_mod, or
                       its fingerprint, and whether P2 verified P1's setup before)
    Round 3  P1 -> P2  opening of ρ1 (and, for a signing pair, N', c_key' = Enc(x1'), Π_mod,
                       Π_fac, Π_log* for Q1' = Q1 + ρ·G, see ``encrypted_share``, and P1's own
                       setup with Π_prm and Π_mod for the c3 proofs, as in keygen)
    Round 4  P2 -> P1  Q1', confirming that P2 accepted and derived its new share
    Output   new shares x1' = x1 + ρ, x2' = x2 − ρ (mod q) with ρ = ρ1 + ρ2; same Q

ρ is joint: P1 is bound to ρ1 before it sees ρ2, and P2 picks ρ2 without knowing ρ1, so neither
side controls the offset between old and new shares. An old share never combines with a new one
(x1 + x2' = x − ρ). A pair made "for backup" carries no Paillier material and cannot sign; a
later resharing "for signing" turns it back into a signing pair with a fresh Paillier key
(wallet backup and recover). A locked share cannot be reshared: its bits may have leaked.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from curves import Point, SecretScalar
from protocols.commitments import COMMITMENT_LENGTH, NONCE_LENGTH
from protocols.ecdsa2p.common import CLIENT, CUSTODIAN, GROUP, TwoPartySession
from protocols.ecdsa2p.encrypted_share import EncryptedShare, prove_encrypted_share, verify_encrypted_share
import protocols.ecdsa2p.setup as setups
from protocols.ecdsa2p.setup import ClientSetup, CustodianSetup, CustodianSetupPublic
from protocols.ring_pedersen import RingPedersenParams, RingPedersenSecret
from protocols.ecdsa2p.shares import P1KeyShare, P2KeyShare
from protocols.encoding import get_bytes, get_point, get_scalar, require_keys
from protocols.errors import InvalidMessage, ProtocolAbort, ShareMismatch, UsageError, require_instance
from protocols.rounds import Message
from protocols.state import register_attrs, register_dataclass

__all__ = ["ReshareP1", "ReshareP2"]

PROTOCOL = "ecdsa2p/reshare"


@dataclass(frozen=True)
class _Round1:
    commitment: bytes
    known_setups: tuple[bytes, ...] = ()
    client_setup_id: bytes = b""


@dataclass(frozen=True)
class _Round2:
    rho2: int
    setup: CustodianSetupPublic | None
    client_setup_known: bool = False


@dataclass(frozen=True)
class _Round3:
    rho1: int
    encrypted: EncryptedShare | None
    client_params: RingPedersenParams | None


def _get_flag(payload: Any, key: str) -> bool:
    value = payload.get(key)
    if not isinstance(value, bool):
        raise InvalidMessage(f"{key} must be a boolean")
    return value


class ReshareP1(TwoPartySession):
    """The client's side: it holds x1 (from a signing or a backup share)."""

    protocol = PROTOCOL

    def __init__(
        self,
        session_id: bytes,
        share: P1KeyShare,
        *,
        for_signing: bool = True,
        client_setup: ClientSetup | CustodianSetupPublic | None = None,
        known: list[bytes] | None = None,
    ) -> None:
        require_instance(share, P1KeyShare, "ReshareP1 takes the client's share")
        if client_setup is not None:
            require_instance(client_setup, (CustodianSetup, CustodianSetupPublic), "ReshareP1's client_setup")
        share.check_usable()
        super().__init__(session_id, CLIENT)
        self._share = share
        self._for_signing = for_signing
        setup = (client_setup or setups.default_client_setup()) if for_signing else None
        # Kept as its two parts: the state codec parks a *custodian* setup by reference only.
        self._client_public: CustodianSetupPublic | None = None
        self._client_rp: RingPedersenSecret | RingPedersenParams | None = None
        if setup is not None:
            self._client_public, self._client_rp = setups.public_and_trapdoor(setup)
        self._known = (setups.known_setups() if known is None else list(known)) if for_signing else []
        self._rho1 = GROUP.random_scalar()

    def _begin(self) -> list[Message]:
        self._share.check_usable()
        commitment, self._nonce = self._commit(GROUP.encode_scalar(self._rho1))
        self._expect(2)
        payload = {
            "Q": self._share.public_key.hex(),
            "Q1": self._share.q1.to_bytes().hex(),
            "commitment": commitment.hex(),
            "for_signing": self._for_signing,
        }
        if self._client_public is not None:
            payload.update(setups.offer(self._known, self._client_public))
        return [self._message(1, payload, CUSTODIAN)]

    def _decode_round2(self, msg: Message) -> _Round2:
        keys = ("rho2", "setup", "client_setup_known") if self._for_signing else ("rho2",)
        require_keys(msg.payload, keys)
        rho2 = get_scalar(msg.payload, "rho2", GROUP)
        if not self._for_signing:
            return _Round2(rho2, None)
        known = _get_flag(msg.payload, "client_setup_known")
        if self._client_public is None:  # set in __init__ for every signing resharing
            raise UsageError("a resharing for signing needs the client's setup")
        level = self._client_public.level
        return _Round2(rho2, setups.receive_setup(msg.payload["setup"], self._known, level), known)

    def _on_round2(self, inputs: dict[int, Any]) -> list[Message]:
        self._share.check_usable()  # locked by a signing session since this one started
        round2: _Round2 = inputs[CUSTODIAN]
        rho = (self._rho1 + round2.rho2) % GROUP.order
        self._x1 = SecretScalar(GROUP, (self._share.x1.value + rho) % GROUP.order)
        self._q2 = self._share.q2 - GROUP.base_mul(rho)
        payload: dict[str, Any] = {"rho1": GROUP.encode_scalar(self._rho1).hex(), "nonce": self._nonce.hex()}
        self._paillier = self._c_key = None
        if round2.setup is not None and self._client_public is not None:
            transcript = self._transcript("encrypted-share", 3, CLIENT)
            self._paillier, encrypted = prove_encrypted_share(self._x1, round2.setup.params, transcript,
                                                              round2.setup.level)
            self._c_key = encrypted.c_key
            payload.update(encrypted.to_payload())
            payload["client_setup"] = setups.setup_payload(self._client_public, round2.client_setup_known)
        self._expect(4)
        return [self._message(3, payload, CUSTODIAN)]

    def _decode_round4(self, msg: Message) -> Point:
        require_keys(msg.payload, ("Q1",))
        return get_point(msg.payload, "Q1", GROUP)

    def _on_round4(self, inputs: dict[int, Any]) -> list[Message]:
        if inputs[CUSTODIAN] != self._x1.public_point():
            raise ProtocolAbort("custodian confirmed a different new share", CUSTODIAN)
        ring_pedersen = self._client_rp if self._paillier is not None else None
        level = self._client_public.level if self._client_public is not None else self._share.level
        self._finish(P1KeyShare(self._x1, self._share.public_point, self._q2, self._paillier, c_key=self._c_key,
                                ring_pedersen=ring_pedersen, level=level))
        return []


class ReshareP2(TwoPartySession):
    """The custodian's side: it holds x2; ``setup`` is needed when the new pair signs."""

    protocol = PROTOCOL

    def __init__(
        self, session_id: bytes, share: P2KeyShare, *, for_signing: bool = True, setup: CustodianSetup | None = None,
        known: list[bytes] | None = None,
    ) -> None:
        require_instance(share, P2KeyShare, "ReshareP2 takes the custodian's share")
        if setup is not None:
            require_instance(setup, CustodianSetup, "ReshareP2's setup")
        if for_signing and setup is None:
            raise UsageError("a resharing for signing needs the custodian setup")
        super().__init__(session_id, CUSTODIAN)
        self._share = share
        self._for_signing = for_signing
        self._setup = setup
        self._known = known  # client setups accepted by fingerprint (None: those this process verified)

    def _begin(self) -> list[Message]:
        self._expect(1)
        return []

    def _decode_round1(self, msg: Message) -> _Round1:
        signing_keys = ("known_setups", "client_setup_id") if self._for_signing else ()
        require_keys(msg.payload, ("Q", "Q1", "commitment", "for_signing", *signing_keys))
        if _get_flag(msg.payload, "for_signing") != self._for_signing:
            raise InvalidMessage("client and custodian disagree on the purpose of the resharing")
        if get_point(msg.payload, "Q", GROUP) != self._share.public_point or \
                get_point(msg.payload, "Q1", GROUP) != self._share.q1:
            raise ShareMismatch("the client's share does not belong to this custodian share")
        commitment = get_bytes(msg.payload, "commitment", COMMITMENT_LENGTH)
        if not self._for_signing:
            return _Round1(commitment)
        return _Round1(commitment, *setups.decode_offer(msg.payload))

    def _on_round1(self, inputs: dict[int, Any]) -> list[Message]:
        round1: _Round1 = inputs[CLIENT]
        self._commitment = round1.commitment
        self._client_setup_id = round1.client_setup_id
        self._client_setup_known = setups.peer_verified(round1.client_setup_id, self._known) if self._for_signing \
            else None
        self._rho2 = GROUP.random_scalar()
        payload: dict[str, Any] = {"rho2": GROUP.encode_scalar(self._rho2).hex()}
        if self._setup is not None and self._for_signing:
            own = self._setup.public
            payload["setup"] = setups.setup_payload(own, own.fingerprint in round1.known_setups)
            payload["client_setup_known"] = self._client_setup_known is not None
        self._expect(3)
        return [self._message(2, payload, CLIENT)]

    def _new_q1(self, rho1: int) -> Point:
        return self._share.q1 + GROUP.base_mul((rho1 + self._rho2) % GROUP.order)

    def _decode_round3(self, msg: Message) -> _Round3:
        payload = msg.payload
        extra = EncryptedShare.payload_keys() if self._for_signing else ()
        require_keys(payload, ("rho1", "nonce", *extra, *(("client_setup",) if self._for_signing else ())))
        rho1 = get_scalar(payload, "rho1", GROUP)
        nonce = get_bytes(payload, "nonce", NONCE_LENGTH)
        q1 = self._new_q1(rho1)
        encrypted = client_params = None
        if self._for_signing:
            params = self._setup.public.params  # type: ignore[union-attr]
            level = self._setup.public.level  # type: ignore[union-attr]
            encrypted = EncryptedShare.from_payload({k: payload[k] for k in extra}, params, q1, level)
        self._verify_opening(self._commitment, GROUP.encode_scalar(rho1), nonce)
        if encrypted is not None:
            verify_encrypted_share(encrypted, q1, params, self._transcript("encrypted-share", 3, CLIENT), level)
            client_params = setups.receive_client_setup(payload["client_setup"], self._client_setup_id,
                                                        self._client_setup_known, level).params
        return _Round3(rho1, encrypted, client_params)

    def _on_round3(self, inputs: dict[int, Any]) -> list[Message]:
        round3: _Round3 = inputs[CLIENT]
        rho = (round3.rho1 + self._rho2) % GROUP.order
        x2 = SecretScalar(GROUP, (self._share.x2.value - rho) % GROUP.order)
        q1 = self._new_q1(round3.rho1)
        paillier = c_key = None
        if round3.encrypted is not None:
            paillier, c_key = round3.encrypted.paillier, round3.encrypted.c_key
        level = self._setup.public.level if self._for_signing and self._setup is not None else self._share.level
        self._finish(P2KeyShare(x2, self._share.public_point, q1, paillier, c_key, round3.client_params, level))
        return [self._message(4, {"Q1": q1.to_bytes().hex()}, CLIENT)]


# Parkable state (``protocols.state``).
for _session in (ReshareP1, ReshareP2):
    register_attrs(_session)
for _value in (_Round1, _Round2, _Round3):
    register_dataclass(_value)

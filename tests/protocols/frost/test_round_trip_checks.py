"""The round trip's initiator checks D_R's subgroup only when the aggregate fails
(``protocols.frost.round_trip``): every bad D_R or E_R is still ``InvalidMessage``, even from a
responder that signs consistently over it, and the initiator then finishes with the honest reply."""

from __future__ import annotations

import dataclasses
import secrets
import traceback

import nacl.signing
import pytest
from nacl import bindings as sodium

import protocols.frost as frost
from curves import ed25519
from curves.ed25519 import L
from protocols.errors import InvalidMessage, ProtocolAbort
from protocols.frost.ciphersuite import FROST_ED25519_SHA512 as SUITE
from protocols.frost.helpers import binding_factors_from_encoding, derive_interpolating_value
from protocols.frost.round_trip import PROTOCOL, InitiatorSession, ResponderSession
from protocols.rounds import Message

SHARES = frost.dkg(2, 2)
MESSAGE = b"pay bob 5"
P_FIELD = 2**255 - 19
ORDER_8 = bytes.fromhex("26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05")


def _le(value: int) -> bytes:
    return value.to_bytes(32, "little")


def _torsioned(point: bytes) -> bytes:
    """point + a point of order 8: on the curve, outside the prime-order subgroup."""
    return sodium.crypto_core_ed25519_add(point, ORDER_8)


_VALID = ed25519.base_mul(7).to_bytes()
BAD_POINTS = {
    "torsioned": _torsioned(_VALID),
    "order 8": ORDER_8,
    "order 2": bytes.fromhex("ec" + "ff" * 30 + "7f"),
    "order 4": bytes(32),
    "identity": b"\x01" + bytes(31),
    "identity, sign bit set": b"\x01" + bytes(30) + b"\x80",
    "identity, non-canonical (p + 1)": _le(P_FIELD + 1),
    "non-canonical (p)": _le(P_FIELD),
    "off the curve": _le(2),
    "all ones": b"\xff" * 32,
}


def _sessions() -> tuple[InitiatorSession, ResponderSession, Message]:
    """Both sides started; returns them with the initiator's round 1 (not delivered yet)."""
    sid = secrets.token_bytes(32)
    initiator = InitiatorSession(sid, SHARES[0], SHARES[1].identifier, MESSAGE)
    responder = ResponderSession(sid, SHARES[1], SHARES[0].identifier, MESSAGE)
    responder.start()
    return initiator, responder, _wire(initiator.start()[0])


def _started() -> tuple[InitiatorSession, ResponderSession, Message, Message]:
    """Both sides after round 1; returns them with round 1 and the responder's honest round 2."""
    initiator, responder, first = _sessions()
    (reply,) = responder.receive(first)
    return initiator, responder, first, _wire(reply)


def _wire(msg: Message) -> Message:
    return Message.from_bytes(msg.to_bytes())


def _refused_then_finished(initiator: InitiatorSession, responder: ResponderSession, bad: Message,
                           honest: Message) -> None:
    """``bad`` is InvalidMessage and leaves the initiator as it was: the honest reply finishes."""
    with pytest.raises(InvalidMessage):
        initiator.receive(_wire(bad))
    assert initiator.aborted is None and not initiator.done and initiator.awaiting_round == 2
    (final,) = initiator.receive(honest)
    assert responder.receive(_wire(final)) == []
    assert initiator.result() == responder.result()
    nacl.signing.VerifyKey(SHARES[0].public_key).verify(MESSAGE, initiator.result())


@pytest.mark.parametrize("field", ["hiding", "binding"])
@pytest.mark.parametrize("name", sorted(BAD_POINTS))
def test_a_bad_responder_point_is_invalid_and_the_honest_reply_still_finishes(field: str, name: str) -> None:
    initiator, responder, _, honest = _started()
    bad = dataclasses.replace(honest, payload={**honest.payload, field: BAD_POINTS[name].hex()})
    _refused_then_finished(initiator, responder, bad, honest)


def _consistent_reply(first: Message, hiding: bytes, hiding_log: int) -> Message:
    """Round 2 of a dishonest responder that signs consistently over D_R = ``hiding`` (any bytes
    libsodium adds; ``hiding_log`` the logarithm of its prime-order part) and a fresh E_R:
    z_R = d + ρ_R·e + λ_R·s_R·c with R and c computed over exactly these bytes (independently of
    ``protocols.frost.round_trip``, with libsodium's own calls)."""
    own, peer = SHARES[1], SHARES[0]
    binding_log = ed25519.random_scalar()
    binding = sodium.crypto_scalarmult_ed25519_base_noclamp(_le(binding_log))
    peer_hiding, peer_binding = (bytes.fromhex(first.payload[k]) for k in ("hiding", "binding"))
    encoded = (SUITE.serialize_identifier(peer.identifier) + peer_hiding + peer_binding
               + SUITE.serialize_identifier(own.identifier) + hiding + binding)
    ids = (peer.identifier, own.identifier)
    factors = binding_factors_from_encoding(own.group_public_key, ids, MESSAGE, encoded)
    peer_term = sodium.crypto_core_ed25519_add(
        peer_hiding, sodium.crypto_scalarmult_ed25519_noclamp(_le(factors[peer.identifier]), peer_binding))
    own_term = sodium.crypto_core_ed25519_add(
        hiding, sodium.crypto_scalarmult_ed25519_noclamp(_le(factors[own.identifier]), binding))
    group_commitment = sodium.crypto_core_ed25519_add(peer_term, own_term)
    challenge = SUITE.H2(group_commitment + own.public_key + MESSAGE)
    share = (hiding_log + factors[own.identifier] * binding_log
             + derive_interpolating_value(ids, own.identifier) * own.signing_share.value * challenge) % L
    payload = {"hiding": hiding.hex(), "binding": binding.hex(), "sig_share": _le(share).hex()}
    return Message(PROTOCOL, first.session_id, 2, own.identifier, peer.identifier, payload)


def test_the_consistent_reply_of_a_valid_hiding_signs() -> None:
    """The control for the test below: over a valid D_R the dishonest responder's reply is a
    correct one, so its refusals there are the checks' doing."""
    initiator, responder, first, _ = _started()
    hiding_log = ed25519.random_scalar()
    reply = _consistent_reply(first, ed25519.base_mul(hiding_log).to_bytes(), hiding_log)
    (final,) = initiator.receive(_wire(reply))
    nacl.signing.VerifyKey(SHARES[0].public_key).verify(MESSAGE, bytes.fromhex(final.payload["signature"]))


@pytest.mark.parametrize("hiding, hiding_log", [
    (_torsioned(ed25519.base_mul(11).to_bytes()), 11),  # a cofactored verifier would accept this signature
    (b"\x01" + bytes(31), 0),  # the identity: the cofactorless verification passes, the encoding check refuses
    (b"\x01" + bytes(30) + b"\x80", 0),
    (_le(P_FIELD + 1), 0),
    (ORDER_8, 0),
], ids=["torsioned", "identity", "identity, sign bit set", "identity, non-canonical", "order 8"])
def test_a_responder_signing_consistently_over_a_bad_hiding_is_refused(hiding: bytes, hiding_log: int) -> None:
    initiator, responder, first, honest = _started()
    _refused_then_finished(initiator, responder, _consistent_reply(first, hiding, hiding_log), honest)


@pytest.mark.parametrize("name", sorted(BAD_POINTS))
def test_the_responder_refuses_the_same_initiator_points_up_front(name: str) -> None:
    """The responder sends z_R before any signature exists: it decodes D_I and E_I fully, and
    refuses what the initiator refuses, state unchanged."""
    _, responder, first = _sessions()
    for field in ("hiding", "binding"):
        bad = dataclasses.replace(first, payload={**first.payload, field: BAD_POINTS[name].hex()})
        with pytest.raises(InvalidMessage):
            responder.receive(_wire(bad))
        assert responder.aborted is None and responder.awaiting_round == 1
    assert len(responder.receive(first)) == 1


def test_a_refused_reply_leaves_no_signature_in_the_errors_frames() -> None:
    """R ‖ (z_I + z_R) of a refused reply gives z_I to the responder that knows z_R, and the
    initiator's nonces sign the retry: the frames the error keeps hold no 64-byte value, and no
    local's repr shows a share (``repr`` of what holds z_I is redacted)."""
    initiator, _, first, _ = _started()
    bad = _consistent_reply(first, _torsioned(ed25519.base_mul(11).to_bytes()), 11)
    with pytest.raises(InvalidMessage) as info:
        initiator.receive(_wire(bad))
    for frame, _ in traceback.walk_tb(info.value.__traceback__):
        for name, value in frame.f_locals.items():
            assert not (isinstance(value, bytes) and len(value) == 64), name
            assert "redacted" in repr(value) or not type(value).__name__.startswith("_Signed"), name


def test_a_bad_responder_share_aborts_naming_it_and_the_nonces_are_forgotten() -> None:
    initiator, _, _, honest = _started()
    bad_share = (int.from_bytes(bytes.fromhex(honest.payload["sig_share"]), "little") + 1) % L
    bad = dataclasses.replace(honest, payload={**honest.payload, "sig_share": _le(bad_share).hex()})
    with pytest.raises(ProtocolAbort) as aborted:
        initiator.receive(_wire(bad))
    assert aborted.value.culprit == SHARES[1].identifier
    assert "unused" not in repr(initiator._nonces)  # taken: no later call could sign with them
    with pytest.raises(ProtocolAbort):  # and the honest reply cannot revive the run
        initiator.receive(honest)

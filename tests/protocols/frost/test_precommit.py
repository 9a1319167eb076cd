"""FROST with precommitted nonces: one-round online signing, single use, persistence, tampering."""

from __future__ import annotations

import pickle
import secrets

import pytest
from nacl.signing import VerifyKey

from protocols import frost
from protocols.errors import InvalidMessage, ProtocolAbort, UsageError
from protocols.frost.precommit import CommittedNonces, OnlineSignSession, PrecommitSession
from protocols.local import run
from protocols.rounds import Message


def sid() -> bytes:
    return secrets.token_bytes(32)


def precommit(shares, count: int) -> list[list[CommittedNonces]]:
    ids = [s.identifier for s in shares]
    session = sid()
    return run([PrecommitSession(session, s, ids, count) for s in shares])


def online(shares, slots, message: bytes, tamper=None):
    session = sid()
    return run([OnlineSignSession(session, s, c, message) for s, c in zip(shares, slots)], tamper=tamper)


@pytest.fixture(scope="module")
def shares_2of2():
    return frost.dkg(2, 2)


def test_online_signatures_verify_for_2_of_2_and_2_of_3(shares_2of2) -> None:
    three = frost.dkg(2, 3)
    for shares in (shares_2of2, [three[0], three[2]]):
        pools = precommit(shares, 3)
        for k in range(3):
            slots = [pool[k] for pool in pools]
            assert len({c.slot for c in slots}) == 1
            message = secrets.token_bytes(40)
            signatures = online(shares, slots, message)
            assert len(set(signatures)) == 1
            VerifyKey(shares[0].public_key).verify(message, signatures[0])


def test_slots_are_single_use(shares_2of2) -> None:
    pools = precommit(shares_2of2, 1)
    slots = [pool[0] for pool in pools]
    online(shares_2of2, slots, b"first")
    assert all(c.used for c in slots)
    with pytest.raises(UsageError):
        OnlineSignSession(sid(), shares_2of2[0], slots[0], b"second")
    with pytest.raises(UsageError):
        slots[1].to_bytes()


def test_round_trip_and_strict_decoding(shares_2of2) -> None:
    pools = precommit(shares_2of2, 2)
    slots = [CommittedNonces.from_bytes(pool[0].to_bytes()) for pool in pools]
    assert slots[0].to_bytes() == pools[0][0].to_bytes()
    assert "redacted" in repr(slots[0])
    with pytest.raises(TypeError):
        pickle.dumps(slots[0])
    signature = online(shares_2of2, slots, b"persisted")[0]
    VerifyKey(shares_2of2[0].public_key).verify(b"persisted", signature)
    data = pools[0][1].to_bytes()
    flipped_d = data[:84] + bytes([data[84] ^ 1]) + data[85:]  # d no longer matches D
    for bad in (data[:-1], data + b"\0", b"", b"FROSTpc\x02" + data[8:], flipped_d):
        with pytest.raises(InvalidMessage):
            CommittedNonces.from_bytes(bad)


def test_refuses_nonces_of_another_key_or_signer(shares_2of2) -> None:
    pools = precommit(shares_2of2, 1)
    other = frost.dkg(2, 2)
    with pytest.raises(UsageError):
        OnlineSignSession(sid(), other[0], pools[0][0], b"m")
    with pytest.raises(UsageError):
        OnlineSignSession(sid(), shares_2of2[1], pools[0][0], b"m")
    assert not pools[0][0].used


def test_mismatched_slots_are_refused(shares_2of2) -> None:
    pools = precommit(shares_2of2, 2)
    with pytest.raises(ProtocolAbort):
        online(shares_2of2, [pools[0][0], pools[1][1]], b"m")


def test_tampered_signature_share_names_its_signer(shares_2of2) -> None:
    pools = precommit(shares_2of2, 1)

    def bump(msg: Message):
        if msg.sender == 2:
            z = (int.from_bytes(bytes.fromhex(msg.payload["sig_share"]), "little") + 1) % frost.FROST_ED25519_SHA512.order
            payload = {**msg.payload, "sig_share": z.to_bytes(32, "little").hex()}
            return Message(msg.protocol, msg.session_id, msg.round, msg.sender, msg.recipient, payload)
        return msg

    with pytest.raises(ProtocolAbort) as err:
        online(shares_2of2, [pool[0] for pool in pools], b"m", tamper=bump)
    assert err.value.culprit == 2


def test_tampered_precommitment_is_refused(shares_2of2) -> None:
    def identity_point(msg: Message):
        pairs = [list(p) for p in msg.payload["commitments"]]
        pairs[0][1] = "01" + "00" * 31
        return Message(msg.protocol, msg.session_id, msg.round, msg.sender, msg.recipient, {"commitments": pairs})

    with pytest.raises(InvalidMessage):
        run([PrecommitSession(sid(), s, [1, 2], 2) for s in shares_2of2], tamper=identity_point)


def test_count_bounds(shares_2of2) -> None:
    for count in (0, -1, 10**6, True):
        with pytest.raises(UsageError):
            PrecommitSession(sid(), shares_2of2[0], [1, 2], count)

"""Two-party ECDSA presigning: signatures from presignatures, single use, lock rule, tampering."""

from __future__ import annotations

import pickle
import secrets

import pytest

from protocols.ecdsa2p import CLIENT, CUSTODIAN, P1KeyShare, P2KeyShare
from protocols.ecdsa2p.presign import (
    OnlineSignP1,
    OnlineSignP2,
    P1Presignature,
    P2Presignature,
    PresignP1,
    PresignP2,
)
from protocols import paillier
from protocols.errors import InvalidMessage, KeyLocked, ProtocolAbort, UsageError
from protocols.local import run
from protocols.rounds import Message
from tests.protocols.ecdsa2p.harness import check_signature, copy_p1, new_sid

Pair = tuple[P1KeyShare, P2KeyShare]


def presign(pair: Pair) -> tuple[P1Presignature, P2Presignature]:
    sid = new_sid()
    a, b = run([PresignP1(sid, pair[0]), PresignP2(sid, pair[1])])
    return a, b


def online(pair: Pair, pres: tuple[P1Presignature, P2Presignature], digest: bytes, tamper=None, p1=None):
    sid = new_sid()
    return run([OnlineSignP1(sid, p1 or pair[0], pres[0], digest), OnlineSignP2(sid, pair[1], pres[1], digest)],
               tamper=tamper)


def test_presignatures_match_and_signatures_verify(pair: Pair) -> None:
    for _ in range(3):
        a, b = presign(pair)
        assert a.id == b.id and a.r == b.r and a.r_point == b.r_point
        digest = secrets.token_bytes(32)
        s1, s2 = online(pair, (a, b), digest)
        assert s1 == s2 and s1.r == a.r
        check_signature(pair[0].public_key, digest, s1)


def test_presignatures_round_trip_and_hide_secrets(pair: Pair) -> None:
    a, b = presign(pair)
    a2, b2 = P1Presignature.from_bytes(a.to_bytes()), P2Presignature.from_bytes(b.to_bytes())
    assert a2.to_bytes() == a.to_bytes() and b2.to_bytes() == b.to_bytes()
    for obj in (a, b):
        assert obj.id.hex()[:16] in repr(obj) and "k1" not in repr(obj)
        with pytest.raises(TypeError):
            pickle.dumps(obj)
    digest = secrets.token_bytes(32)
    check_signature(pair[0].public_key, digest, online(pair, (a2, b2), digest)[0])


def test_presignature_decoding_is_strict(pair: Pair) -> None:
    a, b = presign(pair)
    for cls, data in ((P1Presignature, a.to_bytes()), (P2Presignature, b.to_bytes())):
        for bad in (data + b" ", data[:-1], b"", b"[" * 100_000, data.replace(b'"v":1', b'"v":2')):
            with pytest.raises(InvalidMessage):
                cls.from_bytes(bad)
    with pytest.raises(InvalidMessage):
        P1Presignature.from_bytes(b.to_bytes())
    with pytest.raises(InvalidMessage):
        P2Presignature.from_bytes(a.to_bytes())


def test_a_presignature_is_single_use(pair: Pair) -> None:
    a, b = presign(pair)
    online(pair, (a, b), bytes(32))
    assert a.used and b.used
    with pytest.raises(UsageError):
        OnlineSignP1(new_sid(), pair[0], a, bytes(32))
    with pytest.raises(UsageError):
        OnlineSignP2(new_sid(), pair[1], b, bytes(32))
    with pytest.raises(UsageError):
        a.to_bytes()
    with pytest.raises(UsageError):
        b.take()


def test_a_session_consumes_the_presignature_even_if_never_run(pair: Pair) -> None:
    a, b = presign(pair)
    OnlineSignP1(new_sid(), pair[0], a, bytes(32))
    OnlineSignP2(new_sid(), pair[1], b, bytes(32))
    with pytest.raises(UsageError):
        a.take()
    with pytest.raises(UsageError):
        b.take()


def test_refuses_presignature_of_another_share_pair(pair: Pair, custodian_setup) -> None:
    from protocols import ecdsa2p

    other = ecdsa2p.refresh(copy_p1(pair[0]), pair[1], setup=custodian_setup)
    a, b = presign(pair)
    with pytest.raises(UsageError):
        OnlineSignP1(new_sid(), other[0], a, bytes(32))
    with pytest.raises(UsageError):
        OnlineSignP2(new_sid(), other[1], b, bytes(32))
    assert not a.used and not b.used  # refused before anything was consumed


def test_custodian_refuses_other_digest_id_or_share(pair: Pair) -> None:
    a, b = presign(pair)
    a_other, _ = presign(pair)
    sid = new_sid()
    p2 = OnlineSignP2(sid, pair[1], b, bytes(32))
    p2.start()
    p1 = OnlineSignP1(sid, pair[0], a, bytes(32))
    (first,) = p1.start()
    for change in ({"digest": "11" * 32}, {"presignature": a_other.id.hex()}, {"Q1": pair[0].public_key.hex()}):
        forged = Message(first.protocol, sid, 1, CLIENT, CUSTODIAN, {**first.payload, **change})
        with pytest.raises(InvalidMessage):
            p2.receive(forged)
    (reply,) = p2.receive(first)  # state unchanged: the honest message still works
    (final,) = p1.receive(reply)
    assert p2.receive(final) == [] and p2.result() == p1.result()


def test_crafted_c3_locks_the_client_share(pair: Pair) -> None:
    p1 = copy_p1(pair[0])
    a, b = presign(pair)
    pk = pair[0].paillier.public_key

    def craft(msg: Message):
        if msg.round == 2:
            c3 = paillier.add_plain(pk, int(msg.payload["c3"], 16), 1)  # s' + 1: a "bit probe"
            return Message(msg.protocol, msg.session_id, 2, msg.sender, msg.recipient, {"c3": paillier.encode_ciphertext(c3)})
        return msg

    with pytest.raises(KeyLocked):
        online(pair, (a, b), bytes(32), tamper=craft, p1=p1)
    assert p1.locked
    a2, b2 = presign(pair)
    with pytest.raises(KeyLocked):
        OnlineSignP1(new_sid(), p1, a2, bytes(32))
    with pytest.raises(KeyLocked):
        PresignP1(new_sid(), p1)


def test_lock_is_rechecked_before_decrypting(pair: Pair) -> None:
    p1 = copy_p1(pair[0])
    a, b = presign(pair)
    sid = new_sid()
    s1, s2 = OnlineSignP1(sid, p1, a, bytes(32)), OnlineSignP2(sid, pair[1], b, bytes(32))
    s2.start()
    (reply,) = s2.receive(s1.start()[0])
    p1.lock()  # another session locked the share meanwhile
    with pytest.raises(KeyLocked):
        s1.receive(reply)


def test_tampered_signature_is_refused_by_the_custodian(pair: Pair) -> None:
    a, b = presign(pair)

    def bad_recid(msg: Message):
        if msg.round == 3:
            return Message(msg.protocol, msg.session_id, 3, msg.sender, msg.recipient,
                           {**msg.payload, "recid": msg.payload["recid"] ^ 1})
        return msg

    with pytest.raises(ProtocolAbort) as err:
        online(pair, (a, b), bytes(32), tamper=bad_recid)
    assert err.value.culprit == CLIENT


def test_tampered_presign_opening_aborts(pair: Pair) -> None:
    def swap_r1(msg: Message):
        if msg.round == 3:
            return Message(msg.protocol, msg.session_id, 3, msg.sender, msg.recipient,
                           {**msg.payload, "nonce": "00" * 32})
        return msg

    sid = new_sid()
    with pytest.raises(ProtocolAbort) as err:
        run([PresignP1(sid, pair[0]), PresignP2(sid, pair[1])], tamper=swap_r1)
    assert err.value.culprit == CLIENT


def test_rejects_bad_inputs(pair: Pair) -> None:
    a, b = presign(pair)
    with pytest.raises(UsageError):
        OnlineSignP1(new_sid(), pair[0], a, b"short")
    with pytest.raises(UsageError):
        OnlineSignP1(new_sid(), pair[0], b, bytes(32))  # type: ignore[arg-type]
    assert not a.used and not b.used

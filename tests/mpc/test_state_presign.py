"""Wallet presign and sign-presigned parked after every step on both sides and resumed from bytes."""

from __future__ import annotations

import pytest

import mpc
from mpc.errors import PresignatureNotFound
from mpc.presign import ClientPresign, ClientSignPresigned, CustodianPresign, CustodianSignPresigned
from mpc.state import ENGINE_SESSIONS
from protocols.rounds import Message
from tests.mpc.conftest import Wallet, data_for, verify_result
from tests.mpc.test_state import run_parked


def test_presign_operations_are_parkable_engine_sessions() -> None:
    assert {ClientPresign, ClientSignPresigned, CustodianPresign, CustodianSignPresigned} <= set(ENGINE_SESSIONS)


def test_presign_and_sign_presigned_parked_after_every_step(generated: Wallet) -> None:
    c, cust, cid = generated.client, generated.custodian, generated.client_id
    counts = run_parked(c, cust, c.presign(2), cust.presign(cid, 2))
    assert counts == ({"secp256k1": 2, "ed25519": 2},) * 2
    for chain in ("ethereum", "solana", "bitcoin", "stellar"):
        data = data_for(chain, chain.encode())
        result, same = run_parked(c, cust, c.sign_presigned(chain, data), cust.sign_presigned(cid, chain, data))
        verify_result(result, data)
        assert same == result
    assert c.presignature_count() == cust.presignature_count(cid) == {"secp256k1": 0, "ed25519": 0}


def test_a_parked_sign_presigned_keeps_its_presignature_taken(generated: Wallet) -> None:
    """Both halves are deleted from their pools before use; the parked sessions hold them used."""
    c, cust, cid = generated.client, generated.custodian, generated.client_id
    mpc.run_local(c.presign(2), cust.presign(cid, 2))
    data = data_for("ethereum")
    client_op = c.sign_presigned("ethereum", data)
    custodian_op = cust.sign_presigned(cid, "ethereum", data)
    used_id = client_op.presignature_id
    assert c.presignature_count()["secp256k1"] == 1  # taken from the keychain by the constructor
    custodian_op.start()
    hello = client_op.start()
    replies = []
    for message in hello:
        replies += custodian_op.receive(Message.from_bytes(message.to_bytes()))
    assert cust.presignature_count(cid)["secp256k1"] == 1  # the row is gone once the hello arrived
    client_op = c.resume(client_op.to_bytes())
    custodian_op = cust.resume(custodian_op.to_bytes())
    for session in (client_op, custodian_op):
        assert session.child("secp256k1")._presignature.used  # type: ignore[attr-defined]
        assert session.child("secp256k1")._presignature.id == used_id  # type: ignore[attr-defined]
    pending = replies
    while pending:
        out = []
        for message in pending:
            target = custodian_op if message.recipient == 2 else client_op
            out += target.receive(Message.from_bytes(message.to_bytes()))
        pending = out
    result = client_op.result()
    verify_result(result, data)
    assert custodian_op.result() == result
    # The same presignature named again: the custodian has no such row any more.
    replay = c.sign_presigned("ethereum", data)
    replay.presignature_id = used_id
    with pytest.raises(PresignatureNotFound):
        mpc.run_local(replay, cust.sign_presigned(cid, "ethereum", data))


def test_a_parked_frost_slot_is_used_once(generated: Wallet) -> None:
    c, cust, cid = generated.client, generated.custodian, generated.client_id
    mpc.run_local(c.presign(1), cust.presign(cid, 1))
    data = data_for("solana")
    client_op = c.sign_presigned("solana", data)
    parked = c.resume(client_op.to_bytes())  # parked before it started: the slot is already taken
    assert not parked._child._nonces.used  # type: ignore[attr-defined] - taken from the slot, not yet used
    with pytest.raises(PresignatureNotFound):
        c.sign_presigned("solana", data)  # the device's pool is empty: nothing to take twice
    result, _ = mpc.run_local(parked, cust.sign_presigned(cid, "solana", data))
    verify_result(result, data)
    assert parked.child("ed25519")._nonces.used  # type: ignore[attr-defined]
    assert c.resume(parked.to_bytes()).child("ed25519")._nonces.used  # type: ignore[attr-defined]

"""Wallet presigning: pools on both sides, signing from them, single use across restarts."""

from __future__ import annotations

import pytest

import mpc
from mpc.errors import KeyLockedError, PresignatureNotFound, StateInvalid
from mpc.presign import MAX_PRESIGN_COUNT, client_pool
from protocols import paillier
from protocols.rounds import Message
from tests.mpc.conftest import Wallet, data_for, new_wallet, verify_result

CHAINS = ("ethereum", "bitcoin", "solana")


def presign(w: Wallet, count: int, client: mpc.Client | None = None):
    client = client or w.client
    return mpc.run_local(client.presign(count), w.custodian.presign(w.client_id, count))


def sign_presigned(w: Wallet, chain: str, data: bytes, client: mpc.Client | None = None):
    client = client or w.client
    return mpc.run_local(client.sign_presigned(chain, data), w.custodian.sign_presigned(w.client_id, chain, data))


def test_presign_fills_both_pools_and_signatures_verify(generated: Wallet) -> None:
    counts = presign(generated, 3)
    assert counts == ({"secp256k1": 3, "ed25519": 3},) * 2
    for chain in CHAINS:
        data = data_for(chain, chain.encode())
        client_result, custodian_result = sign_presigned(generated, chain, data)
        assert client_result == custodian_result
        verify_result(client_result, data)
    assert generated.client.presignature_count() == {"secp256k1": 1, "ed25519": 2}
    assert generated.custodian.presignature_count(generated.client_id) == {"secp256k1": 1, "ed25519": 2}


def test_empty_pool_and_unknown_ids_are_refused(generated: Wallet) -> None:
    with pytest.raises(PresignatureNotFound):
        generated.client.sign_presigned("ethereum", data_for("ethereum"))
    presign(generated, 1)
    # The custodian lost its half (e.g. restored from an older backup): the client's is gone too.
    generated.custodian.store.take_presignature(generated.client_id, "secp256k1",
                                                bytes.fromhex(client_pool(generated.client)["secp256k1"][0][-64:]))
    with pytest.raises(PresignatureNotFound):
        sign_presigned(generated, "ethereum", data_for("ethereum"))
    assert generated.client.presignature_count()["secp256k1"] == 0


def test_store_take_is_single_use(generated: Wallet) -> None:
    presign(generated, 1)
    store = generated.custodian.store
    pid = bytes.fromhex(client_pool(generated.client)["ed25519"][0][-64:])
    assert store.take_presignature(generated.client_id, "ed25519", pid) is not None
    assert store.take_presignature(generated.client_id, "ed25519", pid) is None


def test_consumed_exactly_once_across_restarts(tmp_path) -> None:
    """File keychain and SQLite file: a presignature deleted before a crash is gone, not reused."""
    custodian = mpc.Custodian(mpc.SQLiteStore(str(tmp_path / "custodian.db")))
    client_id = custodian.create_client()
    device = mpc.Client(client_id, mpc.FileKeychain(tmp_path / "keychain"))
    mpc.run_local(device.generate(), custodian.generate(client_id))
    mpc.run_local(device.presign(2), custodian.presign(client_id, 2))
    data = data_for("ethereum")

    # Crash after both sides deleted their halves, before the signature: nothing comes back.
    client_session = device.sign_presigned("ethereum", data)
    custodian_session = custodian.sign_presigned(client_id, "ethereum", data)
    custodian_session.start()
    custodian_session.receive(Message.from_bytes(client_session.start()[0].to_bytes()))  # hello: row taken
    used_id = client_session.presignature_id
    del client_session, custodian_session

    custodian = mpc.Custodian(mpc.SQLiteStore(str(tmp_path / "custodian.db")))  # restart both
    device = mpc.Client(client_id, mpc.FileKeychain(tmp_path / "keychain"))
    assert device.presignature_count()["secp256k1"] == 1
    assert custodian.presignature_count(client_id)["secp256k1"] == 1
    assert custodian.store.take_presignature(client_id, "secp256k1", used_id) is None
    result, _ = mpc.run_local(device.sign_presigned("ethereum", data), custodian.sign_presigned(client_id, "ethereum", data))
    verify_result(result, data)
    with pytest.raises(PresignatureNotFound):
        device.sign_presigned("ethereum", data)


def test_replaying_a_used_id_is_refused(generated: Wallet) -> None:
    presign(generated, 2)
    data = data_for("solana")
    client_session = generated.client.sign_presigned("solana", data)
    used = client_session.presignature_id
    mpc.run_local(client_session, generated.custodian.sign_presigned(generated.client_id, "solana", data))
    # A client (or attacker) naming the used id again: the custodian has no such row any more.
    replay = generated.client.sign_presigned("solana", data)
    replay.presignature_id = used
    with pytest.raises(PresignatureNotFound):
        mpc.run_local(replay, generated.custodian.sign_presigned(generated.client_id, "solana", data))


def test_crafted_c3_locks_and_persists(generated: Wallet) -> None:
    presign(generated, 2)
    data = data_for("ethereum")
    pk = generated.client.signing_share("secp256k1").paillier.public_key
    client_session = generated.client.sign_presigned("ethereum", data)
    custodian_session = generated.custodian.sign_presigned(generated.client_id, "ethereum", data)
    custodian_session.start()
    pending = client_session.start()
    with pytest.raises(KeyLockedError):
        while pending:
            out = []
            for msg in pending:
                target = custodian_session if msg.sender == 1 else client_session
                inner = msg.payload.get("message")
                if msg.sender == 2 and inner is not None and inner["round"] == 2:
                    c3 = paillier.add_plain(pk, int(inner["payload"]["c3"], 16), 1)
                    inner = {**inner, "payload": {"c3": paillier.encode_ciphertext(c3)}}
                    msg = Message(msg.protocol, msg.session_id, msg.round, msg.sender, msg.recipient,
                                  {**msg.payload, "message": inner})
                out += target.receive(Message.from_bytes(msg.to_bytes()))
            pending = out
    assert generated.client.signing_share("secp256k1").locked  # persisted in the keychain
    with pytest.raises(KeyLockedError):
        generated.client.sign_presigned("ethereum", data)
    assert generated.client.presignature_count()["secp256k1"] == 1  # a locked share consumes none


def test_tampered_hello_and_bad_counts_are_refused(generated: Wallet) -> None:
    presign(generated, 1)
    for count in (0, MAX_PRESIGN_COUNT + 1, True, "3"):
        with pytest.raises(mpc.errors.InputInvalid):
            generated.client.presign(count)
    data = data_for("ethereum")
    with pytest.raises(mpc.errors.MessageInvalid):
        sign_presigned_other_data(generated, data)


def sign_presigned_other_data(w: Wallet, data: bytes):
    return mpc.run_local(w.client.sign_presigned("ethereum", data),
                         w.custodian.sign_presigned(w.client_id, "ethereum", data_for("ethereum", b"other")))


def test_presignatures_of_old_shares_are_discarded_after_recover(generated: Wallet) -> None:
    presign(generated, 2)
    generated.backup()
    device = generated.device()
    generated.recover(device)
    # The device's own pool went with the old device; the custodian's stale rows cannot be used.
    with pytest.raises(PresignatureNotFound):
        device.sign_presigned("ethereum", data_for("ethereum"))
    presign(generated, 1, client=device)
    assert generated.custodian.presignature_count(generated.client_id)["secp256k1"] == 1  # stale rows dropped
    result, _ = sign_presigned(generated, "ethereum", data_for("ethereum"), client=device)
    verify_result(result, data_for("ethereum"))


def test_presign_requires_a_wallet(wallet: Wallet) -> None:
    with pytest.raises(mpc.errors.EngineError):
        wallet.custodian.presign(wallet.client_id, 1)
    with pytest.raises(mpc.errors.EngineError):
        wallet.client.presign(1)


def test_stale_presignature_used_anyway_is_refused(generated: Wallet) -> None:
    presign(generated, 1)
    old = generated.client.keychain
    names = client_pool(generated.client)["secp256k1"]
    saved = {n: old.get(n) for n in names}
    generated.backup()
    device = generated.device()
    generated.recover(device)
    for name, data in saved.items():
        device.keychain.put(name, data)
    # The client skips (and deletes) entries made for its old share.
    with pytest.raises(PresignatureNotFound):
        device.sign_presigned("ethereum", data_for("ethereum"))
    assert device.presignature_count()["secp256k1"] == 0
    with pytest.raises(StateInvalid):
        pid = bytes.fromhex(names[0][-64:])
        from mpc.presign import CustodianSignPresigned  # noqa: F401
        session = generated.custodian.sign_presigned(generated.client_id, "ethereum", data_for("ethereum"))
        session.presignature_id = pid
        session._start()


def test_two_sessions_racing_for_one_entry_take_different_ones(generated: Wallet) -> None:
    presign(generated, 2)
    first = generated.client.sign_presigned("ethereum", data_for("ethereum"))
    second = generated.client.sign_presigned("ethereum", data_for("ethereum"))
    assert first.presignature_id != second.presignature_id
    with pytest.raises(PresignatureNotFound):
        generated.client.sign_presigned("ethereum", data_for("ethereum"))

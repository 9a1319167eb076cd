"""Faults and attacks at the wallet level: locked keys, corrupted keychains, stores, restarts."""

from __future__ import annotations

import json
import sqlite3
from dataclasses import replace

import pytest

import mpc
from mpc import errors
from mpc.backup.methods import MemoryCloudStorage
from protocols import paillier
from protocols.errors import ProtocolAbort
from protocols.rounds import Message
from tests.mpc.conftest import data_for, verify_result


def crafted_c3(client: mpc.Client):
    """A malicious custodian's tamper hook: replace c3 by an encryption of a random value (the
    honest proof of the real c3 kept beside it)."""
    pk = client.signing_share("secp256k1").paillier.public_key

    def tamper(msg: Message):
        # A sign's messages are its child's own (mpc.signing, "Framing"): P2's round 4 is c3.
        if msg.protocol == "ecdsa2p/sign" and msg.sender == 2 and msg.round == 4:
            return replace(msg, payload={**msg.payload, "c3": paillier.encode_ciphertext(paillier.encrypt(pk, 12345)[0])})
        return msg

    return tamper


@pytest.fixture
def proof_check_off(monkeypatch):
    """Simulate a broken Π_c3 check, to exercise the lock kept as defence in depth."""
    from protocols.zk import c3

    monkeypatch.setattr(c3, "verify", lambda *args, **kwargs: None)


def test_malicious_custodian_c3_aborts_names_the_custodian_and_never_locks(tmp_path):
    from protocols.local import run

    custodian = mpc.Custodian()
    client_id = custodian.create_client()
    device = mpc.Client(client_id, mpc.FileKeychain(tmp_path / "device"), cloud=MemoryCloudStorage())
    mpc.run_local(device.generate(), custodian.generate(client_id))
    digest = data_for("ethereum")
    for _ in range(3):
        with pytest.raises(ProtocolAbort) as info:
            run([device.sign("ethereum", digest), custodian.sign(client_id, "ethereum", digest)],
                tamper=crafted_c3(device))
        assert info.value.culprit == 2
    assert not device.signing_share("secp256k1").locked
    result, _ = mpc.run_local(device.sign("ethereum", digest), custodian.sign(client_id, "ethereum", digest))
    verify_result(result, digest)


def test_failed_signature_despite_the_proof_locks_the_client_share_for_good(tmp_path, proof_check_off):
    from protocols.local import run

    custodian = mpc.Custodian()
    client_id = custodian.create_client()
    cloud = MemoryCloudStorage()
    device = mpc.Client(client_id, mpc.FileKeychain(tmp_path / "device"), cloud=cloud)
    mpc.run_local(device.generate(), custodian.generate(client_id))
    mpc.run_local(device.backup(), custodian.backup(client_id))
    digest = data_for("ethereum")
    with pytest.raises(errors.KeyLockedError) as info:
        run([device.sign("ethereum", digest), custodian.sign(client_id, "ethereum", digest)],
            tamper=crafted_c3(device))
    assert info.value.code == "KEY_LOCKED" and info.value.status == 423
    # The lock survives a restart: the keychain is reopened from disk.
    reopened = mpc.Client(client_id, mpc.FileKeychain(tmp_path / "device"), cloud=cloud)
    assert reopened.signing_share("secp256k1").locked
    with pytest.raises(errors.KeyLockedError):
        reopened.sign("ethereum", digest)
    with pytest.raises(errors.KeyLockedError):
        reopened.backup()
    # ed25519 is unaffected; recover gives working secp256k1 shares again.
    reopened.sign("solana", b"m")
    fresh = mpc.Client(client_id, mpc.MemoryKeychain(), cloud=cloud)
    mpc.run_local(fresh.recover(), custodian.recover(client_id))
    result, _ = mpc.run_local(fresh.sign("ethereum", digest), custodian.sign(client_id, "ethereum", digest))
    verify_result(result, digest)


def test_corrupted_keychain_file_gives_typed_error(tmp_path, generated):
    keychain = mpc.FileKeychain(tmp_path / "kc")
    for name in generated.client.keychain.names():
        keychain.put(name, generated.client.keychain.get(name))
    device = mpc.Client(generated.client_id, keychain, cloud=generated.cloud)
    assert device.addresses() == generated.client.addresses()
    target = keychain._path(device._entry("secp256k1"))
    data = target.read_bytes()
    target.write_bytes(data[: len(data) // 2])
    with pytest.raises(errors.KeychainCorrupted):
        device.addresses()


def test_store_from_a_newer_schema_is_refused(tmp_path):
    path = str(tmp_path / "store.sqlite3")
    mpc.SQLiteStore(path).close()
    conn = sqlite3.connect(path)
    conn.execute("UPDATE meta SET value = '99' WHERE key = 'schema_version'")
    conn.commit()
    conn.close()
    with pytest.raises(errors.StoreSchemaUnsupported):
        mpc.SQLiteStore(path)


def test_custodian_restart_keeps_everything(tmp_path):
    path = str(tmp_path / "custodian.sqlite3")
    custodian = mpc.Custodian(mpc.SQLiteStore(path))
    client_id = custodian.create_client()
    client = mpc.Client(client_id, mpc.MemoryKeychain(), cloud=MemoryCloudStorage())
    mpc.run_local(client.generate(), custodian.generate(client_id))
    fingerprint = custodian.setup.public.fingerprint
    custodian.store.close()
    restarted = mpc.Custodian(mpc.SQLiteStore(path))
    assert restarted.setup.public.fingerprint == fingerprint
    assert restarted.get_client(client_id)["signing_share_status"] == "STORED_CLIENT"
    result, _ = mpc.run_local(client.sign("tron", data_for("tron")), restarted.sign(client_id, "tron", data_for("tron")))
    verify_result(result, data_for("tron"))


def test_transaction_rolls_back_on_failure():
    store = mpc.SQLiteStore()
    store.create_client("c1", "NOT_CREATED")
    with pytest.raises(RuntimeError):
        with store.transaction():
            store.put_share("c1", "signing", "", "secp256k1", b"half")
            store.update_client("c1", signing_share_status="STORED_DATABASE")
            raise RuntimeError("crash mid-operation")
    assert store.get_share("c1", "signing", "", "secp256k1") is None
    assert store.client("c1").signing_share_status == "NOT_CREATED"


def test_errors_have_json_form(wallet):
    with pytest.raises(errors.EngineError) as info:
        wallet.custodian.recover(wallet.client_id)
    body = info.value.to_json()
    assert set(body["error"]) == {"id", "message"}
    assert json.dumps(body)


def test_a_lock_stops_sessions_started_on_other_copies_of_the_share(tmp_path, proof_check_off):
    """Two signing operations on one device: the first locks; the second must not decrypt."""
    from protocols.local import run

    custodian = mpc.Custodian()
    client_id = custodian.create_client()
    device = mpc.Client(client_id, mpc.FileKeychain(tmp_path / "device"), cloud=MemoryCloudStorage())
    mpc.run_local(device.generate(), custodian.generate(client_id))
    digest = data_for("ethereum")
    # The second operation is created (its own copy of the share) before the first one locks.
    second_client, second_custodian = device.sign("ethereum", digest), custodian.sign(client_id, "ethereum", digest)
    with pytest.raises(errors.KeyLockedError):
        run([device.sign("ethereum", digest), custodian.sign(client_id, "ethereum", digest)],
            tamper=crafted_c3(device))
    with pytest.raises(errors.KeyLockedError):
        mpc.run_local(second_client, second_custodian)
    assert device.signing_share("secp256k1").locked

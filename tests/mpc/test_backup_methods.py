"""Backup methods, several backups per client, self-managed backups, eject, one operation at a time."""

from __future__ import annotations

import time

import nacl.pwhash.argon2id as argon2id
import pytest
from ecdsa import SECP256k1, SigningKey
from ecdsa.util import sigdecode_string
from nacl import bindings as sodium

import mpc
from mpc import errors
from mpc.addresses import addresses
from mpc.backup.methods import MemoryPasskeyWrapper, PasskeyMethod, PasswordMethod
from mpc.backup.webhook import CallbackWebhook, MemoryWebhook
from protocols.local import run
from tests.mpc.conftest import data_for, new_wallet, verify_result

FAST = dict(opslimit=argon2id.OPSLIMIT_MIN, memlimit=argon2id.MEMLIMIT_MIN)
pytestmark = pytest.mark.usefixtures("cheap_argon2id")  # new backups at FAST limits (tests/conftest.py)


def password(text: str = "crumpet maverick unsworn tadpole glitter") -> PasswordMethod:
    return PasswordMethod(text, **FAST)


def _name(wallet, method):
    """Where the current backup version of ``method`` lives in the store."""
    return wallet.custodian.backup_versions.current_name(wallet.client_id, method)


def backup(wallet, method, name):
    return mpc.run_local(wallet.client.backup(method), wallet.custodian.backup(wallet.client_id, name))


def recover(wallet, method, name, device=None):
    device = device or wallet.device()
    mpc.run_local(device.recover(method), wallet.custodian.recover(wallet.client_id, name))
    return device


@pytest.mark.parametrize(
    "make, name",
    [(lambda w: password(), "PASSWORD"), (lambda w: None, "CLOUD"), (lambda w: PasskeyMethod(w.wrapper), "PASSKEY")],
    ids=["password", "cloud", "passkey"],
)
def test_each_method_round_trips(generated, make, name):
    generated.wrapper = MemoryPasskeyWrapper()
    method = make(generated)
    backup(generated, method, name)
    assert generated.custodian.get_client(generated.client_id)["backups"][name]["status"] == "STORED_CLIENT_BACKUP_SHARE"
    device = recover(generated, method, name)
    assert device.addresses() == generated.client.addresses()
    result, _ = generated.sign("stellar", b"after recover", client=device)
    verify_result(result, b"after recover")


def test_two_methods_are_kept_apart_and_both_recover(generated):
    backup(generated, password(), "PASSWORD")
    before = generated.custodian.store.get_share(generated.client_id, "backup", _name(generated, "PASSWORD"), "secp256k1")
    backup(generated, None, "CLOUD")
    store = generated.custodian.store
    assert store.get_share(generated.client_id, "backup", _name(generated, "PASSWORD"), "secp256k1") == before
    assert store.get_share(generated.client_id, "backup", _name(generated, "CLOUD"), "ed25519") != \
        store.get_share(generated.client_id, "backup", _name(generated, "PASSWORD"), "ed25519")
    assert generated.custodian.get_client(generated.client_id)["backup_methods"] == ["CLOUD", "PASSWORD"]
    first = recover(generated, password(), "PASSWORD")
    second = recover(generated, None, "CLOUD")
    assert first.addresses() == second.addresses() == generated.client.addresses()


def test_recover_with_wrong_password_or_method_changes_nothing(generated):
    backup(generated, password(), "PASSWORD")
    before = generated.custodian.get_client(generated.client_id)
    with pytest.raises(errors.BackupPasswordInvalid):
        recover(generated, password("wrong horse"), "PASSWORD")
    with pytest.raises(errors.BackupNotFound):
        recover(generated, None, "CLOUD")
    with pytest.raises(errors.MessageInvalid):  # the client names another method than the custodian
        mpc.run_local(generated.device().recover(None), generated.custodian.recover(generated.client_id, "PASSWORD"))
    with pytest.raises(errors.InputInvalid):
        generated.custodian.recover(generated.client_id, "CARRIER_PIGEON")
    after = generated.custodian.get_client(generated.client_id)
    assert after.pop("lockout")["failed_attempts"] == 1  # the wrong password was one counted guess
    before.pop("lockout")
    assert after == before
    recover(generated, password(), "PASSWORD")


def test_self_managed_backup_keeps_no_custodian_copy():
    webhook = MemoryWebhook()
    wallet = new_wallet(mpc.Custodian(webhook=webhook))
    wallet.generate()
    backup(wallet, None, "CLOUD")
    store = wallet.custodian.store
    assert store.get_share(wallet.client_id, "backup", _name(wallet, "CLOUD"), "secp256k1") is None
    assert len(webhook.shares) == 2
    view = wallet.custodian.get_client(wallet.client_id)
    assert view["backups"]["CLOUD"] == {"status": "STORED_CLIENT_BACKUP_SHARE", "self_managed": True, "pending": False}
    device = recover(wallet, None, "CLOUD")
    assert device.addresses() == wallet.client.addresses()


@pytest.mark.parametrize("failure", ["raises", "slow"])
def test_failing_webhook_leaves_statuses_unchanged(failure):
    def hand_over(*_):
        if failure == "raises":
            raise ConnectionError("customer down")
        time.sleep(1.0)

    wallet = new_wallet(mpc.Custodian(webhook=CallbackWebhook(hand_over, lambda *_: b"", timeout=0.2)))
    wallet.generate()
    before = wallet.custodian.get_client(wallet.client_id)
    with pytest.raises(errors.WebhookFailed) as info:
        backup(wallet, None, "CLOUD")
    assert info.value.status == 502
    assert wallet.custodian.get_client(wallet.client_id) == before


def test_failing_fetch_webhook_refuses_recover():
    good = MemoryWebhook()
    custodian = mpc.Custodian(webhook=good)
    wallet = new_wallet(custodian)
    wallet.generate()
    backup(wallet, None, "CLOUD")
    good.shares.clear()
    with pytest.raises(errors.WebhookFailed):  # a method named up front: refused at once
        custodian.recover(wallet.client_id, "CLOUD")
    with pytest.raises(errors.WebhookFailed):  # the client's hello names it: refused at the hello
        mpc.run_local(wallet.device().recover(), custodian.recover(wallet.client_id))


def test_eject_rebuilds_the_private_keys(generated):
    backup(generated, None, "CLOUD")
    keys, view = mpc.run_local(generated.client.eject(), generated.custodian.eject(generated.client_id))
    assert view["ejected"] is True
    assert "redacted" in repr(keys) and keys.secp256k1_private_key_hex() not in repr(keys)
    # secp256k1: an ordinary key that derives the same addresses and signs for python-ecdsa.
    signing_key = SigningKey.from_string(keys.secp256k1_private_key, curve=SECP256k1)
    public = signing_key.get_verifying_key().to_string("compressed")
    assert public == keys.secp256k1_public_key
    derived = addresses(public, keys.ed25519_public_key)
    assert derived == generated.client.addresses()
    digest = data_for("ethereum")
    signature = signing_key.sign_digest(digest, sigencode=lambda r, s, order: r.to_bytes(32, "big") + s.to_bytes(32, "big"))
    assert signing_key.get_verifying_key().verify_digest(signature, digest, sigdecode=sigdecode_string)
    # ed25519: the scalar matches the public key.
    assert sodium.crypto_scalarmult_ed25519_base_noclamp(keys.ed25519_scalar) == keys.ed25519_public_key
    # MPC keeps working after the eject.
    result, _ = generated.sign("ethereum", digest)
    verify_result(result, digest)


def test_eject_refused_without_a_backup(generated):
    with pytest.raises(errors.BackupNotFound):
        generated.custodian.eject(generated.client_id)


def test_one_state_changing_operation_per_client():
    custodian = mpc.Custodian()
    first, second = new_wallet(custodian), new_wallet(custodian)
    first.generate()
    second.generate()
    # Start a backup and stop it half-way: it holds the client's lock.
    client_op, custodian_op = first.client.backup(), custodian.backup(first.client_id)
    messages = client_op.start()
    custodian_op.start()
    for _ in range(2):  # the hello, then the proof of possession with the start of the resharing
        replies = [reply for msg in messages for reply in custodian_op.receive(msg)]
        messages = [out for reply in replies for out in client_op.receive(reply)]
    with pytest.raises(errors.OperationInProgress) as info:
        custodian.backup(first.client_id)
    assert info.value.status == 409
    with pytest.raises(errors.OperationInProgress):
        custodian.backup(first.client_id, "PASSWORD")
    # Another client is not affected; signing is not a state-changing operation.
    backup(second, None, "CLOUD")
    first.sign("solana", b"still signing")
    # An abandoned operation expires.
    custodian.store.update_client(first.client_id, operation_expires=time.time() - 1)
    backup(first, None, "CLOUD")


def test_concurrent_operations_from_two_threads():
    import threading

    custodian = mpc.Custodian()
    wallets = [new_wallet(custodian) for _ in range(2)]
    errors_seen: list[BaseException] = []

    def work(wallet):
        try:
            wallet.generate()
            wallet.backup()
        except BaseException as exc:  # surfaced below
            errors_seen.append(exc)

    threads = [threading.Thread(target=work, args=(w,)) for w in wallets]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors_seen == []
    assert all(custodian.get_client(w.client_id)["backup_share_status"] == "STORED_CLIENT_BACKUP_SHARE" for w in wallets)


def test_dropped_stored_step_still_recovers_cleanly(generated):
    backup(generated, None, "CLOUD")
    device = generated.device()
    with pytest.raises(Exception):
        run([device.recover(), generated.custodian.recover(generated.client_id)],
            tamper=lambda m: None if m.payload.get("step") == "stored" else m)
    assert generated.custodian.get_client(generated.client_id)["signing_share_status"] == "STORED_DATABASE"
    recover(generated, None, "CLOUD")
    assert generated.custodian.get_client(generated.client_id)["signing_share_status"] == "STORED_CLIENT"


def test_the_backup_method_is_named_once_by_the_client(generated):
    """The custodian takes the method (and the storage choice) from the client's hello."""
    mpc.run_local(generated.client.backup(password()), generated.custodian.backup(generated.client_id))
    assert generated.custodian.get_client(generated.client_id)["backups"]["PASSWORD"]["status"] == \
        "STORED_CLIENT_BACKUP_SHARE"
    device = generated.device()
    mpc.run_local(device.recover(password()), generated.custodian.recover(generated.client_id))
    assert device.addresses() == generated.client.addresses()


def test_a_method_the_deployment_does_not_accept_is_refused_at_the_hello():
    wallet = new_wallet(mpc.Custodian(backup_methods=("CLOUD",)))
    wallet.generate()
    with pytest.raises(errors.MessageInvalid, match="accepts the backup methods CLOUD"):
        mpc.run_local(wallet.client.backup(password()), wallet.custodian.backup(wallet.client_id))
    with pytest.raises(errors.InputInvalid):
        wallet.custodian.backup(wallet.client_id, "PASSWORD")
    assert wallet.status() == ("STORED_CLIENT", "NOT_CREATED")

"""A backup is in effect only once its boxes are stored (docs/backup.md, "Confirmation").

The device's backup session ends when the custodian confirms it stored the encrypted client
backup shares; a customer-kept backup is current only after the customer's confirmation, and
recovering with the boxes of one never confirmed is refused with ``BackupNotConfirmed`` before
any password guess: no attempt counted, nobody named as malicious.
"""

from __future__ import annotations

import nacl.pwhash.argon2id as argon2id
import pytest

import mpc
from mpc.backup.methods import PasswordMethod
from mpc.errors import BackupNotConfirmed, NotFound
from mpc.storage.store import SQLiteStore

from .conftest import new_wallet

FAST = {"opslimit": argon2id.OPSLIMIT_MIN, "memlimit": argon2id.MEMLIMIT_MIN}
OLD = "crumpet maverick unsworn tadpole glitter reapply"
NEW = "sprang-ladle-overtly-mutual-cosmos-quibble"
pytestmark = pytest.mark.usefixtures("cheap_argon2id")  # backups at FAST limits (tests/conftest.py)


@pytest.fixture
def wallet():
    wallet = new_wallet(mpc.Custodian(SQLiteStore(":memory:")))
    wallet.generate()
    return wallet


def _steps(messages) -> list[str]:
    return [m.payload.get("step") for m in messages]


def test_the_device_finishes_only_when_the_custodian_confirms(wallet):
    client = wallet.client.backup(PasswordMethod(OLD, **FAST))
    server = wallet.custodian.backup(wallet.client_id, "PASSWORD")
    server.start()
    to_server = client.start()
    while "client_backup" not in _steps(to_server):
        to_client = [out for m in to_server for out in server.receive(m)]
        to_server = [out for m in to_client for out in client.receive(m)]
    assert not client.done  # the boxes are on their way, not stored yet
    assert wallet.custodian.get_client(wallet.client_id)["backup_share_status"] != "STORED_CLIENT_BACKUP_SHARE"
    confirmation = [out for m in to_server for out in server.receive(m)]
    assert _steps(confirmation) == ["backup_stored"]
    assert wallet.custodian.get_client(wallet.client_id)["backup_share_status"] == "STORED_CLIENT_BACKUP_SHARE"
    for m in confirmation:
        client.receive(m)
    assert client.done and client.result()["confirmed"] is True


def test_recovering_with_unconfirmed_customer_boxes_is_refused_before_any_guess(wallet):
    custodian, cid = wallet.custodian, wallet.client_id
    first, _ = mpc.run_local(wallet.client.backup(PasswordMethod(OLD, **FAST), client_stores_backup=True),
                             custodian.backup(cid, "PASSWORD"))
    custodian.stored_client_backup_share(cid, "PASSWORD", first["confirmation"])  # the first backup: confirmed
    result, _ = mpc.run_local(wallet.client.backup(PasswordMethod(NEW, **FAST), client_stores_backup=True),
                              custodian.backup(cid, "PASSWORD"))
    assert result["confirmed"] is False  # the new passphrase is not in effect yet
    unconfirmed = result["encrypted_backup"]

    device = wallet.device()
    with pytest.raises(BackupNotConfirmed) as info:
        mpc.run_local(device.recover(PasswordMethod(NEW), encrypted_backup=unconfirmed),
                      custodian.recover(cid, "PASSWORD"))
    assert isinstance(info.value, NotFound) and info.value.code == "BACKUP_NOT_CONFIRMED"
    assert "stored_client_backup_share" in info.value.message
    assert getattr(info.value, "culprit", None) is None and "malicious" not in info.value.message
    assert custodian.failed_attempts(cid) == 0
    assert not device.has_wallet()

    custodian.stored_client_backup_share(cid, "PASSWORD", result["confirmation"])  # now the customer confirms
    mpc.run_local(device.recover(PasswordMethod(NEW), encrypted_backup=unconfirmed), custodian.recover(cid, "PASSWORD"))
    assert device.addresses() == wallet.client.addresses()


def test_boxes_of_an_older_backup_are_refused_the_same_way(wallet):
    custodian, cid = wallet.custodian, wallet.client_id
    first, _ = mpc.run_local(wallet.client.backup(PasswordMethod(OLD, **FAST), client_stores_backup=True),
                             custodian.backup(cid, "PASSWORD"))
    custodian.stored_client_backup_share(cid, "PASSWORD", first["confirmation"])
    mpc.run_local(wallet.client.backup(PasswordMethod(NEW, **FAST)), custodian.backup(cid, "PASSWORD"))
    with pytest.raises(BackupNotConfirmed):
        mpc.run_local(wallet.device().recover(PasswordMethod(OLD), encrypted_backup=first["encrypted_backup"]),
                      custodian.recover(cid, "PASSWORD"))
    assert custodian.failed_attempts(cid) == 0

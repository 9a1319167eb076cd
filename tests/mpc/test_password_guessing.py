"""Password backups can only be guessed online, a limited number of times (docs/backup.md).

The adversary holds the client id and token (so it gets the encrypted box from the custodian)
or a copy of the box, but not the password: every guess needs one VOPRF evaluation by the
custodian, which counts it; ``MAX_FAILED_ATTEMPTS`` wrong guesses lock the client out until an
operator unlocks it. A right guess (proved by the proof of possession that follows) resets the
count.
"""

from __future__ import annotations

import nacl.pwhash.argon2id as argon2id
import pytest

import mpc
from mpc.backup.attempts import MAX_FAILED_ATTEMPTS
from mpc.backup.methods import BackupContext, PasswordMethod, decrypt_backup
from mpc.errors import BackupPasswordInvalid, ClientLockedOut
from mpc.storage.store import SQLiteStore
from protocols.errors import UsageError

from .conftest import Wallet, new_wallet

FAST = {"opslimit": argon2id.OPSLIMIT_MIN, "memlimit": argon2id.MEMLIMIT_MIN}
pytestmark = pytest.mark.usefixtures("cheap_argon2id")  # new backups at FAST limits (tests/conftest.py)
PASSPHRASE = "violet tractor moss lantern quibble fjord"


@pytest.fixture
def password_backup() -> Wallet:
    wallet = new_wallet(mpc.Custodian(SQLiteStore(":memory:")))
    wallet.generate()
    mpc.run_local(wallet.client.backup(PasswordMethod(PASSPHRASE, **FAST)),
                  wallet.custodian.backup(wallet.client_id, "PASSWORD"))
    return wallet


def _guess(wallet: Wallet, password: str) -> mpc.Client:
    device = wallet.device()
    mpc.run_local(device.recover(PasswordMethod(password, **FAST)), wallet.custodian.recover(wallet.client_id, "PASSWORD"))
    return device


def test_each_wrong_guess_counts_and_a_right_one_resets(password_backup: Wallet) -> None:
    for count in (1, 2, 3):
        with pytest.raises(BackupPasswordInvalid):
            _guess(password_backup, "violet tractor moss lantern quibble fjords")
        assert password_backup.custodian.failed_attempts(password_backup.client_id) == count
    # A wrong guess holds no operation lock: the owner's next try goes through at once.
    device = _guess(password_backup, PASSPHRASE)
    assert device.addresses() == password_backup.client.addresses()
    assert password_backup.custodian.failed_attempts(password_backup.client_id) == 0


def test_the_limit_locks_the_client_out_until_an_operator_unlocks(password_backup: Wallet) -> None:
    for _ in range(MAX_FAILED_ATTEMPTS):
        with pytest.raises(BackupPasswordInvalid):
            _guess(password_backup, "wrong guess number n")
    with pytest.raises(ClientLockedOut):  # even the right password: no more evaluations
        _guess(password_backup, PASSPHRASE)
    with pytest.raises(ClientLockedOut):
        password_backup.custodian.eject(password_backup.client_id, "PASSWORD")
    password_backup.custodian.unlock(password_backup.client_id)
    assert _guess(password_backup, PASSPHRASE).addresses() == password_backup.client.addresses()


def test_the_box_and_record_alone_allow_no_offline_guess(password_backup: Wallet) -> None:
    """What a database thief without the custodian's key material (or a token thief) holds: the
    box and its record. Argon2id of the right password alone does not open it."""
    store = password_backup.custodian.store
    name = password_backup.custodian.backup_versions.current_name(password_backup.client_id, "PASSWORD")
    box, record = store.get_client_backup(password_backup.client_id, name, "secp256k1")
    context = BackupContext(password_backup.client_id, "secp256k1")
    right = PasswordMethod(PASSPHRASE, **FAST)
    with pytest.raises(UsageError):  # nothing to test a guess against without an evaluation
        right.load_key(context, record)
    # Forging the evaluation with a key of one's own fails the custodian's pinned-key proof.
    from protocols import oprf
    from protocols.errors import ProofError

    element = right.hardening_request(record)
    forged_key, forged_public = oprf.generate_key_pair()
    evaluated, proof = oprf.voprf_blind_evaluate(forged_key, element)
    with pytest.raises(ProofError):
        right.finish_hardening(evaluated, proof, forged_public)
    with pytest.raises(Exception):
        decrypt_backup(bytes(32), box, context)


def test_a_new_backup_refuses_version_1_records(generated: Wallet) -> None:
    with pytest.raises(mpc.errors.InputInvalid):
        generated.client.backup(PasswordMethod(PASSPHRASE, harden=False, **FAST))


def test_a_password_backup_made_before_hardening_still_recovers(generated: Wallet, monkeypatch) -> None:
    """Version-1 records (Argon2id alone), as an older engine made them, need no evaluation."""
    with monkeypatch.context() as old_engine:
        old_engine.setattr("mpc.backup.custodian_ops.PASSWORD_METHOD", "none")  # no evaluation asked
        old_engine.setattr(PasswordMethod, "check_for_backup", lambda self, **context: None)
        v1 = PasswordMethod(PASSPHRASE, harden=False, **FAST)
        mpc.run_local(generated.client.backup(v1), generated.custodian.backup(generated.client_id, "PASSWORD"))
    device = generated.device()
    mpc.run_local(device.recover(PasswordMethod(PASSPHRASE, **FAST)),
                  generated.custodian.recover(generated.client_id, "PASSWORD"))
    assert device.addresses() == generated.client.addresses()

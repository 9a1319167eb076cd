"""A new backup never destroys the last complete one (``mpc.backup.versions``).

The adversary here is bad luck: the device or the custodian dies at any point of a second backup.
Every kill point of the message sequence is tried (a message not delivered is a peer that died
before sending it or before processing it), on SQLite and on PostgreSQL, for CLOUD and hardened
PASSWORD backups; then a brand-new device recovers, and signs. A crash inside the custodian's
final transaction is injected as well. The newest *complete* backup must always be the one used.
"""

from __future__ import annotations

import nacl.pwhash.argon2id as argon2id
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import mpc
from mpc.backup.methods import MemoryPasskeyWrapper, PasskeyMethod, PasswordMethod
from mpc.backup.versions import BackupVersions
from mpc.storage.store import SQLiteStore
from protocols.rounds import Message

from .conftest import Wallet, data_for, new_wallet, verify_result

FAST = {"opslimit": argon2id.OPSLIMIT_MIN, "memlimit": argon2id.MEMLIMIT_MIN}
pytestmark = pytest.mark.usefixtures("cheap_argon2id")  # new backups at FAST limits (tests/conftest.py)
PASSPHRASE = "violet tractor moss lantern quibble fjord"


def _method(name: str, wallet: Wallet):
    """The client's method object for ``name`` (None: the default CLOUD method)."""
    if name == "PASSWORD":
        return PasswordMethod(PASSPHRASE, **FAST)
    return None


def _deliver(client_session, custodian_session, limit: int | None) -> int:
    """Drive the two sessions in memory, delivering at most ``limit`` messages; returns how many
    were delivered. What is not delivered is lost: the peer died."""
    queue: list[tuple[object, Message]] = [(custodian_session, m) for m in client_session.start()]
    queue += [(client_session, m) for m in custodian_session.start()]
    delivered = 0
    while queue and (limit is None or delivered < limit):
        target, message = queue.pop(0)
        other = client_session if target is custodian_session else custodian_session
        queue += [(other, m) for m in target.receive(message)]
        delivered += 1
    return delivered


def _backup(wallet: Wallet, name: str, limit: int | None = None) -> int:
    return _deliver(wallet.client.backup(_method(name, wallet)), wallet.custodian.backup(wallet.client_id, name), limit)


def _recover_on_a_new_device(wallet: Wallet, name: str) -> mpc.Client:
    device = wallet.device()
    mpc.run_local(device.recover(_method(name, wallet)), wallet.custodian.recover(wallet.client_id, name))
    return device


def _after_a_crash(wallet: Wallet) -> None:
    """What the service's expiry does for a session whose peer died: free the operation lock."""
    wallet.custodian._release(wallet.client_id)


def _check_recovers(wallet: Wallet, name: str, addresses: dict[str, str]) -> None:
    device = _recover_on_a_new_device(wallet, name)
    assert device.addresses() == addresses
    data = data_for("ethereum")
    result, _ = mpc.run_local(device.sign("ethereum", data), wallet.custodian.sign(wallet.client_id, "ethereum", data))
    verify_result(result, data)
    wallet.client = device  # the recovered device is the one that backs up next


def _kill_matrix(wallet: Wallet, name: str, first_kill: int = 0) -> None:
    wallet.generate()
    addresses = wallet.client.addresses()
    total = _backup(wallet, name)  # a first, complete backup
    view = wallet.custodian.get_client(wallet.client_id)
    assert view["backups"][name] == {"status": "STORED_CLIENT_BACKUP_SHARE", "self_managed": False, "pending": False}
    for kill_at in range(first_kill, total):
        _backup(wallet, name, limit=kill_at)
        _after_a_crash(wallet)
        status = wallet.custodian.get_client(wallet.client_id)["backups"][name]["status"]
        assert status == "STORED_CLIENT_BACKUP_SHARE", kill_at  # the complete backup stays current
        _check_recovers(wallet, name, addresses)
    # Completed, the new version replaces the old one and is the one recover uses.
    before = wallet.custodian.backup_versions.of(wallet.client_id, name).current
    _backup(wallet, name)
    after = wallet.custodian.backup_versions.of(wallet.client_id, name)
    assert after.current != before and after.pending is None
    _check_recovers(wallet, name, addresses)


def test_a_backup_killed_at_any_step_leaves_the_last_complete_one_recoverable() -> None:
    _kill_matrix(new_wallet(mpc.Custodian(SQLiteStore(":memory:"))), "CLOUD")


def test_a_password_backup_killed_around_the_custodians_evaluation_loses_nothing() -> None:
    """The kill points a PASSWORD backup adds to CLOUD's: after the reshare, around "oprf"."""
    _kill_matrix(new_wallet(mpc.Custodian(SQLiteStore(":memory:"))), "PASSWORD", first_kill=10)


@pytest.mark.slow
def test_a_password_backup_killed_at_any_step_loses_nothing() -> None:
    _kill_matrix(new_wallet(mpc.Custodian(SQLiteStore(":memory:"))), "PASSWORD")


def test_the_kill_matrix_on_postgresql(postgres_store) -> None:
    """The kill points where the store's transactions matter: the custodian writing the pending
    version, and the promotion (every kill point: the slow variant below)."""
    _kill_matrix(new_wallet(mpc.Custodian(postgres_store)), "CLOUD", first_kill=9)


@pytest.mark.slow
def test_the_whole_kill_matrix_on_postgresql(postgres_store) -> None:
    _kill_matrix(new_wallet(mpc.Custodian(postgres_store)), "CLOUD")


def test_a_custodian_crash_inside_the_promoting_transaction_changes_nothing(generated: Wallet,
                                                                           monkeypatch) -> None:
    addresses = generated.client.addresses()
    generated.backup()
    current = generated.custodian.backup_versions.of(generated.client_id, "CLOUD").current

    def crash(*args, **kwargs):
        raise RuntimeError("power cut")

    store = generated.custodian.store
    monkeypatch.setattr(store, "set_backup", crash)  # the last write of the promotion
    with pytest.raises(Exception):
        generated.backup()
    monkeypatch.undo()
    _after_a_crash(generated)
    versions = generated.custodian.backup_versions.of(generated.client_id, "CLOUD")
    assert versions.current == current  # the whole promotion rolled back
    _check_recovers(generated, "CLOUD", addresses)


def test_an_abandoned_attempt_is_discarded_by_the_next_backup(generated: Wallet) -> None:
    generated.backup()
    _backup(generated, "CLOUD", limit=11)  # everything but the client's encrypted shares
    _after_a_crash(generated)
    versions = BackupVersions(generated.custodian.store)
    abandoned = versions.pending_name(generated.client_id, "CLOUD")
    assert abandoned is not None
    assert generated.custodian.get_client(generated.client_id)["backups"]["CLOUD"]["pending"] is True
    generated.backup()
    store = generated.custodian.store
    assert store.get_share(generated.client_id, "backup", abandoned, "secp256k1") is None
    assert versions.pending_name(generated.client_id, "CLOUD") is None


def test_a_first_backup_in_progress_shows_its_own_status(generated: Wallet) -> None:
    _backup(generated, "CLOUD", limit=11)
    _after_a_crash(generated)
    assert generated.status() == ("STORED_CLIENT", "STORED_CUSTODIAN_BACKUP_SHARE")
    with pytest.raises(mpc.errors.StateInvalid):  # nothing complete to recover from yet
        generated.custodian.recover(generated.client_id)


def test_a_customer_kept_backup_becomes_current_when_confirmed(generated: Wallet) -> None:
    client_result, _ = mpc.run_local(generated.client.backup(client_stores_backup=True),
                                     generated.custodian.backup(generated.client_id, client_stores_backup=True))
    first = client_result["encrypted_backup"]
    generated.custodian.stored_client_backup_share(generated.client_id, confirmation=client_result["confirmation"])
    client_result, _ = mpc.run_local(generated.client.backup(client_stores_backup=True),
                                     generated.custodian.backup(generated.client_id, client_stores_backup=True))
    # Not confirmed (the customer's upload failed): the first copy still recovers.
    device = generated.device()
    mpc.run_local(device.recover(encrypted_backup=first), generated.custodian.recover(generated.client_id))
    assert device.addresses() == generated.client.addresses()


@settings(max_examples=4, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(name=st.sampled_from(["CLOUD", "PASSWORD", "PASSKEY"]), stores_itself=st.booleans(),
       backups=st.integers(min_value=1, max_value=2))
def test_every_method_round_trips(name: str, stores_itself: bool, backups: int) -> None:
    wallet = new_wallet(mpc.Custodian(SQLiteStore(":memory:")))
    wallet.generate()
    wrapper = MemoryPasskeyWrapper()

    def method():
        return {"PASSWORD": PasswordMethod(PASSPHRASE, **FAST), "PASSKEY": PasskeyMethod(wrapper)}.get(name)

    kept = None
    for _ in range(backups):
        result, _ = mpc.run_local(wallet.client.backup(method(), client_stores_backup=stores_itself),
                                  wallet.custodian.backup(wallet.client_id, name, client_stores_backup=stores_itself))
        if stores_itself:
            kept = result["encrypted_backup"]
            wallet.custodian.stored_client_backup_share(wallet.client_id, name, result["confirmation"])
    device = wallet.device()
    mpc.run_local(device.recover(method(), encrypted_backup=kept), wallet.custodian.recover(wallet.client_id, name))
    assert device.addresses() == wallet.client.addresses()

"""The wallet lifecycle: generate, addresses, sign, backup, recover, statuses and refusals."""

from __future__ import annotations

from pathlib import Path

import pytest

import mpc
from mpc import errors
from mpc.wallet import CHAINS
from protocols.errors import MPCError
from tests.mpc.conftest import data_for, new_wallet, verify_result

NOT_CREATED = "NOT_CREATED"


def test_generate_statuses_and_addresses(wallet):
    assert wallet.status() == (NOT_CREATED, NOT_CREATED)
    client_view, custodian_view = wallet.generate()
    assert wallet.status() == ("STORED_CLIENT", NOT_CREATED)
    assert client_view == wallet.client.addresses() == custodian_view["addresses"]
    assert set(client_view) == set(CHAINS)
    assert wallet.custodian.get_client(wallet.client_id)["addresses"] == client_view


def test_generate_again_is_refused_and_changes_nothing(generated):
    before = generated.custodian.get_client(generated.client_id)
    keychain = {n: generated.client.keychain.get(n) for n in generated.client.keychain.names()}
    with pytest.raises(errors.WalletAlreadyExists) as info:
        generated.custodian.generate(generated.client_id)
    assert info.value.status == 400 and info.value.code == "WALLET_ALREADY_EXISTS"
    assert info.value.to_json()["error"]["id"] == "WALLET_ALREADY_EXISTS"
    with pytest.raises(errors.WalletAlreadyExists):
        generated.client.generate()
    # A fresh device of the same client is refused by the custodian as well.
    with pytest.raises(errors.WalletAlreadyExists):
        mpc.run_local(generated.device().generate(), generated.custodian.generate(generated.client_id))
    assert generated.custodian.get_client(generated.client_id) == before
    assert {n: generated.client.keychain.get(n) for n in generated.client.keychain.names()} == keychain


def test_interrupted_generate_can_be_retried(wallet):
    # The client's confirmation never arrives: the custodian stored its shares only.
    dropped = mpc.run_local
    with pytest.raises(Exception):
        from protocols.local import run
        run([wallet.client.generate(), wallet.custodian.generate(wallet.client_id)],
            tamper=lambda m: None if m.payload.get("step") == "stored" else m)
    assert wallet.status() == ("STORED_DATABASE", NOT_CREATED)
    retry_device = wallet.device()
    client_view, _ = mpc.run_local(retry_device.generate(), wallet.custodian.generate(wallet.client_id))
    assert wallet.status() == ("STORED_CLIENT", NOT_CREATED)
    assert wallet.custodian.get_client(wallet.client_id)["addresses"] == client_view
    assert dropped is mpc.run_local


@pytest.mark.parametrize("chain", CHAINS)
def test_sign_every_chain(generated, chain):
    data = data_for(chain)
    client_result, custodian_result = generated.sign(chain, data)
    assert client_result == custodian_result
    verify_result(client_result, data)
    if client_result.curve == "secp256k1":
        assert client_result.v in (27, 28) and len(client_result.signature) == 64


def test_sign_refusals(wallet):
    with pytest.raises(errors.WalletNotFound):
        wallet.custodian.sign(wallet.client_id, "ethereum", data_for("ethereum"))
    with pytest.raises(errors.WalletNotFound):
        wallet.client.sign("ethereum", data_for("ethereum"))
    wallet.generate()
    with pytest.raises(errors.InputInvalid):
        wallet.custodian.sign(wallet.client_id, "dogecoin", b"x" * 32)
    with pytest.raises(errors.InputInvalid, match="32-byte digest"):
        wallet.client.sign("ethereum", b"short")
    with pytest.raises(errors.ClientNotFound):
        wallet.custodian.sign("no-such-client", "ethereum", data_for("ethereum"))


def test_sign_refused_unless_stored_client(wallet):
    from protocols.local import run

    with pytest.raises(Exception):
        run([wallet.client.generate(), wallet.custodian.generate(wallet.client_id)],
            tamper=lambda m: None if m.payload.get("step") == "stored" else m)
    with pytest.raises(errors.WalletNotFound):
        wallet.custodian.sign(wallet.client_id, "solana", b"m")


def test_both_sides_must_sign_the_same_data(generated):
    with pytest.raises(errors.MessageInvalid):
        mpc.run_local(generated.client.sign("ethereum", data_for("ethereum", b"a")),
                      generated.custodian.sign(generated.client_id, "ethereum", data_for("ethereum", b"b")))
    generated.sign("ethereum", data_for("ethereum"))  # nothing got stuck


def test_backup_then_recover_on_new_device(generated):
    addresses = generated.client.addresses()
    client_result, custodian_view = generated.backup()
    assert client_result["method"] == "CLOUD"
    assert generated.status() == ("STORED_CLIENT", "STORED_CLIENT_BACKUP_SHARE")
    assert custodian_view["backup_methods"] == ["CLOUD"]
    generated.client.wipe()
    assert not generated.client.has_wallet()
    device = generated.device()
    recovered, view = generated.recover(device)
    assert recovered == addresses == view["addresses"]
    assert generated.status() == ("STORED_CLIENT", "STORED_CLIENT_BACKUP_SHARE")
    for chain in CHAINS:
        result, _ = generated.sign(chain, data_for(chain), client=device)
        verify_result(result, data_for(chain))


def test_old_signing_shares_do_not_sign_after_recover(generated):
    generated.backup()
    old_device = generated.client
    device = generated.device()
    generated.recover(device)
    for chain in ("ethereum", "solana"):
        with pytest.raises(errors.ShareReplaced):
            generated.sign(chain, data_for(chain), client=old_device)
    # The refusal did not lock anything: the new device still signs.
    generated.sign("ethereum", data_for("ethereum"), client=device)


def test_each_sign_reads_the_current_shares(generated):
    """The custodian reads its signing share with the client's row at each sign (nothing of a
    share is kept between operations but the validated decoding of the very same bytes): after a
    backup and after each recover the current pair signs, and a replaced device is refused."""
    for chain in ("solana", "ethereum"):
        verify_result(generated.sign(chain, data_for(chain))[0], data_for(chain))
    generated.backup()
    verify_result(generated.sign("solana", data_for("solana"))[0], data_for("solana"))
    stale, device = generated.client, generated.device()
    generated.recover(device)
    for chain in ("solana", "ethereum"):
        verify_result(generated.sign(chain, data_for(chain), client=device)[0], data_for(chain))
        with pytest.raises(errors.ShareReplaced):
            generated.sign(chain, data_for(chain), client=stale)


def test_recover_refused_before_backup(generated):
    with pytest.raises(errors.BackupNotFound):
        generated.custodian.recover(generated.client_id)
    with pytest.raises(errors.BackupNotFound):
        generated.custodian.recover(generated.client_id, "PASSWORD")


def test_recover_with_missing_or_wrong_key_changes_nothing(generated):
    generated.backup()
    before = generated.custodian.get_client(generated.client_id)
    stranger = mpc.Client(generated.client_id, mpc.MemoryKeychain(), cloud=type(generated.cloud)())  # no key there
    with pytest.raises(errors.BackupKeyNotFound):
        generated.recover(stranger)
    assert generated.custodian.get_client(generated.client_id) == before
    # The real device recovers right after (no operation lock left behind).
    generated.recover(generated.device())


def test_tampered_encrypted_backup_is_refused(generated):
    generated.backup()
    store = generated.custodian.store
    name = generated.custodian.backup_versions.current_name(generated.client_id, "CLOUD")
    box, record = store.get_client_backup(generated.client_id, name, "ed25519")
    store.put_client_backup(generated.client_id, name, "ed25519", box[:-1] + bytes([box[-1] ^ 1]), record)
    with pytest.raises(errors.BackupDecryptionFailed):
        generated.recover(generated.device())
    assert generated.status() == ("STORED_CLIENT", "STORED_CLIENT_BACKUP_SHARE")


def test_backup_stored_by_customer(generated):
    client_result, _ = mpc.run_local(
        generated.client.backup(client_stores_backup=True),
        generated.custodian.backup(generated.client_id, client_stores_backup=True),
    )
    assert generated.status() == ("STORED_CLIENT", "STORED_CUSTODIAN_BACKUP_SHARE")
    with pytest.raises(errors.StateInvalid):
        generated.custodian.recover(generated.client_id)
    generated.custodian.stored_client_backup_share(generated.client_id, "CLOUD", client_result["confirmation"])
    assert generated.status() == ("STORED_CLIENT", "STORED_CLIENT_BACKUP_SHARE")
    device = generated.device()
    encrypted = client_result["encrypted_backup"]
    mpc.run_local(device.recover(encrypted_backup=encrypted), generated.custodian.recover(generated.client_id))
    assert device.addresses() == generated.client.addresses()


def test_failed_backup_can_be_rerun(generated):
    from protocols.local import run

    with pytest.raises(Exception):
        run([generated.client.backup(), generated.custodian.backup(generated.client_id)],
            tamper=lambda m: None if m.payload.get("step") == "client_backup" else m)
    assert generated.status() == ("STORED_CLIENT", "STORED_CUSTODIAN_BACKUP_SHARE")
    # The abandoned backup holds the client's operation lock until it expires.
    with pytest.raises(errors.OperationInProgress):
        generated.backup()
    generated.custodian.store.update_client(generated.client_id, operation_expires=0.0)
    generated.backup()
    assert generated.status() == ("STORED_CLIENT", "STORED_CLIENT_BACKUP_SHARE")


def test_clients_are_independent():
    custodian = mpc.Custodian()
    first, second = new_wallet(custodian), new_wallet(custodian)
    first.generate()
    second.generate()
    assert first.client.addresses() != second.client.addresses()
    with pytest.raises(errors.EngineError):
        mpc.run_local(first.client.sign("solana", b"m"), custodian.sign(second.client_id, "solana", b"m"))
    first.sign("solana", b"m")


def test_unknown_client():
    custodian = mpc.Custodian()
    for call in (lambda: custodian.get_client("nobody"), lambda: custodian.generate("nobody"),
                 lambda: custodian.stored_client_backup_share("nobody")):
        with pytest.raises(errors.ClientNotFound) as info:
            call()
        assert info.value.status == 404


def test_explicit_session_ids_are_honoured(wallet):
    sid = b"\x42" * 32
    client_op, custodian_op = wallet.client.generate(sid), wallet.custodian.generate(wallet.client_id, sid)
    mpc.run_local(client_op, custodian_op)
    assert client_op.session_id == custodian_op.session_id == sid


def test_sign_result_shapes(generated):
    digest = data_for("ethereum")
    result, _ = generated.sign("ethereum", digest)
    r, s, v = result
    assert (r, s, v) == (result.r, result.s, result.v) == (result["r"], result["s"], result["v"])
    assert bytes(result) == result.signature == r.to_bytes(32, "big") + s.to_bytes(32, "big")
    assert result[2] == v
    ed, _ = generated.sign("solana", b"m")
    assert bytes(ed) == ed.signature and len(ed.signature) == 64
    with pytest.raises(TypeError):
        r, s, v = ed
    with pytest.raises(KeyError):
        ed["secret"]


def test_a_device_names_its_keychain():
    """No silent default location for shares; a client id and a keychain of the right types."""
    with pytest.raises(TypeError):
        mpc.Client("client-1")  # type: ignore[call-arg]
    with pytest.raises(errors.InputInvalid, match="keychain"):
        mpc.Client("client-1", None)  # type: ignore[arg-type]
    for client_id in (123, b"client-1", "", None):
        with pytest.raises(errors.InputInvalid, match="client id"):
            mpc.Client(client_id, mpc.MemoryKeychain())  # type: ignore[arg-type]


def test_the_home_of_file_defaults_is_an_absolute_path(tmp_path, monkeypatch) -> None:
    """``$PORTAL_MPC_HOME`` is expanded and made absolute when read (a later ``chdir`` moves no
    default folder); unset or empty, the default is ``~/.portal-mpc``."""
    from mpc.backup.methods import default_cloud_storage
    from mpc.wallet import default_home

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PORTAL_MPC_HOME", "relative/home")
    assert default_home() == tmp_path / "relative" / "home"
    assert default_cloud_storage().path == tmp_path / "relative" / "home" / "cloud"
    assert not (tmp_path / "relative").exists()  # nothing made before a key is saved
    assert isinstance(default_cloud_storage().keychain, mpc.FileKeychain)  # the storage's keychain, as before
    assert (tmp_path / "relative" / "home" / "cloud").is_dir()  # made at that first use
    monkeypatch.setenv("PORTAL_MPC_HOME", "~/portal")
    assert default_home() == Path.home() / "portal"
    for unset in ("", None):
        if unset is None:
            monkeypatch.delenv("PORTAL_MPC_HOME")
        else:
            monkeypatch.setenv("PORTAL_MPC_HOME", unset)
        assert default_home() == Path.home() / ".portal-mpc"


def test_the_roles_refuse_arguments_of_the_wrong_kind_at_once(generated) -> None:
    """A store path that is not a str, a custodian store that is not a store, and the two sessions
    of ``run_local`` given the wrong way round: ``INPUT_INVALID`` before anything runs."""
    for path in (123, None, b"custodian.sqlite3"):
        with pytest.raises(errors.InputInvalid, match="path"):
            mpc.SQLiteStore(path)  # type: ignore[arg-type]
    for store in ("custodian.sqlite3", object(), {}):
        with pytest.raises(errors.InputInvalid, match="store"):
            mpc.Custodian(store)  # type: ignore[arg-type]
    data = data_for("ethereum")
    client_session = generated.client.sign("ethereum", data)
    custodian_session = generated.custodian.sign(generated.client_id, "ethereum", data, client_session.session_id)
    with pytest.raises(errors.InputInvalid, match="client first"):
        mpc.run_local(custodian_session, client_session)  # type: ignore[arg-type]
    verify_result(mpc.run_local(client_session, custodian_session)[0], data)  # nothing ran: both still fresh


def test_backup_keys_go_to_the_local_folder_default_and_a_new_device_recovers_from_it(tmp_path, monkeypatch):
    """DESIGN's surface as written: ``mpc.Client(client_id, keychain)`` with no cloud storage backs
    up to the local-folder default ($PORTAL_MPC_HOME/cloud: 0700, its keys 0600), and a new device
    made the same way recovers from it (same addresses); a device with its own storage never
    touches the folder."""
    monkeypatch.setenv("PORTAL_MPC_HOME", str(tmp_path / "home"))
    custodian = mpc.Custodian(mpc.SQLiteStore(":memory:"))
    client_id = custodian.create_client()
    device = mpc.Client(client_id, mpc.MemoryKeychain())
    assert device.cloud is None and not (tmp_path / "home").exists()  # nothing made before it is used
    addresses, _ = mpc.run_local(device.generate(), custodian.generate(client_id))
    mpc.run_local(device.backup(), custodian.backup(client_id))
    folder = tmp_path / "home" / "cloud"
    assert isinstance(device.cloud, mpc.LocalFolderCloudStorage)
    keys = sorted(path.name for path in folder.iterdir())
    assert len(keys) == 2 and all(name.startswith(f"{client_id}.") for name in keys)
    assert folder.stat().st_mode & 0o777 == 0o700
    assert all((folder / name).stat().st_mode & 0o777 == 0o600 for name in keys)
    new_device = mpc.Client(client_id, mpc.MemoryKeychain())
    mpc.run_local(new_device.recover(), custodian.recover(client_id))
    assert new_device.addresses() == addresses
    verify_result(mpc.run_local(new_device.sign("ethereum", data_for("ethereum")),
                                custodian.sign(client_id, "ethereum", data_for("ethereum")))[0], data_for("ethereum"))


def test_a_recover_overtaken_by_a_later_recover_cannot_confirm(generated):
    """Two devices recover; the second completes first: the first one's late "stored" step is
    refused (same public keys, other shares) instead of marking stale shares STORED_CLIENT."""
    generated.backup()
    slow, fast = generated.device(), generated.device()
    slow_session, custodian_session = slow.recover(), generated.custodian.recover(generated.client_id)
    held: list = []

    def hold_stored(msg):
        if msg.payload.get("step") == "stored":
            held.append(msg)
            return None
        return msg

    from protocols.local import Stalled, run
    with pytest.raises(Stalled):  # everything but the confirmation
        run([slow_session, custodian_session], tamper=hold_stored)
    generated.custodian._release(generated.client_id)  # what expiry does for a session left waiting
    generated.recover(fast)
    with pytest.raises(errors.ShareReplaced):
        try:
            custodian_session.receive(held[0])
        except MPCError as exc:
            raise errors.from_protocol_error(exc) from exc
    result, _ = generated.sign("ethereum", bytes(32), client=fast)
    assert result.curve == "secp256k1"

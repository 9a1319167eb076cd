"""A restored custodian database is detected by the restore guard and its nonce epoch bumped."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

import mpc
from mpc.backup.methods import MemoryCloudStorage
from mpc.errors import StoreCorrupted
from mpc.storage.restore_guard import ENV_VAR, RestoreGuard
from mpc.storage.backends import open_store
from tests.mpc.conftest import Wallet, data_for, verify_result


def _wallet(db: Path, guard: RestoreGuard, cloud: MemoryCloudStorage, client: mpc.Client | None = None,
            client_id: str | None = None) -> tuple[Wallet, bool]:
    store = mpc.SQLiteStore(str(db))
    restored = store.attach_restore_guard(guard)
    custodian = mpc.Custodian(store)
    client_id = client_id or custodian.create_client()
    client = client or mpc.Client(client_id, mpc.MemoryKeychain(), cloud=cloud)
    return Wallet(custodian, client_id, client, cloud), restored


def test_a_restored_database_is_detected_and_its_single_use_state_killed(tmp_path: Path) -> None:
    db, guard, cloud = tmp_path / "custodian.sqlite3", RestoreGuard(tmp_path / "guard"), MemoryCloudStorage()
    w, restored = _wallet(db, guard, cloud)
    assert not restored
    w.generate()
    mpc.run_local(w.client.presign(3), w.custodian.presign(w.client_id, 3))
    w.custodian.store.close()
    shutil.copy(db, tmp_path / "snapshot")
    w, restored = _wallet(db, guard, cloud, w.client, w.client_id)
    assert not restored  # reopening the same database is no restore
    for text in (b"one", b"two"):
        verify_result(w.sign("ethereum", data_for("ethereum", text))[0], data_for("ethereum", text))
    assert guard.read() == w.custodian.store.take_counter() == 2
    w.custodian.store.close()
    shutil.copy(tmp_path / "snapshot", db)  # the restore brings the two used precomputations back
    w, restored = _wallet(db, guard, cloud, w.client, w.client_id)
    assert restored
    assert w.custodian.store.nonce_epoch() == 2
    assert w.custodian.presignature_count(w.client_id)["secp256k1"] == 0  # none can be used twice
    verify_result(w.sign("ethereum", data_for("ethereum"))[0], data_for("ethereum"))
    assert guard.read() == w.custodian.store.take_counter() == 2


def test_open_store_attaches_the_guard_from_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENV_VAR, str(tmp_path / "guard"))
    store = open_store(str(tmp_path / "c.sqlite3"))
    assert isinstance(store.restore_guard, RestoreGuard)
    assert (tmp_path / "guard").stat().st_mode & 0o777 == 0o600


def test_a_damaged_guard_file_is_a_typed_error(tmp_path: Path) -> None:
    (tmp_path / "guard").write_text("twelve")
    with pytest.raises(StoreCorrupted):
        mpc.SQLiteStore(":memory:").attach_restore_guard(RestoreGuard(tmp_path / "guard"))


def test_the_guard_never_goes_back(tmp_path: Path) -> None:
    guard = RestoreGuard(tmp_path / "guard")
    guard.record(5)
    guard.record(3)
    assert guard.read() == 5 and guard.is_behind(4) and not guard.is_behind(5)

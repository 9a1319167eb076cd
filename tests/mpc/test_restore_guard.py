"""A restored custodian database is detected by the restore guard and its nonce epoch bumped."""

from __future__ import annotations

import shutil
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import mpc
from mpc.backup.methods import MemoryCloudStorage
from mpc.errors import StoreCorrupted
from mpc.storage.restore_guard import ENV_VAR, RestoreGuard
from mpc.storage.backends import PostgresStore, open_store
from tests.mpc.conftest import Wallet, data_for, verify_result
from tests.mpc.test_resilience import _terminate_store


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
    for text in (b"one", b"two"):  # two parked signing sessions resumed: two single-use takes
        data = data_for("ethereum", text)
        parked = w.custodian.sign(w.client_id, "ethereum", data)
        parked.start()
        for msg in w.client.sign("ethereum", data).start():
            parked.receive(msg)
        w.custodian.resume(parked.to_bytes())
    assert guard.read() == w.custodian.store.take_counter() == 2
    w.custodian.store.close()
    shutil.copy(tmp_path / "snapshot", db)  # the restore brings the two park tombstones back
    w, restored = _wallet(db, guard, cloud, w.client, w.client_id)
    assert restored
    assert w.custodian.store.nonce_epoch() == 2
    assert w.custodian.presignature_count(w.client_id)["secp256k1"] == 0  # memory only: none restored
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


# --- the guard re-checks while the store runs (not only when it opens) ---------------------------
class _Backup:
    """Take a backup of a running store's database and put it back under the running store:
    SQLite, a copy of the file written over the live one; PostgreSQL, the single-use rows (the
    tombstones of resumed parks) and the meta counters rewritten to their earlier values from
    another connection (what a point-in-time restore leaves behind)."""

    def __init__(self, store: mpc.SQLiteStore, tmp_path: Path) -> None:
        self.store, self.file = store, tmp_path / "backup.sqlite3"
        self.rows: tuple[list[Any], list[Any]] = ([], [])

    def _pg(self) -> Any:
        import psycopg

        conn = psycopg.connect(self.store._dsn, autocommit=True)
        conn.execute(f'SET search_path TO "{self.store.schema}"')
        return conn

    def take(self) -> None:
        if isinstance(self.store, PostgresStore):
            with self._pg() as conn:
                self.rows = (conn.execute("SELECT key, value FROM meta").fetchall(),
                             conn.execute("SELECT * FROM resumed_sessions").fetchall())
            return
        with sqlite3.connect(self.store.path) as source, sqlite3.connect(self.file) as target:
            source.backup(target)

    def restore(self) -> None:
        if isinstance(self.store, PostgresStore):
            meta, tombstones = self.rows
            with self._pg() as conn, conn.transaction():
                conn.execute("DELETE FROM meta")
                conn.execute("DELETE FROM resumed_sessions")
                for row in meta:
                    conn.execute("INSERT INTO meta VALUES (%s, %s)", row)
                for row in tombstones:
                    conn.execute("INSERT INTO resumed_sessions VALUES (%s, %s)", row)
            return
        shutil.copyfile(self.file, self.store.path)  # over the live file, the store still open


def _guarded(store: mpc.SQLiteStore, tmp_path: Path) -> tuple[mpc.SQLiteStore, RestoreGuard]:
    """``store`` with a guard attached. Its single-use items are parked operations, resumed once
    each (``consume_park_id``: the take of a park id of epoch 1, the store's first)."""
    guard = RestoreGuard(tmp_path / "guard")
    assert not store.attach_restore_guard(guard)
    store.create_client("c1", "STORED_CLIENT")
    return store, guard


@pytest.fixture(params=["sqlite", "postgresql"])
def guarded(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[mpc.SQLiteStore, RestoreGuard]]:
    """A guarded store (``_guarded``) on both backends."""
    if request.param == "sqlite":
        store = open_store(str(tmp_path / "custodian.sqlite3"))
        yield _guarded(store, tmp_path)
        store.close()
    else:
        yield _guarded(request.getfixturevalue("postgres_store"), tmp_path)


def _take(store: mpc.SQLiteStore, park_id: str) -> bool:
    """Resume the parked operation ``park_id`` of the first epoch: True once, never again."""
    now = time.time()
    return store.consume_park_id(park_id, now, now - 3600, epoch=1)


def test_a_database_restored_under_a_running_store_is_caught_by_the_next_take(
        guarded: tuple[mpc.SQLiteStore, RestoreGuard], tmp_path: Path) -> None:
    store, guard = guarded
    backup = _Backup(store, tmp_path)
    backup.take()
    assert _take(store, "park-1") and _take(store, "park-2")
    assert guard.read() == store.take_counter() == 2
    backup.restore()  # the two tombstones are gone, the counter at 0
    assert store.take_counter() == 0
    assert not _take(store, "park-1")  # the take compared first: the restored copy's parks are dead
    assert store.restores_detected == 1 and store.nonce_epoch() == 2
    assert store.take_counter() == guard.read() == 2


def test_a_restored_park_id_tombstone_does_not_resume_a_blob_twice(
        guarded: tuple[mpc.SQLiteStore, RestoreGuard], tmp_path: Path) -> None:
    """A parked blob resumed after the backup: the restore drops its tombstone; the resume of
    the same blob (of the old epoch) is refused inside the take that finds the restore."""
    store, _ = guarded
    backup = _Backup(store, tmp_path)
    backup.take()
    now = time.time()
    assert store.consume_park_id("park-1", now, now - 60, epoch=1)
    backup.restore()
    assert not store.consume_park_id("park-1", now, now - 60, epoch=1)
    assert store.nonce_epoch() == 2 and store.restores_detected == 1


def test_postgres_reconnect_rechecks_the_guard(postgres_url: str, postgres_store: PostgresStore,
                                               tmp_path: Path) -> None:
    """A point-in-time restore, then the connection is replaced: the first statement on the new
    connection (a read, not a take) compares with the guard and bumps."""
    store, guard = _guarded(postgres_store, tmp_path)
    backup = _Backup(store, tmp_path)
    backup.take()
    assert _take(store, "park-1")
    backup.restore()
    assert store.take_counter() == 0  # restored; no reconnect, no take yet
    _terminate_store(postgres_url, store)
    assert store.nonce_epoch() == 2
    assert store.reconnects == 1 and store.restores_detected == 1 and store.nonce_epoch() == 2
    assert store.take_counter() == guard.read() == 1


def test_the_service_checks_the_guard_periodically(tmp_path: Path) -> None:
    """Without any take, the service's purge tick notices a database overwritten under it."""
    from mpc.service.server import CustodianService

    store = open_store(str(tmp_path / "custodian.sqlite3"))
    store.attach_restore_guard(RestoreGuard(tmp_path / "guard"))
    service = CustodianService(store.path, custodian=mpc.Custodian(store), executor="thread", open_registration=True)
    try:
        store.create_client("c1", "STORED_CLIENT")
        backup = _Backup(store, tmp_path)
        backup.take()
        assert _take(store, "park-1")
        backup.restore()
        service.purge()
        assert store.restores_detected == 1 and store.nonce_epoch() == 2
        service.purge()
        assert store.restores_detected == 1  # caught up: no second bump
    finally:
        service._pool.shutdown()
        store.close()


def test_a_new_guard_file_meets_a_database_that_took_before(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """A new host (or a lost guard file): no count to compare with, so the epoch is bumped once."""
    db = str(tmp_path / "custodian.sqlite3")
    store = open_store(db)
    assert not store.attach_restore_guard(RestoreGuard(tmp_path / "old-host"))
    store.create_client("c1", "STORED_CLIENT")
    assert _take(store, "park-1")
    store.close()
    new_host = RestoreGuard(tmp_path / "new-host")
    store = open_store(db)
    with caplog.at_level("WARNING", logger="mpc.storage.store"):
        assert store.attach_restore_guard(new_host)
    assert "a new host" in caplog.text and "nonce epoch bumped to 2" in caplog.text
    assert store.nonce_epoch() == 2 and not _take(store, "park-2")  # the old epoch's parks are dead
    assert new_host.recorded() == 1
    store.close()
    store = open_store(db)
    assert not store.attach_restore_guard(new_host)  # once only
    assert store.nonce_epoch() == 2
    store.close()


def test_a_new_database_and_a_new_guard_file_start_at_zero(tmp_path: Path) -> None:
    guard = RestoreGuard(tmp_path / "guard")
    store = open_store(str(tmp_path / "custodian.sqlite3"))
    assert not store.attach_restore_guard(guard)
    assert guard.recorded() == 0 and store.nonce_epoch() == 1  # the file now says "seen, nothing taken"
    store.close()


def test_a_guard_file_damaged_while_running_refuses_the_take(
        guarded: tuple[mpc.SQLiteStore, RestoreGuard]) -> None:
    """Fail closed: a take that cannot compare takes nothing."""
    store, guard = guarded
    guard.path.write_text("twelve")
    with pytest.raises(StoreCorrupted):
        _take(store, "park-1")
    assert store.take_counter() == 0 and store.nonce_epoch() == 1


class _Abort(Exception):
    """The caller's own failure inside a transaction."""


def test_a_take_rolled_back_with_its_transaction_is_not_recorded(
        guarded: tuple[mpc.SQLiteStore, RestoreGuard]) -> None:
    """The guard records after the outermost commit: a rolled-back take never puts it ahead of
    the database (which the next comparison would take for a restore)."""
    store, guard = guarded
    with pytest.raises(_Abort):
        with store.transaction():
            assert _take(store, "park-1")
            raise _Abort
    assert guard.read() == store.take_counter() == 0
    assert not store.check_restore_guard()
    assert store.nonce_epoch() == 1 and _take(store, "park-1")  # rolled back: still unused
